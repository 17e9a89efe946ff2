//! Checks every flow against the schemas and lowers it into the plan: names become indices,
//! templates become resolved references, routes and upstream paths become segment lists.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use semaphore_plan as plan;

use crate::config::{CallDef, Config, EndpointDef, FieldDef, FieldValue, FlowDef, Literal, Spanned};
use crate::diagnostics::{Reporter, Span};
use crate::schema::{Layouts, Schemas};
use crate::template::{self, Part, TemplateRef};

pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
const RESERVED_NAMES: &[&str] = &["input", "error", "stack", "output"];

pub fn lower(config: &Config, schemas: &Schemas, reporter: &mut Reporter) -> plan::Plan {
    let mut lowering = Lowering {
        config,
        schemas,
        reporter,
        layouts: Layouts::default(),
        services: Vec::new(),
        service_index: HashMap::new(),
    };
    let mut flow_index = HashMap::new();
    let mut flows = Vec::new();
    for flow in &config.flows {
        if let Some(previous) = flow_index.get(&flow.name.value) {
            let _: &usize = previous;
            lowering
                .reporter
                .error(&flow.name.span, format!("flow `{}` is defined twice", flow.name.value))
                .label("second definition");
            continue;
        }
        if let Some(lowered) = lowering.flow(flow) {
            flow_index.insert(flow.name.value.clone(), flows.len());
            flows.push(lowered);
        }
    }
    let endpoints = lowering.endpoints(&flow_index, &flows);
    plan::Plan { services: lowering.services, messages: lowering.layouts.messages, endpoints, flows }
}

struct Lowering<'a> {
    config: &'a Config,
    schemas: &'a Schemas,
    reporter: &'a mut Reporter,
    layouts: Layouts,
    services: Vec<plan::Service>,
    service_index: HashMap<String, u32>,
}

/// What a template reference points at, for type checks.
enum RefType {
    Message(MessageDescriptor),
    Field(FieldDescriptor),
    /// A header value: always a string.
    Header,
}

/// What a value is assigned to.
enum Target<'t> {
    Field(&'t FieldDescriptor),
    /// Headers and params: strings.
    Text,
}

/// Per-flow names visible to templates.
struct Scope {
    input: Option<MessageDescriptor>,
    input_headers: Vec<String>,
    nodes: HashMap<String, NodeInfo>,
}

struct NodeInfo {
    index: u32,
    method: Option<prost_reflect::MethodDescriptor>,
    request: Option<MessageDescriptor>,
    response: Option<MessageDescriptor>,
}

