//! An OpenAPI 3.0 document for a plan's HTTP endpoints: what a client sends to each route and
//! what the filter answers, typed by the flows' messages as the filter's codec reads and writes
//! them (proto field names as keys).
//!
//! Built from the plan rather than the configuration, so that the document describes exactly
//! the endpoints, codecs and message layouts the filter runs.

use std::collections::{BTreeSet, HashMap};

use semaphore_plan::{Endpoint, FieldLayout, Flow, HeaderTemplate, Kind, MessageLayout, Plan, Segment};
use serde_json::{json, Map, Value};

pub const OPENAPI_VERSION: &str = "3.0.3";

/// What the document says about the API as a whole.
#[derive(Debug, Clone)]
pub struct ApiInfo {
    pub title: String,
    pub version: String,
    /// The configuration's `http { address }`, if set: where the API is served.
    pub listen: Option<String>,
}

pub fn document(plan: &Plan, info: &ApiInfo) -> Value {
    let mut components = Components { plan, schemas: Map::new(), int64_as_string: false };
    let mut paths = Map::new();
    let mut operation_ids = OperationIds::default();
    // An OpenAPI document describes HTTP endpoints; gRPC clients read the protos.
    for endpoint in plan.endpoints.iter().filter(|e| e.kind() == semaphore_plan::EndpointKind::Http) {
        let Some(flow) = plan.flows.get(endpoint.flow as usize) else { continue };
        let operation_id = operation_ids.next(&flow.name);
        let operation = operation(plan, endpoint, flow, operation_id, &mut components);
        let item = paths.entry(path_template(endpoint)).or_insert_with(|| json!({}));
        item[endpoint.method.to_ascii_lowercase()] = operation;
    }
    let mut document = json!({
        "openapi": OPENAPI_VERSION,
        "info": { "title": info.title, "version": info.version },
        "paths": paths,
    });
    if !components.schemas.is_empty() {
        document["components"] = json!({ "schemas": components.schemas });
    }
    if let Some(listen) = &info.listen {
        document["servers"] = json!([{ "url": server_url(listen) }]);
    }
    document
}

