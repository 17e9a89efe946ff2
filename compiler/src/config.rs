//! Reads HCL configuration files (following `include`) into a syntax tree that keeps the source
//! span of everything a diagnostic may point at.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::Span as _;

use crate::diagnostics::{Reporter, Span};

#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// A `key = value` inside `header {}`, `params {}`, `options {}`.
pub type Pair = (Spanned<String>, Spanned<Literal>);

#[derive(Default, Debug)]
pub struct Config {
    pub proto_files: Vec<PathBuf>,
    /// Directories the proto files' imports resolve against.
    pub proto_includes: Vec<PathBuf>,
    /// `http { ... }`: the listener Envoy serves the endpoints on.
    pub http: HttpDef,
    /// `grpc { address }`: where Semaphore's daemon served gRPC.
    pub grpc_address: Option<Spanned<String>>,
    /// `graphql { ... }`: where and how the GraphQL schema is served.
    pub graphql: GraphqlDef,
    /// `log_level`: the filter's.
    pub log_level: Option<Spanned<String>>,
    pub service_selects: Vec<ServiceSelect>,
    pub services: Vec<ServiceDef>,
    pub endpoints: Vec<EndpointDef>,
    pub flows: Vec<FlowDef>,
    /// The global `error "schema" { ... }`, inherited by every flow that sets none.
    pub error: Option<ParamMap>,
}

/// `http { address origin cert_file key_file read_timeout write_timeout }`, Semaphore's HTTP
/// listener settings; file paths are resolved against the file that names them.
#[derive(Default, Debug)]
pub struct HttpDef {
    pub address: Option<Spanned<String>>,
    pub origins: Vec<Spanned<String>>,
    pub cert_file: Option<Spanned<PathBuf>>,
    pub key_file: Option<Spanned<PathBuf>>,
    pub read_timeout: Option<Spanned<Literal>>,
    pub write_timeout: Option<Spanned<Literal>>,
}

/// `graphql { address path introspection max_depth max_fields max_flows }`. Semaphore's daemon knew
/// `address` alone; the others are this filter's.
#[derive(Default, Debug)]
pub struct GraphqlDef {
    pub address: Option<Spanned<String>>,
    /// The HTTP path the schema is served at on the HTTP listener, `/graphql` unless set.
    pub path: Option<Spanned<String>>,
    pub introspection: Option<Spanned<Literal>>,
    pub max_depth: Option<Spanned<Literal>>,
    pub max_fields: Option<Spanned<Literal>>,
    pub max_flows: Option<Spanned<Literal>>,
}

/// `services { select "pkg.*" { ... } }`: settings for every service the pattern matches.
#[derive(Debug)]
pub struct ServiceSelect {
    pub pattern: Spanned<String>,
    pub settings: ServiceSettings,
}

#[derive(Debug, Default)]
pub struct ServiceSettings {
    pub host: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
    pub codec: Option<Spanned<String>>,
    pub request_codec: Option<Spanned<String>>,
    pub response_codec: Option<Spanned<String>>,
    /// `cluster = "..."`: the Envoy cluster its calls go to, instead of one named after its host.
    pub cluster: Option<Spanned<String>>,
    /// `int64_as_string = true`: JSON bodies sent to the service write 64-bit integers as strings.
    pub int64_as_string: Option<Spanned<Literal>>,
}

/// `service "pkg" "Name" { ... }`: a service defined (or configured) in HCL.
#[derive(Debug)]
pub struct ServiceDef {
    pub package: Spanned<String>,
    pub name: Spanned<String>,
    pub settings: ServiceSettings,
    pub methods: Vec<MethodDef>,
}

impl ServiceDef {
    pub fn full_name(&self) -> String {
        if self.package.value.is_empty() {
            self.name.value.clone()
        } else {
            format!("{}.{}", self.package.value, self.name.value)
        }
    }
}

/// `method "Get" { request = "...", response = "...", options { endpoint, method } }`
#[derive(Debug)]
pub struct MethodDef {
    pub name: Spanned<String>,
    pub request: Option<Spanned<String>>,
    pub response: Option<Spanned<String>>,
    pub endpoint: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
}

#[derive(Debug)]
pub struct EndpointDef {
    pub flow: Spanned<String>,
    pub kind: Spanned<String>,
    pub route: Option<Spanned<String>>,
    /// An `http` endpoint's HTTP method; a `grpc` endpoint's RPC method.
    pub method: Option<Spanned<String>>,
    /// A `grpc` endpoint's proto package and service, named as clients call them.
    pub package: Option<Spanned<String>>,
    pub service: Option<Spanned<String>>,
    pub codec: Option<Spanned<String>>,
    pub request_codec: Option<Spanned<String>>,
    pub response_codec: Option<Spanned<String>>,
    pub status: Option<Spanned<Literal>>,
    /// `int64_as_string = true`: JSON answers write 64-bit integers as strings.
    pub int64_as_string: Option<Spanned<Literal>>,
    /// A `graphql` endpoint's dotted field path, its output type's name and its root type
    /// (`query` or `mutation`).
    pub field_path: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub base: Option<Spanned<String>>,
    pub span: Span,
}

