//! Reads HCL configuration files (following `include`) into a syntax tree that keeps the source
//! span of everything a diagnostic may point at.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Structure};
use hcl_edit::Span as _;

use crate::diagnostics::{Reporter, Span};

#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

#[derive(Default, Debug)]
pub struct Config {
    pub proto_files: Vec<PathBuf>,
    /// Directories the proto files' imports resolve against.
    pub proto_includes: Vec<PathBuf>,
    pub listen: Option<Spanned<String>>,
    pub service_selects: Vec<ServiceSelect>,
    pub endpoints: Vec<EndpointDef>,
    pub flows: Vec<FlowDef>,
}

/// `services { select "pkg.*" { ... } }`: settings for every service the pattern matches.
#[derive(Debug)]
pub struct ServiceSelect {
    pub pattern: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
    pub codec: Option<Spanned<String>>,
    pub request_codec: Option<Spanned<String>>,
    pub response_codec: Option<Spanned<String>>,
}

#[derive(Debug)]
pub struct EndpointDef {
    pub flow: Spanned<String>,
    pub kind: Spanned<String>,
    pub route: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub codec: Option<Spanned<String>>,
    pub request_codec: Option<Spanned<String>>,
    pub response_codec: Option<Spanned<String>>,
    pub status: Option<Spanned<Literal>>,
    pub span: Span,
}

#[derive(Debug)]
pub struct FlowDef {
    pub name: Spanned<String>,
    pub input: Option<InputDef>,
    pub resources: Vec<ResourceDef>,
    pub output: Option<OutputDef>,
}

#[derive(Debug)]
pub struct InputDef {
    pub message: Spanned<String>,
    pub headers: Vec<Spanned<String>>,
}

#[derive(Debug)]
pub struct ResourceDef {
    pub name: Spanned<String>,
    pub depends_on: Vec<Spanned<String>>,
    pub request: Option<CallDef>,
}

#[derive(Debug)]
pub struct CallDef {
    pub service: Spanned<String>,
    pub method: Spanned<String>,
    pub fields: Vec<FieldDef>,
    pub headers: Vec<(Spanned<String>, Spanned<Literal>)>,
    pub params: Vec<(Spanned<String>, Spanned<Literal>)>,
    pub timeout: Option<Spanned<Literal>>,
}

#[derive(Debug)]
pub struct OutputDef {
    pub message: Spanned<String>,
    pub fields: Vec<FieldDef>,
    pub headers: Vec<(Spanned<String>, Spanned<Literal>)>,
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
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => {
            let message = format!("cannot read {}: {e}", path.display());
            match included_at {
                Some(span) => drop(reporter.error(span, message)),
                None => reporter.error_without_span(message),
            }
            return;
        }
    };
    let file = reporter.add_file(path.display().to_string(), source.clone());
    let body = match hcl_edit::parser::parse_body(&source) {
        Ok(body) => body,
        Err(e) => {
            let offset = e.location().offset();
            let span = Span { file, range: offset..offset };
            reporter.error(&span, format!("syntax error: {}", e.message()));
            return;
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut reader = Reader { file, reporter };
    let mut includes = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => match attr.key.as_str() {
                "protobuffers" => {
                    for pattern in reader.string_list(attr) {
                        let found = reader.glob(&dir, &pattern);
                        if !found.is_empty() {
                            config.proto_files.extend(found);
                            let base = pattern.value.split(['*', '?', '[']).next().unwrap_or("");
                            let base_dir = Path::new(base).parent().unwrap_or(Path::new(""));
                            config.proto_includes.push(dir.join(base_dir));
                        }
                    }
                }
                "include" => {
                    for pattern in reader.string_list(attr) {
                        for found in reader.glob(&dir, &pattern) {
                            includes.push((found, pattern.span.clone()));
                        }
                    }
                }
                "log_level" => reader.warn_daemon_only(attr.key.as_str(), attr.span()),
                other => reader.unknown(other, attr.span(), &["protobuffers", "include", "log_level"]),
            },
            Structure::Block(block) => match block.ident.as_str() {
                "endpoint" => {
                    if let Some(endpoint) = reader.endpoint(block) {
                        config.endpoints.push(endpoint);
                    }
                }
                "flow" => {
                    if let Some(flow) = reader.flow(block) {
                        config.flows.push(flow);
                    }
                }
                "services" => reader.services(block, &mut config.service_selects),
                "http" => {
                    for attr in block.body.attributes() {
                        match attr.key.as_str() {
                            "address" => config.listen = reader.string(attr),
                            other => reader.warn_daemon_only(&format!("http.{other}"), attr.span()),
                        }
                    }
                }
                "grpc" | "graphql" | "prometheus" => {
                    reader.warn_daemon_only(block.ident.as_str(), block.span())
                }
                other => reader.unknown(
                    other,
                    block.span(),
                    &["endpoint", "flow", "services", "http", "grpc", "graphql", "prometheus"],
                ),
            },
        }
    }
    for (found, span) in includes {
        load_file(&found, Some(&span), config, seen, reporter);
    }
}