/// `/user/:id` -> `/user/{id}`; a `*rest` wildcard becomes `{rest}` too.
fn path_template(endpoint: &Endpoint) -> String {
    let segments: Vec<String> = endpoint
        .path
        .iter()
        .filter_map(|segment| match segment.segment.as_ref()? {
            Segment::Literal(literal) => Some(literal.clone()),
            Segment::Param(name) => Some(format!("{{{name}}}")),
            Segment::Wildcard(name) => Some(format!("{{{}}}", wildcard_name(name))),
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// A proxy's route may end in a bare `*`; OpenAPI needs a name for every templated segment.
fn wildcard_name(name: &str) -> &str {
    if name.is_empty() {
        "path"
    } else {
        name
    }
}

/// The listener address as a URL; `:8080` listens on every interface, so a client on the same
/// machine reaches it at localhost.
fn server_url(listen: &str) -> String {
    if listen.contains("://") {
        listen.to_string()
    } else if listen.starts_with(':') {
        format!("http://localhost{listen}")
    } else {
        format!("http://{listen}")
    }
}

/// Operation ids must be unique in a document, yet a flow may be served on several routes: its
/// first endpoint gets the flow's name, the next ones `<flow>_2`, `<flow>_3`, ...
#[derive(Default)]
struct OperationIds {
    seen: HashMap<String, usize>,
}

impl OperationIds {
    fn next(&mut self, flow: &str) -> String {
        let count = self.seen.entry(flow.to_string()).or_insert(0);
        *count += 1;
        match *count {
            1 => flow.to_string(),
            n => format!("{flow}_{n}"),
        }
    }
}

fn operation(
    plan: &Plan,
    endpoint: &Endpoint,
    flow: &Flow,
    operation_id: String,
    components: &mut Components,
) -> Value {
    let input = plan.messages.get(flow.input as usize);
    let proxy = flow.forward.is_some();
    let mut operation = json!({ "operationId": operation_id });
    let mut parameters = path_parameters(endpoint, input, components);
    parameters.extend(header_parameters(flow));
    if carries_body(&endpoint.method) {
        let body =
            if proxy { Some(forwarded_body()) } else { request_body(endpoint, flow, input, components) };
        if let Some(body) = body {
            operation["requestBody"] = body;
        }
    } else {
        parameters.extend(query_parameters(endpoint, input, components));
    }
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    // What the endpoint answers writes 64-bit integers as it says; what it reads, it reads in
    // either form, and the default form describes it.
    components.int64_as_string = endpoint.int64_as_string;
    operation["responses"] =
        if proxy { forwarded_responses(plan, flow) } else { responses(endpoint, flow, components) };
    components.int64_as_string = false;
    operation
}

/// Methods whose input comes from the body; the others take theirs from the query string.
fn carries_body(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")
}

fn path_parameters(
    endpoint: &Endpoint,
    input: Option<&MessageLayout>,
    components: &mut Components,
) -> Vec<Value> {
    endpoint
        .path
        .iter()
        .filter_map(|segment| match segment.segment.as_ref()? {
            Segment::Literal(_) => None,
            Segment::Param(name) => Some((name.as_str(), None)),
            Segment::Wildcard(name) => {
                Some((wildcard_name(name), Some("The rest of the path, `/` included.")))
            }
        })
        .map(|(name, description)| {
            // A proxy's parameters bind no input field: they are text, matched and forwarded.
            let schema = match input.and_then(|input| input.fields.iter().find(|f| f.name == name)) {
                Some(field) => components.field(field),
                None => json!({ "type": "string" }),
            };
            let mut parameter = json!({ "name": name, "in": "path", "required": true, "schema": schema });
            if let Some(description) = description {
                parameter["description"] = json!(description);
            }
            parameter
        })
        .collect()
}

/// The flow's declared input headers: optional, as the flow reads an absent one as absent.
fn header_parameters(flow: &Flow) -> Vec<Value> {
    let headers: BTreeSet<&str> = flow.input_headers.iter().map(String::as_str).collect();
    headers
        .into_iter()
        .map(
            |name| json!({ "name": name, "in": "header", "required": false, "schema": { "type": "string" } }),
        )
        .collect()
}

/// Input fields not bound by the path, as the filter reads them from the query string: a
/// message (or map) cannot be written as query text, so those are left out.
fn query_parameters(
    endpoint: &Endpoint,
    input: Option<&MessageLayout>,
    components: &mut Components,
) -> Vec<Value> {
    let bound = bound_by_path(endpoint);
    let Some(input) = input else { return Vec::new() };
    input
        .fields
        .iter()
        .filter(|field| !bound.contains(field.name.as_str()) && field.kind() != Kind::Message)
        .map(|field| {
            json!({ "name": field.name, "in": "query", "required": false, "schema": components.field(field) })
        })
        .collect()
}

fn bound_by_path(endpoint: &Endpoint) -> BTreeSet<&str> {
    endpoint
        .path
        .iter()
        .filter_map(|segment| match segment.segment.as_ref()? {
            Segment::Literal(_) => None,
            Segment::Param(name) | Segment::Wildcard(name) => Some(name.as_str()),
        })
        .collect()
}

/// The input message in the endpoint's request codec; none for a flow without input fields.
fn request_body(
    endpoint: &Endpoint,
    flow: &Flow,
    input: Option<&MessageLayout>,
    components: &mut Components,
) -> Option<Value> {
    if input.is_none_or(|input| input.fields.is_empty()) {
        return None;
    }
    let schema = components.message(flow.input);
    Some(json!({ "content": { endpoint.request_codec().content_type(): { "schema": schema } } }))
}

/// A proxy forwards the client's body as it is, whatever it holds.
fn forwarded_body() -> Value {
    json!({
        "description": "Forwarded to the proxy's service as it is.",
        "content": { "*/*": {} },
    })
}

fn responses(endpoint: &Endpoint, flow: &Flow, components: &mut Components) -> Value {
    let success = match &flow.output {
        Some(output) => {
            let schema = components.message(output.message);
            let mut response = json!({
                "description": "The flow's output.",
                "content": { endpoint.response_codec().content_type(): { "schema": schema } },
            });
            add_headers(&mut response, &output.headers);
            response
        }
        // The filter answers a flow without output with an empty JSON object, whatever the codec.
        None => json!({
            "description": "The flow has no output: an empty object.",
            "content": { "application/json": { "schema": { "type": "object" } } },
        }),
    };
    let failure = match &flow.error {
        Some(error) => {
            let schema = components.message(error.message);
            let mut response = json!({
                "description": "The flow failed: its error object, with the status of the failure.",
                "content": { endpoint.response_codec().content_type(): { "schema": schema } },
            });
            add_headers(&mut response, &error.headers);
            response
        }
        None => json!({
            "description": "The flow failed, with the status of the failure.",
            "content": { "application/json": { "schema": default_error_schema() } },
        }),
    };
    json!({ endpoint.status.to_string(): success, "default": failure })
}

/// What the filter answers when a flow has no `error` object of its own or from the
/// configuration.
fn default_error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": { "type": "string" },
            "status": { "type": "integer", "format": "int32" },
        },
        "required": ["message", "status"],
    })
}