#[derive(Debug)]
pub struct FlowDef {
    pub name: Spanned<String>,
    /// A `proxy` rather than a `flow`.
    pub proxy: bool,
    pub input: Option<InputDef>,
    pub resources: Vec<ResourceDef>,
    pub output: Option<ParamMap>,
    pub error: Option<ParamMap>,
    pub on_error: Option<OnErrorDef>,
    pub timeout: Option<Spanned<Literal>>,
    /// `schema = "pkg.Service.Method"`: the flow takes that method's request as its input.
    pub schema: Option<Spanned<String>>,
    pub forward: Option<ForwardDef>,
    pub rewrites: Vec<(Spanned<String>, Spanned<String>)>,
}

#[derive(Debug)]
pub struct InputDef {
    /// `None` for a proxy's input, which has no schema.
    pub message: Option<Spanned<String>>,
    pub headers: Vec<Spanned<String>>,
}

#[derive(Debug)]
pub struct ResourceDef {
    pub name: Spanned<String>,
    /// Every enclosing `if`, outermost first.
    pub conditions: Vec<Spanned<String>>,
    pub before: bool,
    pub depends_on: Vec<Spanned<String>>,
    pub request: Option<CallDef>,
    pub rollback: Option<CallDef>,
    pub error: Option<ParamMap>,
    pub on_error: Option<OnErrorDef>,
    pub expect_status: Vec<Spanned<Literal>>,
    /// `resources { name = "..." }` defines a node whose value is this one expression.
    pub value: Option<Spanned<Literal>>,
}

#[derive(Debug)]
pub struct CallDef {
    pub service: Spanned<String>,
    pub method: Spanned<String>,
    pub fields: Vec<FieldDef>,
    pub headers: Vec<Pair>,
    pub params: Vec<Pair>,
    pub options: Vec<Pair>,
}

/// A message built from templates: `output`, `error`.
#[derive(Debug)]
pub struct ParamMap {
    pub schema: Spanned<String>,
    pub fields: Vec<FieldDef>,
    pub headers: Vec<Pair>,
}

#[derive(Debug, Default)]
pub struct OnErrorDef {
    pub schema: Option<Spanned<String>>,
    pub status: Option<Spanned<Literal>>,
    pub message: Option<Spanned<Literal>>,
    pub params: Vec<Pair>,
}

#[derive(Debug)]
pub struct ForwardDef {
    pub service: Spanned<String>,
    pub headers: Vec<Pair>,
}

#[derive(Debug)]
pub struct FieldDef {
    pub name: Spanned<String>,
    pub value: FieldValue,
}

#[derive(Debug)]
pub enum FieldValue {
    Literal(Spanned<Literal>),
    Message(Vec<FieldDef>),
    /// `repeated "field" "resource:path" { ... }`
    Repeated {
        source: Spanned<String>,
        fields: Vec<FieldDef>,
    },
}

/// A constant as written in HCL; strings may still hold `{{ }}` templates.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    String(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

pub fn load(path: &Path, reporter: &mut Reporter) -> Config {
    let mut config = Config::default();
    let mut seen = HashSet::new();
    load_file(path, None, &mut config, &mut seen, reporter);
    config
}

fn load_file(
    path: &Path,
    included_at: Option<&Span>,
    config: &mut Config,
    seen: &mut HashSet<PathBuf>,
    reporter: &mut Reporter,
) {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canonical) {
        return;
    }
    let Some((file, body)) = parse_file(path, included_at, reporter) else { return };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut reader = Reader { file, reporter };
    let mut includes = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => reader.top_attribute(attr, &dir, config, &mut includes),
            Structure::Block(block) => reader.top_block(block, &dir, config),
        }
    }
    for (found, span) in includes {
        load_file(&found, Some(&span), config, seen, reporter);
    }
}

/// A file's HCL body, and the file's id for spans; a file that cannot be read or parsed is
/// reported.
fn parse_file(path: &Path, included_at: Option<&Span>, reporter: &mut Reporter) -> Option<(usize, Body)> {
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => {
            let message = format!("cannot read {}: {e}", path.display());
            match included_at {
                Some(span) => drop(reporter.error(span, message)),
                None => reporter.error_without_span(message),
            }
            return None;
        }
    };
    let file = reporter.add_file(path.display().to_string(), source.clone());
    match hcl_edit::parser::parse_body(&source) {
        Ok(body) => Some((file, body)),
        Err(e) => {
            let offset = e.location().offset();
            let span = Span { file, range: offset..offset };
            reporter.error(&span, format!("syntax error: {}", e.message()));
            None
        }
    }
}

/// What a flow holds.
const FLOW_ITEMS: &[&str] =
    &["input", "resource", "resources", "if", "before", "error", "on_error", "output", "timeout", "schema"];