/// Reads one file's blocks, reporting what does not fit.
struct Reader<'r> {
    file: usize,
    reporter: &'r mut Reporter,
}

impl Reader<'_> {
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
            Expression::String(s) => Literal::String(s.value().clone()),
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
        if block.labels.len() != names.len() {
            let span = self.span(block.ident.span());
            let expected = names.iter().map(|n| format!("\"<{n}>\"")).collect::<Vec<_>>().join(" ");
            self.reporter
                .error(
                    &span,
                    format!(
                        "`{}` takes {} label(s), found {}",
                        block.ident.as_str(),
                        names.len(),
                        block.labels.len()
                    ),
                )
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

    fn endpoint(&mut self, block: &Block) -> Option<EndpointDef> {
        let mut labels = self.labels(block, &["flow", "kind"])?.into_iter();
        let (flow, kind) = (labels.next()?, labels.next()?);
        let mut endpoint = EndpointDef {
            flow,
            kind,
            route: None,
            method: None,
            codec: None,
            request_codec: None,
            response_codec: None,
            status: None,
            span: self.span(block.span()),
        };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => match attr.key.as_str() {
                    "endpoint" => endpoint.route = self.string(attr),
                    "method" => endpoint.method = self.string(attr),
                    "codec" => endpoint.codec = self.string(attr),
                    "request_codec" => endpoint.request_codec = self.string(attr),
                    "response_codec" => endpoint.response_codec = self.string(attr),
                    "status" => endpoint.status = self.literal(&attr.value),
                    other => self.unknown(
                        other,
                        attr.span(),
                        &["endpoint", "method", "codec", "request_codec", "response_codec", "status"],
                    ),
                },
                Structure::Block(inner) if inner.ident.as_str() == "options" => {}
                Structure::Block(inner) => self.unknown(inner.ident.as_str(), inner.span(), &["options"]),
            }
        }
        Some(endpoint)
    }

    fn services(&mut self, block: &Block, selects: &mut Vec<ServiceSelect>) {
        for structure in block.body.iter() {
            let Structure::Block(select) = structure else {
                self.unknown("attribute", structure.span(), &["select"]);
                continue;
            };
            if select.ident.as_str() != "select" {
                self.unknown(select.ident.as_str(), select.span(), &["select"]);
                continue;
            }
            let Some(pattern) = self.labels(select, &["pattern"]).and_then(|l| l.into_iter().next()) else {
                continue;
            };
            let mut entry = ServiceSelect {
                pattern,
                host: None,
                transport: None,
                codec: None,
                request_codec: None,
                response_codec: None,
            };
            for attr in select.body.attributes() {
                let slot = match attr.key.as_str() {
                    "host" => &mut entry.host,
                    "transport" => &mut entry.transport,
                    "codec" => &mut entry.codec,
                    "request_codec" => &mut entry.request_codec,
                    "response_codec" => &mut entry.response_codec,
                    other => {
                        self.unknown(
                            other,
                            attr.span(),
                            &["host", "transport", "codec", "request_codec", "response_codec"],
                        );
                        continue;
                    }
                };
                *slot = self.string(attr);
            }
            selects.push(entry);
        }
    }

    fn flow(&mut self, block: &Block) -> Option<FlowDef> {
        let name = self.labels(block, &["name"])?.into_iter().next()?;
        let mut flow = FlowDef { name, input: None, resources: Vec::new(), output: None };
        for structure in block.body.iter() {
            match structure {
                Structure::Block(inner) => match inner.ident.as_str() {
                    "input" => flow.input = self.input(inner),
                    "resource" => {
                        if let Some(resource) = self.resource(inner) {
                            flow.resources.push(resource);
                        }
                    }
                    "output" => flow.output = self.output(inner),
                    other => self.unknown(other, inner.span(), &["input", "resource", "output"]),
                },
                Structure::Attribute(attr) => {
                    self.unknown(attr.key.as_str(), attr.span(), &["input", "resource", "output"])
                }
            }
        }
        Some(flow)
    }

    fn input(&mut self, block: &Block) -> Option<InputDef> {
        let message = self.labels(block, &["message"])?.into_iter().next()?;
        let mut input = InputDef { message, headers: Vec::new() };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) if attr.key.as_str() == "header" => {
                    input.headers = self.string_list(attr)
                }
                Structure::Block(inner) if inner.ident.as_str() == "options" => {}
                other => self.unknown(structure_name(other), other.span(), &["header", "options"]),
            }
        }
        Some(input)
    }

    fn resource(&mut self, block: &Block) -> Option<ResourceDef> {
        let name = self.labels(block, &["name"])?.into_iter().next()?;
        let mut resource = ResourceDef { name, depends_on: Vec::new(), request: None };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) if attr.key.as_str() == "depends_on" => {
                    resource.depends_on = self.string_list(attr)
                }
                Structure::Block(inner) if inner.ident.as_str() == "request" => {
                    resource.request = self.call(inner)
                }
                other => self.unknown(structure_name(other), other.span(), &["request", "depends_on"]),
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
            timeout: None,
        };
        for structure in block.body.iter() {
            match structure {
                Structure::Block(inner) => match inner.ident.as_str() {
                    "header" => call.headers = self.pairs(inner),
                    "params" => call.params = self.pairs(inner),
                    "options" => {
                        for attr in inner.body.attributes() {
                            match attr.key.as_str() {
                                "timeout" => call.timeout = self.literal(&attr.value),
                                other => drop(
                                    self.reporter
                                        .warning(&self.span(attr.span()), format!("unknown option `{other}`"))
                                        .label("ignored"),
                                ),
                            }
                        }
                    }
                    "message" => {
                        if let Some(field) = self.message_field(inner) {
                            call.fields.push(field);
                        }
                    }
                    other => self.unknown(other, inner.span(), &["header", "params", "options", "message"]),
                },
                Structure::Attribute(attr) => {
                    if let Some(field) = self.field(attr) {
                        call.fields.push(field);
                    }
                }
            }
        }
        Some(call)
    }

    fn output(&mut self, block: &Block) -> Option<OutputDef> {
        let message = self.labels(block, &["message"])?.into_iter().next()?;
        let mut output = OutputDef { message, fields: Vec::new(), headers: Vec::new() };
        for structure in block.body.iter() {
            match structure {
                Structure::Block(inner) if inner.ident.as_str() == "header" => {
                    output.headers = self.pairs(inner)
                }
                Structure::Block(inner) if inner.ident.as_str() == "message" => {
                    if let Some(field) = self.message_field(inner) {
                        output.fields.push(field);
                    }
                }
                Structure::Block(inner) => {
                    self.unknown(inner.ident.as_str(), inner.span(), &["header", "message"])
                }
                Structure::Attribute(attr) => {
                    if let Some(field) = self.field(attr) {
                        output.fields.push(field);
                    }
                }
            }
        }
        Some(output)
    }

    fn message_field(&mut self, block: &Block) -> Option<FieldDef> {
        let name = self.labels(block, &["field"])?.into_iter().next()?;
        let mut fields = Vec::new();
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    if let Some(field) = self.field(attr) {
                        fields.push(field);
                    }
                }
                Structure::Block(inner) if inner.ident.as_str() == "message" => {
                    if let Some(field) = self.message_field(inner) {
                        fields.push(field);
                    }
                }
                Structure::Block(inner) => self.unknown(inner.ident.as_str(), inner.span(), &["message"]),
            }
        }
        Some(FieldDef { name, value: FieldValue::Message(fields) })
    }

    fn field(&mut self, attr: &Attribute) -> Option<FieldDef> {
        let name = Spanned { value: attr.key.as_str().to_string(), span: self.span(attr.key.span()) };
        let value = self.literal(&attr.value)?;
        Some(FieldDef { name, value: FieldValue::Literal(value) })
    }

    fn pairs(&mut self, block: &Block) -> Vec<(Spanned<String>, Spanned<Literal>)> {
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
                Structure::Block(inner) => self.unknown(inner.ident.as_str(), inner.span(), &[]),
            }
        }
        out
    }
}

fn structure_name(structure: &Structure) -> &str {
    match structure {
        Structure::Attribute(attr) => attr.key.as_str(),
        Structure::Block(block) => block.ident.as_str(),
    }
}