impl Lowering<'_> {
    fn message(&mut self, name: &Spanned<String>) -> Option<MessageDescriptor> {
        let found = self.schemas.message(&name.value);
        if found.is_none() {
            self.reporter
                .error(&name.span, format!("unknown message `{}`", name.value))
                .label("no proto defines this message")
                .suggest(
                    &name.value,
                    self.schemas
                        .pool
                        .all_messages()
                        .map(|m| m.full_name().to_string())
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str),
                    None,
                );
        }
        found
    }

    fn flow(&mut self, flow: &FlowDef) -> Option<plan::Flow> {
        let errors_before = self.reporter.errors();
        let input = match &flow.input {
            Some(input) => self.message(&input.message),
            None => None,
        };
        let input_headers = flow
            .input
            .as_ref()
            .map(|i| i.headers.iter().map(|h| h.value.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        let mut scope = Scope { input: input.clone(), input_headers, nodes: HashMap::new() };

        // Names first, so that references may point at resources defined further down.
        for (index, resource) in flow.resources.iter().enumerate() {
            let name = &resource.name;
            if RESERVED_NAMES.contains(&name.value.as_str()) {
                self.reporter
                    .error(&name.span, format!("`{}` is a reserved name", name.value))
                    .label("choose another resource name");
                continue;
            }
            if scope.nodes.contains_key(&name.value) {
                self.reporter
                    .error(
                        &name.span,
                        format!("resource `{}` is defined twice in flow `{}`", name.value, flow.name.value),
                    )
                    .label("second definition");
                continue;
            }
            let method = resource.request.as_ref().and_then(|call| self.method(call));
            let request = method.as_ref().map(|m| m.input());
            let response = method.as_ref().map(|m| m.output());
            scope
                .nodes
                .insert(name.value.clone(), NodeInfo { index: index as u32, method, request, response });
        }

        let mut nodes = Vec::new();
        let mut edges: Vec<Vec<(u32, Span)>> = Vec::new();
        for resource in &flow.resources {
            let mut deps = BTreeMap::new();
            for dependency in &resource.depends_on {
                match scope.nodes.get(&dependency.value) {
                    Some(info) => {
                        deps.insert(info.index, dependency.span.clone());
                    }
                    None => self.unknown_resource(&dependency.value, &dependency.span, &scope),
                }
            }
            let method = scope.nodes.get(&resource.name.value).and_then(|n| n.method.clone());
            let call = match (&resource.request, method) {
                (Some(call), Some(method)) => self.call(call, method, &scope, &mut deps),
                _ => None,
            };
            if let Some(own) = scope.nodes.get(&resource.name.value) {
                deps.remove(&own.index).map(|span| {
                    self.reporter
                        .error(&span, format!("resource `{}` depends on itself", resource.name.value))
                });
            }
            edges.push(deps.iter().map(|(i, s)| (*i, s.clone())).collect());
            nodes.push(plan::Node {
                name: resource.name.value.clone(),
                depends_on: deps.keys().copied().collect(),
                call,
            });
        }
        self.check_cycles(flow, &edges);

        let output = flow.output.as_ref().and_then(|output| {
            let message = self.message(&output.message)?;
            let mut deps = BTreeMap::new();
            let body = self.message_template(&output.fields, &message, &scope, &mut deps);
            let headers = self.headers(&output.headers, &scope, &mut deps);
            Some(plan::Output { message: self.layouts.layout(&message), body: Some(body), headers })
        });

        if self.reporter.errors() > errors_before {
            return None;
        }
        let input = match &input {
            Some(message) => self.layouts.layout(message),
            None => self.empty_message(),
        };
        Some(plan::Flow {
            name: flow.name.value.clone(),
            input,
            input_headers: scope.input_headers,
            nodes,
            output,
        })
    }

    /// Flows without an `input` block take no input; they still get a layout to decode into.
    fn empty_message(&mut self) -> u32 {
        let empty = self.schemas.message("google.protobuf.Empty");
        match empty {
            Some(message) => self.layouts.layout(&message),
            None => {
                self.layouts
                    .messages
                    .push(plan::MessageLayout { name: "google.protobuf.Empty".into(), fields: vec![] });
                (self.layouts.messages.len() - 1) as u32
            }
        }
    }

    fn check_cycles(&mut self, flow: &FlowDef, edges: &[Vec<(u32, Span)>]) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        fn visit(
            node: usize,
            edges: &[Vec<(u32, Span)>],
            marks: &mut [Mark],
            stack: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            marks[node] = Mark::Active;
            stack.push(node);
            for (next, _) in &edges[node] {
                let next = *next as usize;
                match marks[next] {
                    Mark::Active => {
                        let start = stack.iter().position(|n| *n == next).unwrap_or(0);
                        return Some(stack[start..].to_vec());
                    }
                    Mark::New => {
                        if let Some(cycle) = visit(next, edges, marks, stack) {
                            return Some(cycle);
                        }
                    }
                    Mark::Done => {}
                }
            }
            stack.pop();
            marks[node] = Mark::Done;
            None
        }
        let mut marks = vec![Mark::New; edges.len()];
        for start in 0..edges.len() {
            if marks[start] != Mark::New {
                continue;
            }
            if let Some(cycle) = visit(start, edges, &mut marks, &mut Vec::new()) {
                let names: Vec<&str> = cycle.iter().map(|i| flow.resources[*i].name.value.as_str()).collect();
                let first = cycle[0];
                let path =
                    names.iter().chain(std::iter::once(&names[0])).copied().collect::<Vec<_>>().join(" -> ");
                self.reporter
                    .error(
                        &flow.resources[first].name.span,
                        format!("dependency cycle in flow `{}`: {path}", flow.name.value),
                    )
                    .label("this resource waits for itself through the cycle");
                return;
            }
        }
    }

    fn method(&mut self, call: &CallDef) -> Option<prost_reflect::MethodDescriptor> {
        let Some(service) = self.schemas.service(&call.service.value) else {
            let names: Vec<String> =
                self.schemas.pool.services().map(|s| s.full_name().to_string()).collect();
            self.reporter
                .error(&call.service.span, format!("unknown service `{}`", call.service.value))
                .label("no proto defines this service")
                .suggest(&call.service.value, names.iter().map(String::as_str), None);
            return None;
        };
        let found = service.methods().find(|m| m.name() == call.method.value);
        if found.is_none() {
            let names: Vec<String> = service.methods().map(|m| m.name().to_string()).collect();
            self.reporter
                .error(
                    &call.method.span,
                    format!("service `{}` has no method `{}`", call.service.value, call.method.value),
                )
                .label("unknown method")
                .suggest(
                    &call.method.value,
                    names.iter().map(String::as_str),
                    Some(format!("its methods: {}", names.join(", "))),
                );
        }
        found
    }

    fn call(
        &mut self,
        call: &CallDef,
        method: prost_reflect::MethodDescriptor,
        scope: &Scope,
        deps: &mut BTreeMap<u32, Span>,
    ) -> Option<plan::Call> {
        let service = self.service(call)?;
        let request_message = method.input();
        let request = self.message_template(&call.fields, &request_message, scope, deps);
        let headers = self.headers(&call.headers, scope, deps);
        let params: Vec<plan::NamedValue> = call
            .params
            .iter()
            .filter_map(|(name, value)| {
                let value = self.value(value, &Target::Text, scope, deps)?;
                Some(plan::NamedValue { name: name.value.clone(), value: Some(value) })
            })
            .collect();
        let annotation = self.schemas.http_annotation(&method);
        let transport = self.services.get(service as usize).map(|s| s.transport).unwrap_or_default();
        let (http_method, path) = match annotation {
            Some(http) => {
                let route = http.endpoint.clone();
                let segments = parse_path(&route);
                for segment in &segments {
                    if let Some(plan::Segment::Param(name) | plan::Segment::Wildcard(name)) = &segment.segment
                    {
                        let in_params = call.params.iter().any(|(p, _)| &p.value == name);
                        let in_request = request_message.get_field_by_name(name).is_some();
                        if !in_params && !in_request {
                            self.reporter
                                .error(&call.method.span, format!("the path `{route}` of `{}` needs a value for `:{name}`", method.full_name()))
                                .label("no value for a path parameter")
                                .note(format!("add `params {{ {name} = \"...\" }}` to the request, or a `{name}` field to `{}`", request_message.full_name()));
                        }
                    }
                }
                let verb =
                    if http.method.is_empty() { "GET".to_string() } else { http.method.to_ascii_uppercase() };
                (verb, segments)
            }
            None if transport == plan::Transport::Grpc as i32 => ("POST".to_string(), Vec::new()),
            None => {
                self.reporter
                    .error(&call.method.span, format!("`{}` has no `semaphore.api.http` option", method.full_name()))
                    .label("an HTTP service needs the method's path")
                    .note("add `option (semaphore.api.http) = { endpoint: \"/path/:id\" method: \"GET\" };` to the rpc");
                return None;
            }
        };
        let timeout_ms = match &call.timeout {
            Some(timeout) => self.duration_ms(timeout)?,
            None => DEFAULT_TIMEOUT_MS,
        };
        Some(plan::Call {
            service,
            method: method.name().to_string(),
            http_method,
            path,
            request_message: self.layouts.layout(&request_message),
            response_message: self.layouts.layout(&method.output()),
            request: Some(request),
            headers,
            params,
            timeout_ms,
        })
    }

    fn duration_ms(&mut self, value: &Spanned<Literal>) -> Option<u32> {
        let parsed = match &value.value {
            Literal::Int(ms) => u32::try_from(*ms).ok(),
            Literal::String(text) => parse_duration_ms(text),
            _ => None,
        };
        if parsed.is_none() {
            self.reporter
                .error(
                    &value.span,
                    "expected a duration such as \"500ms\", \"5s\" or a number of milliseconds",
                )
                .label("not a duration");
        }
        parsed
    }

    fn service(&mut self, call: &CallDef) -> Option<u32> {
        let name = &call.service.value;
        if let Some(&index) = self.service_index.get(name) {
            return Some(index);
        }
        let descriptor = self.schemas.service(name)?;
        let annotation = self.schemas.service_annotation(&descriptor);
        let mut host = annotation.host;
        let mut transport = annotation.transport;
        let mut codec = annotation.codec;
        let mut request_codec = annotation.request_codec;
        let mut response_codec = annotation.response_codec;
        let mut spans: HashMap<&str, Span> = HashMap::new();
        for select in &self.config.service_selects {
            let matches = glob::Pattern::new(&select.pattern.value).map(|p| p.matches(name)).unwrap_or(false);
            if !matches {
                continue;
            }
            for (slot, value, key) in [
                (&mut host, &select.host, "host"),
                (&mut transport, &select.transport, "transport"),
                (&mut codec, &select.codec, "codec"),
                (&mut request_codec, &select.request_codec, "request_codec"),
                (&mut response_codec, &select.response_codec, "response_codec"),
            ] {
                if let Some(value) = value {
                    *slot = value.value.clone();
                    spans.insert(key, value.span.clone());
                }
            }
        }
        let span_of = |key: &str| spans.get(key).cloned().unwrap_or_else(|| call.service.span.clone());
        let transport = match transport.as_str() {
            "" | "http" => plan::Transport::Http,
            "grpc" => plan::Transport::Grpc,
            other => {
                self.reporter
                    .error(&span_of("transport"), format!("unknown transport `{other}` for service `{name}`"))
                    .note("expected \"http\" or \"grpc\"");
                return None;
            }
        };
        let default_codec = if transport == plan::Transport::Grpc { "proto" } else { "json" };
        let codec = if codec.is_empty() { default_codec.to_string() } else { codec };
        let mut codec_of = |value: &str, key: &str| -> Option<plan::Codec> {
            let value = if value.is_empty() { codec.as_str() } else { value };
            let parsed = parse_codec(value);
            if parsed.is_none() {
                let span = spans
                    .get(key)
                    .or_else(|| spans.get("codec"))
                    .cloned()
                    .unwrap_or_else(|| call.service.span.clone());
                self.reporter
                    .error(&span, format!("unknown codec `{value}` for service `{name}`"))
                    .note("expected \"json\", \"proto\" or \"form-urlencoded\"");
            }
            parsed
        };
        let request_codec = codec_of(&request_codec, "request_codec")?;
        let response_codec = codec_of(&response_codec, "response_codec")?;
        let Some(upstream) = parse_host(&host) else {
            let report = self
                .reporter
                .error(&span_of("host"), format!("service `{name}` has no usable host (`{host}`)"))
                .label("used here");
            report.note(format!(
                "set `host` in the service's `semaphore.api.service` option, or in `services {{ select \"{}\" {{ host = \"http://127.0.0.1:8080\" }} }}`",
                name.rsplit_once('.').map(|(pkg, _)| format!("{pkg}.*")).unwrap_or_else(|| name.clone())
            ));
            return None;
        };
        let index = self.services.len() as u32;
        self.services.push(plan::Service {
            name: name.clone(),
            cluster: upstream.cluster_name(),
            authority: upstream.authority(),
            transport: transport as i32,
            request_codec: request_codec as i32,
            response_codec: response_codec as i32,
            base_path: upstream.base_path,
            tls: upstream.tls,
        });
        self.service_index.insert(name.clone(), index);
        Some(index)
    }

    fn headers(
        &mut self,
        headers: &[(Spanned<String>, Spanned<Literal>)],
        scope: &Scope,
        deps: &mut BTreeMap<u32, Span>,
    ) -> Vec<plan::HeaderTemplate> {
        headers
            .iter()
            .filter_map(|(name, value)| {
                if !matches!(value.value, Literal::String(_)) {
                    self.reporter
                        .error(&value.span, format!("header `{}` must be a string", name.value))
                        .label("not a string");
                    return None;
                }
                let value = self.value(value, &Target::Text, scope, deps)?;
                Some(plan::HeaderTemplate { name: name.value.to_ascii_lowercase(), value: Some(value) })
            })
            .collect()
    }

    fn message_template(
        &mut self,
        fields: &[FieldDef],
        message: &MessageDescriptor,
        scope: &Scope,
        deps: &mut BTreeMap<u32, Span>,
    ) -> plan::MessageTemplate {
        let mut out = Vec::new();
        let mut seen: HashMap<&str, &Span> = HashMap::new();
        for field in fields {
            if let Some(first) = seen.insert(&field.name.value, &field.name.span) {
                let _ = first;
                self.reporter
                    .error(&field.name.span, format!("field `{}` is set twice", field.name.value))
                    .label("second assignment");
                continue;
            }
            let Some((index, descriptor)) =
                message.fields().enumerate().find(|(_, f)| f.name() == field.name.value)
            else {
                let names: Vec<String> = message.fields().map(|f| f.name().to_string()).collect();
                self.reporter
                    .error(
                        &field.name.span,
                        format!("message `{}` has no field `{}`", message.full_name(), field.name.value),
                    )
                    .label("unknown field")
                    .suggest(
                        &field.name.value,
                        names.iter().map(String::as_str),
                        Some(format!("its fields: {}", names.join(", "))),
                    );
                continue;
            };
            let value = match &field.value {
                FieldValue::Literal(value) => self.value(value, &Target::Field(&descriptor), scope, deps),
                FieldValue::Message(nested) => match descriptor.kind() {
                    Kind::Message(inner) if !descriptor.is_list() && !descriptor.is_map() => {
                        let template = self.message_template(nested, &inner, scope, deps);
                        Some(plan::Value { kind: Some(plan::ValueKind::Message(template)) })
                    }
                    _ => {
                        self.reporter
                            .error(&field.name.span, format!("field `{}` is not a message", field.name.value))
                            .label(format!("`{}` is {}", field.name.value, describe_field(&descriptor)));
                        None
                    }
                },
            };
            if let Some(value) = value {
                out.push(plan::FieldTemplate { field: index as u32, value: Some(value) });
            }
        }
        plan::MessageTemplate { fields: out }
    }

    /// A constant or template, checked against what it is assigned to.
    fn value(
        &mut self,
        value: &Spanned<Literal>,
        target: &Target,
        scope: &Scope,
        deps: &mut BTreeMap<u32, Span>,
    ) -> Option<plan::Value> {
        let Literal::String(text) = &value.value else {
            self.check_literal(value, target)?;
            return Some(literal_value(&value.value));
        };
        let parts = match template::parse(text) {
            Ok(parts) => parts,
            Err(e) => {
                let span = inner_span(&value.span, &e.range);
                self.reporter.error(&span, format!("invalid template: {}", e.message));
                return None;
            }
        };
        match parts.as_slice() {
            [] => {
                self.check_literal(value, target)?;
                Some(literal_value(&value.value))
            }
            [Part::Text(_)] => {
                self.check_literal(value, target)?;
                Some(literal_value(&value.value))
            }
            [Part::Reference(reference)] => {
                let span = inner_span(&value.span, &reference.range);
                let (resolved, ty) = self.reference(reference, &span, scope, deps)?;
                self.check_assign(&ty, target, &span)?;
                Some(plan::Value { kind: Some(plan::ValueKind::Reference(resolved)) })
            }
            parts => {
                if let Target::Field(field) = target {
                    if field.is_list() || !matches!(field.kind(), Kind::String | Kind::Bytes) {
                        self.reporter
                            .error(
                                &value.span,
                                format!(
                                    "text with templates is a string, but `{}` is {}",
                                    field.name(),
                                    describe_field(field)
                                ),
                            )
                            .label("interpolated string");
                        return None;
                    }
                }
                let mut out = Vec::new();
                for part in parts {
                    match part {
                        Part::Text(text) => out.push(literal_value(&Literal::String(text.clone()))),
                        Part::Reference(reference) => {
                            let span = inner_span(&value.span, &reference.range);
                            let (resolved, ty) = self.reference(reference, &span, scope, deps)?;
                            self.check_assign(&ty, &Target::Text, &span)?;
                            out.push(plan::Value { kind: Some(plan::ValueKind::Reference(resolved)) });
                        }
                    }
                }
                Some(plan::Value {
                    kind: Some(plan::ValueKind::Interpolation(plan::Interpolation { parts: out })),
                })
            }
        }
    }

    fn unknown_resource(&mut self, name: &str, span: &Span, scope: &Scope) {
        let mut names: Vec<&str> = scope.nodes.keys().map(String::as_str).collect();
        names.push("input");
        self.reporter
            .error(span, format!("unknown resource `{name}`"))
            .label("not a resource of this flow")
            .suggest(name, names.iter().copied(), None);
    }

    fn reference(
        &mut self,
        reference: &TemplateRef,
        span: &Span,
        scope: &Scope,
        deps: &mut BTreeMap<u32, Span>,
    ) -> Option<(plan::Reference, RefType)> {
        let (slot, property, root) = if reference.resource == "input" {
            let property = match reference.property.as_deref() {
                None | Some("request") => plan::Property::Request,
                Some("header") => plan::Property::Header,
                Some(other) => {
                    self.reporter
                        .error(span, format!("`input` has no property `{other}`"))
                        .note("input has `request` (the default) and `header`");
                    return None;
                }
            };
            let Some(input) = scope.input.clone() else {
                self.reporter.error(span, "this flow declares no `input`").label("nothing to reference");
                return None;
            };
            (plan::INPUT_SLOT, property, Some(input))
        } else {
            let Some(node) = scope.nodes.get(&reference.resource) else {
                self.unknown_resource(&reference.resource, span, scope);
                return None;
            };
            deps.entry(node.index).or_insert_with(|| span.clone());
            let (property, root) = match reference.property.as_deref() {
                None | Some("response") => (plan::Property::Response, node.response.clone()),
                Some("request") => (plan::Property::Request, node.request.clone()),
                Some("header") => (plan::Property::Header, None),
                Some("params") => (plan::Property::Params, None),
                Some(other) => {
                    self.reporter
                        .error(span, format!("resource `{}` has no property `{other}`", reference.resource))
                        .label("unknown property")
                        .suggest(
                            other,
                            ["request", "response", "header", "params"],
                            Some(
                                "resources have `request`, `response` (the default), `header` and `params`"
                                    .to_string(),
                            ),
                        );
                    return None;
                }
            };
            (node.index + 1, property, root)
        };
        let mut path = reference.path.clone();
        let ty = match property {
            plan::Property::Header | plan::Property::Params => {
                let [name] = path.as_slice() else {
                    self.reporter
                        .error(span, "a header or param reference names exactly one key")
                        .note("e.g. `{{ input.header:Authorization }}`");
                    return None;
                };
                let name = name.to_ascii_lowercase();
                if slot == plan::INPUT_SLOT && !scope.input_headers.contains(&name) {
                    self.reporter
                        .error(span, format!("header `{}` is not declared by the flow's input", path[0]))
                        .note(format!("add it to the input: `header = [\"{}\"]`", path[0]));
                    return None;
                }
                if property == plan::Property::Header {
                    path = vec![name];
                }
                RefType::Header
            }
            _ => {
                let Some(root) = root else {
                    // The resource's method did not resolve; that error is already reported.
                    return None;
                };
                self.path_type(&root, &reference.path, span)?
            }
        };
        Some((plan::Reference { slot, property: property as i32, path }, ty))
    }

    fn path_type(&mut self, root: &MessageDescriptor, path: &[String], span: &Span) -> Option<RefType> {
        let mut message = root.clone();
        let mut ty = RefType::Message(root.clone());
        for (depth, name) in path.iter().enumerate() {
            let Some(field) = message.get_field_by_name(name) else {
                let names: Vec<String> = message.fields().map(|f| f.name().to_string()).collect();
                self.reporter
                    .error(span, format!("message `{}` has no field `{name}`", message.full_name()))
                    .label("unknown field in reference")
                    .suggest(
                        name,
                        names.iter().map(String::as_str),
                        Some(format!("its fields: {}", names.join(", "))),
                    );
                return None;
            };
            let last = depth + 1 == path.len();
            if !last {
                match field.kind() {
                    Kind::Message(inner) if !field.is_list() && !field.is_map() => message = inner,
                    _ => {
                        self.reporter
                            .error(span, format!("`{name}` is {}, it has no fields", describe_field(&field)))
                            .label("path goes past a scalar or repeated field");
                        return None;
                    }
                }
            }
            ty = RefType::Field(field);
        }
        Some(ty)
    }

    fn check_assign(&mut self, source: &RefType, target: &Target, span: &Span) -> Option<()> {
        let ok = match (source, target) {
            (_, Target::Text) => match source {
                RefType::Header => true,
                RefType::Field(f) => !f.is_list() && !matches!(f.kind(), Kind::Message(_)),
                RefType::Message(_) => false,
            },
            (RefType::Header, Target::Field(field)) => {
                !field.is_list() && matches!(field.kind(), Kind::String | Kind::Bytes)
            }
            (RefType::Message(m), Target::Field(field)) => {
                !field.is_list() && matches!(field.kind(), Kind::Message(t) if t.full_name() == m.full_name())
            }
            (RefType::Field(source), Target::Field(field)) => {
                source.is_list() == field.is_list() && kinds_assignable(&source.kind(), &field.kind())
            }
        };
        if ok {
            return Some(());
        }
        let found = match source {
            RefType::Header => "a header (string)".to_string(),
            RefType::Message(m) => format!("message `{}`", m.full_name()),
            RefType::Field(f) => describe_field(f),
        };
        let expected = match target {
            Target::Text => "a string (header or param)".to_string(),
            Target::Field(f) => describe_field(f),
        };
        self.reporter
            .error(span, format!("type mismatch: expected {expected}, found {found}"))
            .label(format!("this is {found}"));
        None
    }

    fn check_literal(&mut self, value: &Spanned<Literal>, target: &Target) -> Option<()> {
        let Target::Field(field) = target else {
            return Some(());
        };
        let ok = !field.is_list()
            && match (&value.value, field.kind()) {
                (Literal::String(_), Kind::String | Kind::Bytes) => true,
                (Literal::String(name), Kind::Enum(e)) => e.get_value_by_name(name).is_some(),
                (Literal::Bool(_), Kind::Bool) => true,
                (Literal::Int(i), kind) => int_fits(i128::from(*i), &kind),
                (Literal::Uint(u), kind) => int_fits(i128::from(*u), &kind),
                (Literal::Float(_), Kind::Double | Kind::Float) => true,
                _ => false,
            };
        if ok {
            return Some(());
        }
        let found = match &value.value {
            Literal::String(s) => format!("the string \"{s}\""),
            Literal::Int(i) => format!("the integer {i}"),
            Literal::Uint(u) => format!("the integer {u}"),
            Literal::Float(f) => format!("the number {f}"),
            Literal::Bool(b) => format!("the bool {b}"),
        };
        self.reporter
            .error(
                &value.span,
                format!("type mismatch: `{}` is {}, found {found}", field.name(), describe_field(field)),
            )
            .label("does not fit the field");
        None
    }

    fn endpoints(
        &mut self,
        flow_index: &HashMap<String, usize>,
        flows: &[plan::Flow],
    ) -> Vec<plan::Endpoint> {
        let mut out = Vec::new();
        let mut routes: HashMap<(String, String), Span> = HashMap::new();
        for endpoint in &self.config.endpoints {
            if endpoint.kind.value != "http" {
                self.reporter
                    .warning(
                        &endpoint.kind.span,
                        format!(
                            "`{}` endpoints are not served inside Envoy; only `http` endpoints are",
                            endpoint.kind.value
                        ),
                    )
                    .label("ignored");
                continue;
            }
            let Some(&flow) = flow_index.get(&endpoint.flow.value) else {
                if !self.config.flows.iter().any(|f| f.name.value == endpoint.flow.value) {
                    let names: Vec<&str> = self.config.flows.iter().map(|f| f.name.value.as_str()).collect();
                    self.reporter
                        .error(
                            &endpoint.flow.span,
                            format!("endpoint exposes unknown flow `{}`", endpoint.flow.value),
                        )
                        .label("no flow has this name")
                        .suggest(&endpoint.flow.value, names, None);
                }
                continue;
            };
            if let Some(endpoint) = self.endpoint(endpoint, flow, flows, &mut routes) {
                out.push(endpoint);
            }
        }
        out
    }

    fn endpoint(
        &mut self,
        endpoint: &EndpointDef,
        flow: usize,
        flows: &[plan::Flow],
        routes: &mut HashMap<(String, String), Span>,
    ) -> Option<plan::Endpoint> {
        let Some(route) = &endpoint.route else {
            self.reporter
                .error(&endpoint.span, "http endpoint without `endpoint = \"/path\"`")
                .label("no route");
            return None;
        };
        if !route.value.starts_with('/') {
            self.reporter.error(&route.span, "a route starts with `/`").label("e.g. \"/user/:id\"");
            return None;
        }
        let method =
            endpoint.method.as_ref().map(|m| m.value.to_ascii_uppercase()).unwrap_or_else(|| "GET".into());
        let path = parse_path(&route.value);
        let shape = path
            .iter()
            .map(|s| match &s.segment {
                Some(plan::Segment::Literal(l)) => l.clone(),
                Some(plan::Segment::Param(_)) => ":".into(),
                Some(plan::Segment::Wildcard(_)) => "*".into(),
                None => String::new(),
            })
            .collect::<Vec<_>>()
            .join("/");
        if let Some(previous) = routes.insert((method.clone(), shape), route.span.clone()) {
            let _ = previous;
            self.reporter
                .error(&route.span, format!("two endpoints serve {method} {}", route.value))
                .label("this route is already taken by another endpoint");
            return None;
        }
        let input = flows.get(flow).and_then(|f| self.layouts.messages.get(f.input as usize));
        for segment in &path {
            if let Some(plan::Segment::Param(name) | plan::Segment::Wildcard(name)) = &segment.segment {
                if !input.is_some_and(|m| m.fields.iter().any(|f| &f.name == name)) {
                    self.reporter
                        .error(
                            &route.span,
                            format!("route parameter `{name}` is not a field of the flow's input"),
                        )
                        .label("unknown parameter")
                        .note(format!(
                            "add `{name}` to the input message `{}`",
                            input.map(|m| m.name.as_str()).unwrap_or("(none)")
                        ));
                    return None;
                }
            }
        }
        let status = match &endpoint.status {
            None => 200,
            Some(status) => {
                let parsed = match &status.value {
                    Literal::Int(i) => u32::try_from(*i).ok(),
                    Literal::String(s) => s.parse().ok(),
                    _ => None,
                };
                match parsed.filter(|s| (100..=599).contains(s)) {
                    Some(status) => status,
                    None => {
                        self.reporter.error(&status.span, "status must be an HTTP status code (100-599)");
                        return None;
                    }
                }
            }
        };
        let mut codec_of = |value: &Option<Spanned<String>>| -> Option<plan::Codec> {
            let Some(value) = value.as_ref().or(endpoint.codec.as_ref()) else {
                return Some(plan::Codec::Json);
            };
            let parsed = parse_codec(&value.value);
            if parsed.is_none() {
                self.reporter
                    .error(&value.span, format!("unknown codec `{}`", value.value))
                    .note("expected \"json\", \"proto\" or \"form-urlencoded\"");
            }
            parsed
        };
        let request_codec = codec_of(&endpoint.request_codec)?;
        let response_codec = codec_of(&endpoint.response_codec)?;
        Some(plan::Endpoint {
            method,
            path,
            flow: flow as u32,
            status,
            request_codec: request_codec as i32,
            response_codec: response_codec as i32,
            route: route.value.clone(),
        })
    }
}