/// What a proxy holds.
const PROXY_ITEMS: &[&str] =
    &["input", "resource", "resources", "if", "before", "error", "on_error", "forward", "rewrite", "timeout"];

/// Reads one file's blocks, reporting what does not fit.
struct Reader<'r> {
    file: usize,
    reporter: &'r mut Reporter,
}

impl Reader<'_> {
    /// A top-level attribute of a file; `include`d files are added to `includes`.
    fn top_attribute(
        &mut self,
        attr: &Attribute,
        dir: &Path,
        config: &mut Config,
        includes: &mut Vec<(PathBuf, Span)>,
    ) {
        match attr.key.as_str() {
            "protobuffers" => {
                for pattern in self.string_list(attr) {
                    let found = self.glob(dir, &pattern);
                    if !found.is_empty() {
                        config.proto_files.extend(found);
                        // Imports resolve against the folder the pattern's files are in.
                        let fixed = pattern.value.split(['*', '?', '[']).next().unwrap_or("");
                        let base_dir = fixed.rfind('/').map(|i| &fixed[..i]).unwrap_or("");
                        config.proto_includes.push(dir.join(base_dir));
                    }
                }
            }
            "include" => {
                for pattern in self.string_list(attr) {
                    for found in self.glob(dir, &pattern) {
                        includes.push((found, pattern.span.clone()));
                    }
                }
            }
            "log_level" => config.log_level = self.string(attr),
            "avro" | "openapi3" => {
                let span = self.span(attr.span());
                self.reporter
                    .warning(
                        &span,
                        format!("`{}` schemas are not supported; only protobuffers are", attr.key.as_str()),
                    )
                    .label("ignored");
            }
            other => self.unknown(other, attr.key.span(), &["protobuffers", "include", "log_level"]),
        }
    }

    fn top_block(&mut self, block: &Block, dir: &Path, config: &mut Config) {
        match block.ident.as_str() {
            "endpoint" => {
                if let Some(endpoint) = self.endpoint(block) {
                    config.endpoints.push(endpoint);
                }
            }
            "flow" => {
                if let Some(flow) = self.flow(block, false) {
                    config.flows.push(flow);
                }
            }
            "services" => self.services(block, &mut config.service_selects),
            "service" => {
                if let Some(service) = self.service(block) {
                    config.services.push(service);
                }
            }
            "proxy" => {
                if let Some(flow) = self.flow(block, true) {
                    config.flows.push(flow);
                }
            }
            "error" => {
                if let Some(error) = self.param_map(block) {
                    config.error = Some(error);
                }
            }
            "http" => self.http(block, dir, &mut config.http),
            "grpc" => self.grpc(block, &mut config.grpc_address),
            "graphql" => self.graphql(block, &mut config.graphql),
            "prometheus" | "discovery" => self.warn_daemon_only(block.ident.as_str(), block.span()),
            other => self.unknown(
                other,
                block.ident.span(),
                &[
                    "endpoint",
                    "flow",
                    "proxy",
                    "service",
                    "services",
                    "error",
                    "http",
                    "grpc",
                    "graphql",
                    "prometheus",
                    "discovery",
                ],
            ),
        }
    }

    fn span(&self, span: Option<std::ops::Range<usize>>) -> Span {
        Span { file: self.file, range: span.unwrap_or(0..0) }
    }

    fn unknown(&mut self, name: &str, span: Option<std::ops::Range<usize>>, known: &[&str]) {
        let span = self.span(span);
        self.reporter.error(&span, format!("unknown `{name}`")).label("not expected here").suggest(
            name,
            known.iter().copied(),
            Some(format!("expected one of: {}", known.join(", "))),
        );
    }

    fn warn_daemon_only(&mut self, name: &str, span: Option<std::ops::Range<usize>>) {
        let span = self.span(span);
        self.reporter
            .warning(
                &span,
                format!("`{name}` configures the standalone daemon and does not apply inside Envoy"),
            )
            .label("ignored");
    }

    fn glob(&mut self, dir: &Path, pattern: &Spanned<String>) -> Vec<PathBuf> {
        let full = dir.join(&pattern.value);
        let mut found: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                self.reporter.error(&pattern.span, format!("invalid pattern: {e}"));
                return Vec::new();
            }
        };
        found.sort();
        if found.is_empty() {
            self.reporter.error(&pattern.span, format!("no file matches `{}`", full.display()));
        }
        found
    }

    fn literal(&mut self, expr: &Expression) -> Option<Spanned<Literal>> {
        let span = self.span(expr.span());
        let value = match expr {
            Expression::String(s) => Literal::String(self.expand_env(s.value(), &span)),
            Expression::Bool(b) => Literal::Bool(*b.value()),
            Expression::Number(n) => {
                let n = n.value();
                if let Some(i) = n.as_i64() {
                    Literal::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Literal::Uint(u)
                } else {
                    Literal::Float(n.as_f64().unwrap_or_default())
                }
            }
            Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
                self.reporter
                    .error(&span, "HCL `${...}` interpolation is not part of the flow language")
                    .note("reference values with `{{ resource:path }}` templates");
                return None;
            }
            _ => {
                self.reporter.error(&span, "expected a string, number or bool").label("not a constant value");
                return None;
            }
        };
        Some(Spanned { value, span })
    }

    /// `$NAME` (upper-case letters, digits and `_`) is replaced by the environment variable.
    fn expand_env(&mut self, text: &str, span: &Span) -> String {
        if !text.contains('$') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let len = after
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                out.push('$');
            } else {
                match std::env::var(name) {
                    Ok(value) => out.push_str(&value),
                    Err(_) => drop(
                        self.reporter
                            .warning(span, format!("environment variable `{name}` is not set"))
                            .label("expands to an empty string"),
                    ),
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        out
    }

    fn string(&mut self, attr: &Attribute) -> Option<Spanned<String>> {
        let literal = self.literal(&attr.value)?;
        match literal.value {
            Literal::String(s) => Some(Spanned { value: s, span: literal.span }),
            _ => {
                self.reporter.error(&literal.span, format!("`{}` must be a string", attr.key.as_str()));
                None
            }
        }
    }

    fn string_list(&mut self, attr: &Attribute) -> Vec<Spanned<String>> {
        let Expression::Array(array) = &attr.value else {
            let span = self.span(attr.value.span());
            self.reporter
                .error(&span, format!("`{}` must be a list of strings", attr.key.as_str()))
                .label("expected [\"...\"]");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in array.iter() {
            let span = self.span(item.span());
            match item {
                Expression::String(s) => out.push(Spanned { value: s.value().clone(), span }),
                _ => drop(self.reporter.error(&span, "expected a string")),
            }
        }
        out
    }

    fn labels(&mut self, block: &Block, names: &[&str]) -> Option<Vec<Spanned<String>>> {
        self.labels_between(block, names, &[])
    }

    /// The block's labels: all of `required`, then up to all of `optional`.
    fn labels_between(
        &mut self,
        block: &Block,
        required: &[&str],
        optional: &[&str],
    ) -> Option<Vec<Spanned<String>>> {
        let count = block.labels.len();
        if count < required.len() || count > required.len() + optional.len() {
            let span = self.span(block.ident.span());
            let expected = required
                .iter()
                .map(|n| format!("\"<{n}>\""))
                .chain(optional.iter().map(|n| format!("[\"<{n}>\"]")))
                .collect::<Vec<_>>()
                .join(" ");
            let wanted = if optional.is_empty() {
                required.len().to_string()
            } else {
                format!("{} to {}", required.len(), required.len() + optional.len())
            };
            self.reporter
                .error(&span, format!("`{}` takes {wanted} label(s), found {count}", block.ident.as_str()))
                .note(format!("write it as `{} {expected} {{ ... }}`", block.ident.as_str()));
            return None;
        }
        Some(
            block
                .labels
                .iter()
                .map(|label| Spanned { value: label.as_str().to_string(), span: self.span(label.span()) })
                .collect(),
        )
    }

    fn http(&mut self, block: &Block, dir: &Path, http: &mut HttpDef) {
        const KNOWN: &[&str] =
            &["address", "origin", "cert_file", "key_file", "read_timeout", "write_timeout"];
        let path = |value: Spanned<String>| Spanned { value: dir.join(&value.value), span: value.span };
        for attr in block.body.attributes() {
            match attr.key.as_str() {
                "address" => http.address = self.string(attr),
                "origin" => http.origins = self.string_list(attr),
                "cert_file" => http.cert_file = self.string(attr).map(path),
                "key_file" => http.key_file = self.string(attr).map(path),
                "read_timeout" => http.read_timeout = self.literal(&attr.value),
                "write_timeout" => http.write_timeout = self.literal(&attr.value),
                other => self.unknown(other, attr.key.span(), KNOWN),
            }
        }
    }

    /// `grpc { address }`; the daemon's other settings have no meaning inside Envoy.
    fn grpc(&mut self, block: &Block, address: &mut Option<Spanned<String>>) {
        for attr in block.body.attributes() {
            match attr.key.as_str() {
                "address" => *address = self.string(attr),
                other => self.unknown(other, attr.key.span(), &["address"]),
            }
        }
    }

    fn graphql(&mut self, block: &Block, graphql: &mut GraphqlDef) {
        const KNOWN: &[&str] = &["address", "path", "introspection", "max_depth", "max_fields", "max_flows"];
        for attr in block.body.attributes() {
            match attr.key.as_str() {
                "address" => graphql.address = self.string(attr),
                "path" => graphql.path = self.string(attr),
                "introspection" => graphql.introspection = self.literal(&attr.value),
                "max_depth" => graphql.max_depth = self.literal(&attr.value),
                "max_fields" => graphql.max_fields = self.literal(&attr.value),
                "max_flows" => graphql.max_flows = self.literal(&attr.value),
                other => self.unknown(other, attr.key.span(), KNOWN),
            }
        }
    }

    fn endpoint(&mut self, block: &Block) -> Option<EndpointDef> {
        let mut labels = self.labels_between(block, &["flow", "kind"], &["codec"])?.into_iter();
        let (flow, kind) = (labels.next()?, labels.next()?);
        let mut endpoint = EndpointDef {
            flow,
            kind,
            route: None,
            method: None,
            package: None,
            service: None,
            codec: labels.next(),
            request_codec: None,
            response_codec: None,
            status: None,
            int64_as_string: None,
            field_path: None,
            name: None,
            base: None,
            span: self.span(block.span()),
        };
        let known: &[&str] = match endpoint.kind.value.as_str() {
            "http" => &[
                "endpoint",
                "method",
                "codec",
                "request_codec",
                "response_codec",
                "status",
                "int64_as_string",
            ],
            "grpc" => &["package", "service", "method"],
            "graphql" => &["path", "name", "base"],
            // A kind the filter does not serve is skipped whole, with a warning, when lowered.
            _ => &[],
        };
        let served = matches!(endpoint.kind.value.as_str(), "http" | "grpc" | "graphql");
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => match attr.key.as_str() {
                    _ if !served => {}
                    key if !known.contains(&key) => self.unknown(key, attr.key.span(), known),
                    "endpoint" => endpoint.route = self.string(attr),
                    "method" => endpoint.method = self.string(attr),
                    "package" => endpoint.package = self.string(attr),
                    "service" => endpoint.service = self.string(attr),
                    "codec" => endpoint.codec = self.string(attr),
                    "request_codec" => endpoint.request_codec = self.string(attr),
                    "response_codec" => endpoint.response_codec = self.string(attr),
                    "status" => endpoint.status = self.literal(&attr.value),
                    "int64_as_string" => endpoint.int64_as_string = self.literal(&attr.value),
                    "path" => endpoint.field_path = self.string(attr),
                    "name" => endpoint.name = self.string(attr),
                    "base" => endpoint.base = self.string(attr),
                    _ => drop(self.string(attr)),
                },
                Structure::Block(inner) if inner.ident.as_str() == "options" => drop(self.pairs(inner)),
                Structure::Block(inner) => {
                    self.unknown(inner.ident.as_str(), inner.ident.span(), &["options"])
                }
            }
        }
        Some(endpoint)
    }

    fn settings(&mut self, attr: &Attribute, settings: &mut ServiceSettings) -> bool {
        let slot = match attr.key.as_str() {
            "host" => &mut settings.host,
            "transport" => &mut settings.transport,
            "codec" => &mut settings.codec,
            "request_codec" => &mut settings.request_codec,
            "response_codec" => &mut settings.response_codec,
            "cluster" => &mut settings.cluster,
            "int64_as_string" => {
                settings.int64_as_string = self.literal(&attr.value);
                return true;
            }
            "resolver" => {
                let span = self.span(attr.key.span());
                self.reporter
                    .warning(&span, "service discovery is Envoy's job here; `resolver` is ignored")
                    .label("ignored");
                return true;
            }
            _ => return false,
        };
        *slot = self.string(attr);
        true
    }

    const SETTINGS: &'static [&'static str] = &[
        "host",
        "cluster",
        "transport",
        "codec",
        "request_codec",
        "response_codec",
        "int64_as_string",
        "resolver",
    ];

    fn services(&mut self, block: &Block, selects: &mut Vec<ServiceSelect>) {
        for structure in block.body.iter() {
            let Structure::Block(select) = structure else {
                self.unknown(structure_name(structure), structure_span(structure), &["select"]);
                continue;
            };
            if select.ident.as_str() != "select" {
                self.unknown(select.ident.as_str(), select.ident.span(), &["select"]);
                continue;
            }
            let Some(pattern) = self.labels(select, &["pattern"]).and_then(|l| l.into_iter().next()) else {
                continue;
            };
            let mut settings = ServiceSettings::default();
            for structure in select.body.iter() {
                match structure {
                    Structure::Attribute(attr) => {
                        if !self.settings(attr, &mut settings) {
                            self.unknown(attr.key.as_str(), attr.key.span(), Self::SETTINGS);
                        }
                    }
                    Structure::Block(inner) if inner.ident.as_str() == "options" => drop(self.pairs(inner)),
                    Structure::Block(inner) => {
                        self.unknown(inner.ident.as_str(), inner.ident.span(), &["options"])
                    }
                }
            }
            selects.push(ServiceSelect { pattern, settings });
        }
    }

    fn service(&mut self, block: &Block) -> Option<ServiceDef> {
        let mut labels = self.labels(block, &["package", "name"])?.into_iter();
        let (package, name) = (labels.next()?, labels.next()?);
        let mut service =
            ServiceDef { package, name, settings: ServiceSettings::default(), methods: Vec::new() };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    if !self.settings(attr, &mut service.settings) {
                        self.unknown(attr.key.as_str(), attr.key.span(), Self::SETTINGS);
                    }
                }
                Structure::Block(inner) => match inner.ident.as_str() {
                    "options" => drop(self.pairs(inner)),
                    "method" => {
                        let Some(name) = self.labels(inner, &["name"]).and_then(|l| l.into_iter().next())
                        else {
                            continue;
                        };
                        let mut method =
                            MethodDef { name, request: None, response: None, endpoint: None, method: None };
                        for structure in inner.body.iter() {
                            match structure {
                                Structure::Attribute(attr) if attr.key.as_str() == "request" => {
                                    method.request = self.string(attr)
                                }
                                Structure::Attribute(attr) if attr.key.as_str() == "response" => {
                                    method.response = self.string(attr)
                                }
                                Structure::Block(options) if options.ident.as_str() == "options" => {
                                    for (key, value) in self.pairs(options) {
                                        let Literal::String(text) = value.value else { continue };
                                        let text = Spanned { value: text, span: value.span };
                                        match key.value.as_str() {
                                            "endpoint" => method.endpoint = Some(text),
                                            "method" => method.method = Some(text),
                                            _ => {}
                                        }
                                    }
                                }
                                other => self.unknown(
                                    structure_name(other),
                                    structure_span(other),
                                    &["request", "response", "options"],
                                ),
                            }
                        }
                        service.methods.push(method);
                    }
                    other => self.unknown(other, inner.ident.span(), &["method", "options"]),
                },
            }
        }
        Some(service)
    }

    fn flow(&mut self, block: &Block, proxy: bool) -> Option<FlowDef> {
        let name = self.labels(block, &["name"])?.into_iter().next()?;
        let mut flow = FlowDef {
            name,
            proxy,
            input: None,
            resources: Vec::new(),
            output: None,
            error: None,
            on_error: None,
            timeout: None,
            schema: None,
            forward: None,
            rewrites: Vec::new(),
        };
        let known = if proxy { PROXY_ITEMS } else { FLOW_ITEMS };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) if attr.key.as_str() == "timeout" => {
                    flow.timeout = self.literal(&attr.value)
                }
                Structure::Attribute(attr) if !proxy && attr.key.as_str() == "schema" => {
                    flow.schema = self.string(attr)
                }
                Structure::Block(inner) => match inner.ident.as_str() {
                    name if !known.contains(&name) => self.unknown(name, inner.ident.span(), known),
                    "input" => flow.input = self.input(inner, proxy),
                    "output" => flow.output = self.param_map(inner),
                    "error" => flow.error = self.param_map(inner),
                    "on_error" => flow.on_error = self.on_error(inner),
                    "forward" => {
                        if let Some(forward) = self.forward(inner) {
                            flow.forward = Some(forward);
                        }
                    }
                    "rewrite" => flow.rewrites.extend(self.rewrite(inner)),
                    _ => self.resources(inner, &mut Vec::new(), false, &mut flow.resources),
                },
                Structure::Attribute(attr) => self.unknown(attr.key.as_str(), attr.key.span(), known),
            }
        }
        if proxy && flow.forward.is_none() {
            let span = flow.name.span.clone();
            self.reporter
                .error(&span, format!("proxy `{}` has no `forward`", flow.name.value))
                .note("add `forward \"pkg.Service\" {}`");
        }
        Some(flow)
    }

    /// `forward "service" { header { ... } }` of a proxy.
    fn forward(&mut self, block: &Block) -> Option<ForwardDef> {
        let service = self.labels(block, &["service"]).and_then(|l| l.into_iter().next())?;
        let mut headers = Vec::new();
        for structure in block.body.iter() {
            match structure {
                Structure::Block(h) if h.ident.as_str() == "header" => headers = self.pairs(h),
                other => self.unknown(structure_name(other), structure_span(other), &["header"]),
            }
        }
        Some(ForwardDef { service, headers })
    }

    /// `rewrite "pattern" "template" {}` of a proxy.
    fn rewrite(&mut self, block: &Block) -> Option<(Spanned<String>, Spanned<String>)> {
        let mut labels = self.labels(block, &["pattern", "template"])?.into_iter();
        Some((labels.next()?, labels.next()?))
    }

    /// `resource`, `resources`, `if` and `before` blocks, which may nest in `if` and `before`.
    fn resources(
        &mut self,
        block: &Block,
        conditions: &mut Vec<Spanned<String>>,
        before: bool,
        out: &mut Vec<ResourceDef>,
    ) {
        match block.ident.as_str() {
            "resource" => {
                if let Some(resource) = self.resource(block, conditions, before) {
                    out.push(resource);
                }
            }
            "resources" => {
                for structure in block.body.iter() {
                    let Structure::Attribute(attr) = structure else {
                        self.unknown(structure_name(structure), structure_span(structure), &[]);
                        continue;
                    };
                    let name =
                        Spanned { value: attr.key.as_str().to_string(), span: self.span(attr.key.span()) };
                    let Some(value) = self.literal(&attr.value) else { continue };
                    out.push(ResourceDef {
                        name,
                        conditions: conditions.clone(),
                        before,
                        depends_on: Vec::new(),
                        request: None,
                        rollback: None,
                        error: None,
                        on_error: None,
                        expect_status: Vec::new(),
                        value: Some(value),
                    });
                }
            }
            "if" | "before" => {
                let is_if = block.ident.as_str() == "if";
                if is_if {
                    let Some(condition) =
                        self.labels(block, &["condition"]).and_then(|l| l.into_iter().next())
                    else {
                        return;
                    };
                    conditions.push(condition);
                }
                for structure in block.body.iter() {
                    match structure {
                        Structure::Block(inner)
                            if matches!(inner.ident.as_str(), "resource" | "resources" | "if") =>
                        {
                            self.resources(inner, conditions, before || !is_if, out)
                        }
                        other => self.unknown(
                            structure_name(other),
                            structure_span(other),
                            &["resource", "resources", "if"],
                        ),
                    }
                }
                if is_if {
                    conditions.pop();
                }
            }
            _ => {}
        }
    }

    fn input(&mut self, block: &Block, proxy: bool) -> Option<InputDef> {
        let message = if proxy {
            if !block.labels.is_empty() {
                let span = self.span(block.ident.span());
                self.reporter
                    .error(&span, "a proxy's input has no schema: its body is forwarded as it is")
                    .label("remove the label");
            }
            None
        } else if let (true, Some(payload)) = (block.labels.is_empty(), payload(block)) {
            // Semaphore's earlier spelling: `input { payload "<message>" {} }`.
            Some(self.labels(payload, &["message"])?.into_iter().next()?)
        } else {
            Some(self.labels(block, &["message"])?.into_iter().next()?)
        };
        let mut input = InputDef { message, headers: Vec::new() };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) if attr.key.as_str() == "header" => {
                    input.headers = self.string_list(attr)
                }
                Structure::Block(inner) if inner.ident.as_str() == "payload" && !proxy => {}
                Structure::Attribute(attr) if proxy && attr.key.as_str() == "params" => {
                    drop(self.string(attr))
                }
                Structure::Block(inner) if inner.ident.as_str() == "options" => drop(self.pairs(inner)),
                other => self.unknown(structure_name(other), structure_span(other), &["header", "options"]),
            }
        }
        Some(input)
    }

    fn resource(
        &mut self,
        block: &Block,
        conditions: &[Spanned<String>],
        before: bool,
    ) -> Option<ResourceDef> {
        let name = self.labels(block, &["name"])?.into_iter().next()?;
        let mut resource = ResourceDef {
            name,
            conditions: conditions.to_vec(),
            before,
            depends_on: Vec::new(),
            request: None,
            rollback: None,
            error: None,
            on_error: None,
            expect_status: Vec::new(),
            value: None,
        };
        const KNOWN: &[&str] = &["request", "rollback", "depends_on", "expect_status", "error", "on_error"];
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) if attr.key.as_str() == "depends_on" => {
                    resource.depends_on = self.string_list(attr)
                }
                Structure::Attribute(attr) if attr.key.as_str() == "expect_status" => {
                    resource.expect_status = match &attr.value {
                        Expression::Array(items) => items.iter().filter_map(|e| self.literal(e)).collect(),
                        other => self.literal(other).into_iter().collect(),
                    }
                }
                Structure::Block(inner) => match inner.ident.as_str() {
                    "request" => resource.request = self.call(inner),
                    "rollback" => resource.rollback = self.call(inner),
                    "error" => resource.error = self.param_map(inner),
                    "on_error" => resource.on_error = self.on_error(inner),
                    other => self.unknown(other, inner.ident.span(), KNOWN),
                },
                Structure::Attribute(attr) => self.unknown(attr.key.as_str(), attr.key.span(), KNOWN),
            }
        }
        Some(resource)
    }

    fn call(&mut self, block: &Block) -> Option<CallDef> {
        let mut labels = self.labels(block, &["service", "method"])?.into_iter();
        let (service, method) = (labels.next()?, labels.next()?);
        let mut call = CallDef {
            service,
            method,
            fields: Vec::new(),
            headers: Vec::new(),
            params: Vec::new(),
            options: Vec::new(),
        };
        for structure in block.body.iter() {
            match structure {
                Structure::Block(inner) => match inner.ident.as_str() {
                    "header" => call.headers = self.pairs(inner),
                    "params" => call.params = self.pairs(inner),
                    "options" => call.options = self.pairs(inner),
                    "message" | "repeated" => call.fields.extend(self.nested(inner)),
                    other => self.unknown(
                        other,
                        inner.ident.span(),
                        &["header", "params", "options", "message", "repeated"],
                    ),
                },
                Structure::Attribute(attr) => call.fields.extend(self.field(attr)),
            }
        }
        Some(call)
    }

    /// `output "schema" { ... }`, `error "schema" { ... }`.
    fn param_map(&mut self, block: &Block) -> Option<ParamMap> {
        // Semaphore's earlier spelling: `output { header {} payload "<schema>" { ... } }`.
        if let (true, Some(payload)) = (block.labels.is_empty(), payload(block)) {
            let mut map = self.param_map(payload)?;
            for structure in block.body.iter() {
                match structure {
                    Structure::Block(inner) if inner.ident.as_str() == "header" => {
                        map.headers.extend(self.pairs(inner))
                    }
                    Structure::Block(inner) if inner.ident.as_str() == "payload" => {}
                    other => {
                        self.unknown(structure_name(other), structure_span(other), &["header", "payload"])
                    }
                }
            }
            return Some(map);
        }
        let schema = self.labels(block, &["schema"])?.into_iter().next()?;
        let mut map = ParamMap { schema, fields: Vec::new(), headers: Vec::new() };
        for structure in block.body.iter() {
            match structure {
                Structure::Block(inner) => match inner.ident.as_str() {
                    "header" => map.headers = self.pairs(inner),
                    "options" => drop(self.pairs(inner)),
                    "message" | "repeated" => map.fields.extend(self.nested(inner)),
                    other => {
                        self.unknown(other, inner.ident.span(), &["header", "message", "repeated", "options"])
                    }
                },
                Structure::Attribute(attr) => map.fields.extend(self.field(attr)),
            }
        }
        Some(map)
    }

    fn on_error(&mut self, block: &Block) -> Option<OnErrorDef> {
        let mut on_error = OnErrorDef::default();
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => match attr.key.as_str() {
                    "schema" => on_error.schema = self.string(attr),
                    "status" => on_error.status = self.literal(&attr.value),
                    "message" => on_error.message = self.literal(&attr.value),
                    other => self.unknown(other, attr.key.span(), &["schema", "status", "message", "params"]),
                },
                Structure::Block(inner) if inner.ident.as_str() == "params" => {
                    on_error.params = self.pairs(inner)
                }
                Structure::Block(inner) => {
                    self.unknown(inner.ident.as_str(), inner.ident.span(), &["params"])
                }
            }
        }
        Some(on_error)
    }

    /// `message "field" { ... }` and `repeated "field" "resource:path" { ... }`.
    fn nested(&mut self, block: &Block) -> Option<FieldDef> {
        let repeated = block.ident.as_str() == "repeated";
        let labels = if repeated {
            self.labels(block, &["field", "source"])?
        } else {
            self.labels(block, &["field"])?
        };
        let mut labels = labels.into_iter();
        let name = labels.next()?;
        let mut fields = Vec::new();
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => fields.extend(self.field(attr)),
                Structure::Block(inner) if matches!(inner.ident.as_str(), "message" | "repeated") => {
                    fields.extend(self.nested(inner))
                }
                Structure::Block(inner) => {
                    self.unknown(inner.ident.as_str(), inner.ident.span(), &["message", "repeated"])
                }
            }
        }
        let value = match labels.next() {
            Some(source) => FieldValue::Repeated { source, fields },
            None => FieldValue::Message(fields),
        };
        Some(FieldDef { name, value })
    }

    fn field(&mut self, attr: &Attribute) -> Option<FieldDef> {
        let name = Spanned { value: attr.key.as_str().to_string(), span: self.span(attr.key.span()) };
        let value = self.literal(&attr.value)?;
        Some(FieldDef { name, value: FieldValue::Literal(value) })
    }

    fn pairs(&mut self, block: &Block) -> Vec<Pair> {
        let mut out = Vec::new();
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key =
                        Spanned { value: attr.key.as_str().to_string(), span: self.span(attr.key.span()) };
                    if let Some(value) = self.literal(&attr.value) {
                        out.push((key, value));
                    }
                }
                Structure::Block(inner) => self.unknown(inner.ident.as_str(), inner.ident.span(), &[]),
            }
        }
        out
    }
}

/// Where a structure is named: the key of an attribute, the identifier of a block.
fn structure_span(structure: &Structure) -> Option<std::ops::Range<usize>> {
    match structure {
        Structure::Attribute(attr) => attr.key.span(),
        Structure::Block(block) => block.ident.span(),
    }
}

/// The `payload "<message>" { ... }` block inside an `input`, `output` or `error` without a
/// label, as Semaphore's earlier configurations wrote them.
fn payload(block: &Block) -> Option<&Block> {
    block.body.iter().find_map(|structure| match structure {
        Structure::Block(inner) if inner.ident.as_str() == "payload" => Some(inner),
        _ => None,
    })
}

fn structure_name(structure: &Structure) -> &str {
    match structure {
        Structure::Attribute(attr) => attr.key.as_str(),
        Structure::Block(block) => block.ident.as_str(),
    }
}