/// A proxy answers with whatever its service answers; a failed resource answers as any flow.
fn forwarded_responses(plan: &Plan, flow: &Flow) -> Value {
    let service = flow
        .forward
        .as_ref()
        .and_then(|forward| plan.services.get(forward.service as usize))
        .map(|service| format!("`{}`", service.name))
        .unwrap_or_else(|| "the proxy's service".into());
    json!({
        "default": {
            "description": format!(
                "What {service} answers, forwarded as it is; or the error of a resource that failed before forwarding."
            ),
        },
    })
}

fn add_headers(response: &mut Value, headers: &[HeaderTemplate]) {
    if headers.is_empty() {
        return;
    }
    let headers: Map<String, Value> = headers
        .iter()
        .map(|header| (header.name.clone(), json!({ "schema": { "type": "string" } })))
        .collect();
    response["headers"] = Value::Object(headers);
}

/// The schemas of every message the document refers to, keyed by full message name.
struct Components<'a> {
    plan: &'a Plan,
    schemas: Map<String, Value>,
    /// Schemas being written for an endpoint with `int64_as_string`: their 64-bit integers are
    /// strings, and they are kept apart under names of their own.
    int64_as_string: bool,
}

impl Components<'_> {
    /// A `$ref` to a message's schema, which is added on first use.
    fn message(&mut self, index: u32) -> Value {
        let plan = self.plan;
        let Some(message) = plan.messages.get(index as usize) else {
            return json!({ "type": "object" });
        };
        let key = if self.int64_as_string {
            format!("{}.Int64AsString", message.name)
        } else {
            message.name.clone()
        };
        if !self.schemas.contains_key(&key) {
            // Present before its fields are walked, so a message that contains itself refers
            // back to it instead of being walked forever.
            self.schemas.insert(key.clone(), json!({}));
            let schema = self.object(message);
            self.schemas.insert(key.clone(), schema);
        }
        json!({ "$ref": format!("#/components/schemas/{key}") })
    }

    fn object(&mut self, message: &MessageLayout) -> Value {
        let properties: Map<String, Value> =
            message.fields.iter().map(|field| (field.name.clone(), self.field(field))).collect();
        if properties.is_empty() {
            return json!({ "type": "object" });
        }
        json!({ "type": "object", "properties": properties })
    }

    fn field(&mut self, field: &FieldLayout) -> Value {
        if field.map {
            // Map keys are always JSON strings; the entry's `value` field (2) types the values.
            let plan = self.plan;
            let value = plan
                .messages
                .get(field.message as usize)
                .and_then(|entry| entry.fields.iter().find(|f| f.number == 2));
            let values = match value {
                Some(value) => self.single(value),
                None => json!({}),
            };
            return json!({ "type": "object", "additionalProperties": values });
        }
        let single = self.single(field);
        if field.repeated {
            json!({ "type": "array", "items": single })
        } else {
            single
        }
    }

    fn single(&mut self, field: &FieldLayout) -> Value {
        match field.kind() {
            Kind::Message => self.message(field.message),
            kind => scalar_schema(kind, field, self.int64_as_string),
        }
    }
}

/// One value of a field's kind as the filter's JSON codec writes it.
fn scalar_schema(kind: Kind, field: &FieldLayout, int64_as_string: bool) -> Value {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
        // Beyond int32's range: a client that reads them as int32 would overflow.
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 if int64_as_string => {
            json!({ "type": "string", "format": "int64" })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({ "type": "integer", "format": "int64" })
        }
        Kind::Double => json!({ "type": "number", "format": "double" }),
        Kind::Float => json!({ "type": "number", "format": "float" }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte" }),
        Kind::Enum => {
            let names: Vec<&str> = field.enum_values.iter().map(|value| value.name.as_str()).collect();
            json!({ "type": "string", "enum": names })
        }
        Kind::Message => json!({ "type": "object" }),
    }
}