fn parse_codec(value: &str) -> Option<plan::Codec> {
    match value {
        "json" => Some(plan::Codec::Json),
        "proto" => Some(plan::Codec::Proto),
        "form-urlencoded" => Some(plan::Codec::FormUrlencoded),
        _ => None,
    }
}

fn parse_duration_ms(text: &str) -> Option<u32> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    let ms = value * scale;
    (ms.is_finite() && ms >= 0.0 && ms <= f64::from(u32::MAX)).then_some(ms as u32)
}

/// `/user/:id/*rest` into segments; empty segments (double or trailing slashes) are dropped.
pub fn parse_path(route: &str) -> Vec<plan::PathSegment> {
    let path = route.split('?').next().unwrap_or("");
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let segment = if let Some(name) = s.strip_prefix(':') {
                plan::Segment::Param(name.to_string())
            } else if let Some(name) = s.strip_prefix('*') {
                plan::Segment::Wildcard(name.to_string())
            } else {
                plan::Segment::Literal(s.to_string())
            };
            plan::PathSegment { segment: Some(segment) }
        })
        .collect()
}

/// A service host split into what the Envoy cluster and the callouts need.
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub base_path: String,
}

impl Upstream {
    pub fn authority(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn cluster_name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

pub fn parse_host(host: &str) -> Option<Upstream> {
    let host = host.trim();
    let (tls, rest) = if let Some(rest) = host.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = host.strip_prefix("http://") {
        (false, rest)
    } else {
        (false, host)
    };
    let (authority, base) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // `:8080` (all interfaces, as daemon configs write it) means this host.
    let authority =
        if authority.starts_with(':') { format!("127.0.0.1{authority}") } else { authority.to_string() };
    let (name, port) = match authority.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || name.starts_with('[') => {
            (name.to_string(), port.parse().ok()?)
        }
        _ => (authority.clone(), if tls { 443 } else { 80 }),
    };
    if name.is_empty() {
        return None;
    }
    Some(Upstream { tls, host: name, port, base_path: base.trim_end_matches('/').to_string() })
}

fn literal_value(literal: &Literal) -> plan::Value {
    let kind = match literal {
        Literal::String(s) => plan::LiteralKind::String(s.clone()),
        Literal::Int(i) => plan::LiteralKind::Int(*i),
        Literal::Uint(u) => plan::LiteralKind::Uint(*u),
        Literal::Float(f) => plan::LiteralKind::Double(*f),
        Literal::Bool(b) => plan::LiteralKind::Bool(*b),
    };
    plan::Value { kind: Some(plan::ValueKind::Literal(plan::Literal { kind: Some(kind) })) }
}

/// The span of a template inside a quoted string literal (one byte past the opening quote).
fn inner_span(literal: &Span, range: &std::ops::Range<usize>) -> Span {
    let start = literal.range.start + 1 + range.start;
    let end = (literal.range.start + 1 + range.end).min(literal.range.end.max(start));
    Span { file: literal.file, range: start..end }
}

fn int_fits(value: i128, kind: &Kind) -> bool {
    let (min, max): (i128, i128) = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => (i32::MIN.into(), i32::MAX.into()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => (i64::MIN.into(), i64::MAX.into()),
        Kind::Uint32 | Kind::Fixed32 => (0, u32::MAX.into()),
        Kind::Uint64 | Kind::Fixed64 => (0, u64::MAX.into()),
        Kind::Double | Kind::Float => return true,
        _ => return false,
    };
    (min..=max).contains(&value)
}

fn is_integer(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Fixed32
            | Kind::Fixed64
            | Kind::Sfixed32
            | Kind::Sfixed64
    )
}

/// Whether a value of `source`'s type may be stored in a field of `target`'s type. Integers
/// convert among themselves (range-checked at run time) and into floats; scalars format into
/// strings; nothing parses out of a string implicitly.
fn kinds_assignable(source: &Kind, target: &Kind) -> bool {
    match (source, target) {
        (Kind::Message(a), Kind::Message(b)) => a.full_name() == b.full_name(),
        (Kind::Enum(a), Kind::Enum(b)) => a.full_name() == b.full_name(),
        (Kind::Message(_), _) | (_, Kind::Message(_)) => false,
        (_, Kind::String) => true,
        (Kind::String, Kind::Bytes) | (Kind::Bytes, Kind::Bytes) => true,
        (Kind::Bool, Kind::Bool) => true,
        (s, t) if is_integer(s) && is_integer(t) => true,
        (s, Kind::Double | Kind::Float) => is_integer(s) || matches!(s, Kind::Double | Kind::Float),
        _ => false,
    }
}

fn describe_field(field: &FieldDescriptor) -> String {
    let kind = match field.kind() {
        Kind::Message(m) => format!("message `{}`", m.full_name()),
        Kind::Enum(e) => format!("enum `{}`", e.full_name()),
        other => format!("{other:?}").to_ascii_lowercase(),
    };
    if field.is_map() {
        format!("a map of {kind}")
    } else if field.is_list() {
        format!("a repeated {kind}")
    } else if matches!(field.kind(), Kind::Message(_) | Kind::Enum(_)) {
        kind
    } else {
        format!("a {kind}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let u = parse_host("http://127.0.0.1:9090").unwrap();
        assert_eq!(
            (u.authority(), u.cluster_name(), u.base_path.as_str()),
            ("127.0.0.1:9090".into(), "127.0.0.1:9090".into(), "")
        );
        let u = parse_host("https://jsonplaceholder.typicode.com/api/").unwrap();
        assert!(u.tls);
        assert_eq!(u.authority(), "jsonplaceholder.typicode.com");
        assert_eq!(u.cluster_name(), "jsonplaceholder.typicode.com:443");
        assert_eq!(u.base_path, "/api");
        let u = parse_host("users.svc:8080").unwrap();
        assert_eq!(u.authority(), "users.svc:8080");
        assert!(parse_host("").is_none());
        assert!(parse_host("http://host:notaport").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("soon"), None);
    }

    #[test]
    fn paths() {
        let segments = parse_path("/files/:dir/*rest");
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[1].segment, Some(plan::Segment::Param("dir".into())));
        assert_eq!(segments[2].segment, Some(plan::Segment::Wildcard("rest".into())));
        assert!(parse_path("/").is_empty());
    }
}
