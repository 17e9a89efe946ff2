//! The engine: runs one flow per request by walking the plan. It knows nothing of proxy-wasm;
//! everything it needs from Envoy goes through [`Host`].

pub mod codec;
mod eval;
pub mod proto;
pub mod route;
mod upstream;

pub use upstream::http_status_of_grpc;

#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

use log::{debug, warn};
use semaphore_plan::{Call, Codec, Flow, MessageTemplate, Plan, Property, Reference, INPUT_SLOT};
use serde_json::{json, Map, Value};

pub use route::Match;

/// What the engine asks of its host (the proxy-wasm adapter in Envoy, a fake in tests).
pub trait Host {
    /// Starts an upstream call; the answer comes back through [`Execution::on_response`] with the
    /// returned token.
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String>;
    /// Answers the client. Called once per execution.
    fn respond(&mut self, reply: Reply);
}

#[derive(Debug, Clone, PartialEq)]
pub struct Callout {
    pub cluster: String,
    pub authority: String,
    /// HTTP: including the `:method`, `:path` and `:authority` pseudo-headers. gRPC: the initial
    /// metadata.
    pub headers: Vec<(String, String)>,
    /// HTTP: the body, if any. gRPC: the encoded request message.
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Set for a gRPC call.
    pub grpc: Option<GrpcMethod>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GrpcMethod {
    /// `package.Service`
    pub service: String,
    pub method: String,
}

impl Callout {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An upstream's answer; `status` is `None` when no response arrived (reset, refused, timeout).
/// A gRPC answer carries its status as the HTTP status it stands for, with `grpc-status` and
/// `grpc-message` among the headers.
#[derive(Debug, Clone, Default)]
pub struct UpstreamResponse {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The plan, loaded once per VM and shared read-only by every request.
pub struct Engine {
    pub plan: Plan,
}

impl Engine {
    pub fn new(plan: Plan) -> Rc<Engine> {
        Rc::new(Engine { plan })
    }

    /// The endpoint serving this request, if any; requests that match none pass through.
    pub fn route(&self, method: &str, path: &str) -> Option<Match> {
        route::find(&self.plan, method, path)
    }
}

/// The incoming request a flow runs for.
pub struct Request {
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What `now()` answers.
    pub now_unix_ms: u64,
    /// Seeds `uuid()`; differs per request.
    pub seed: u64,
}

enum NodeState {
    Waiting,
    Running {
        token: u32,
        request: Value,
        params: Value,
    },
    Done(Completed),
    /// Its condition was false: it leaves its values absent.
    Skipped,
}

impl NodeState {
    fn settled(&self) -> bool {
        matches!(self, NodeState::Done(_) | NodeState::Skipped)
    }
}

struct Completed {
    request: Value,
    response: Value,
    headers: Vec<(String, String)>,
    params: Value,
}

/// One request's run of a flow.
pub struct Execution {
    engine: Rc<Engine>,
    endpoint: usize,
    flow: usize,
    input: Value,
    headers: Vec<(String, String)>,
    nodes: Vec<NodeState>,
    finished: bool,
    now_unix_ms: u64,
    random: std::cell::Cell<u64>,
}

/// Why a flow stopped; becomes the client's error response.
#[derive(Debug)]
struct Failure {
    status: u16,
    message: String,
}

impl Failure {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }
}

impl Execution {
    /// Decodes the input and dispatches every node that depends on nothing.
    pub fn start(engine: Rc<Engine>, matched: Match, request: Request, host: &mut dyn Host) -> Execution {
        let (endpoint, flow) = match engine.plan.endpoints.get(matched.endpoint) {
            Some(endpoint) => (matched.endpoint, endpoint.flow as usize),
            None => (matched.endpoint, usize::MAX),
        };
        let node_count = engine.plan.flows.get(flow).map(|f| f.nodes.len()).unwrap_or(0);
        let mut execution = Execution {
            engine,
            endpoint,
            flow,
            input: Value::Null,
            headers: request.headers,
            nodes: (0..node_count).map(|_| NodeState::Waiting).collect(),
            finished: false,
            now_unix_ms: request.now_unix_ms,
            random: std::cell::Cell::new(request.seed),
        };
        match execution.decode_input(&matched, &request.body) {
            Ok(input) => {
                execution.input = Value::Object(input);
                execution.advance(host);
            }
            Err(failure) => execution.fail(failure, host),
        }
        execution
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether `token` belongs to a call of this execution that is still waiting.
    pub fn owns(&self, token: u32) -> bool {
        self.nodes.iter().any(|n| matches!(n, NodeState::Running { token: t, .. } if *t == token))
    }

    pub fn on_response(&mut self, token: u32, response: UpstreamResponse, host: &mut dyn Host) {
        let Some(index) =
            self.nodes.iter().position(|n| matches!(n, NodeState::Running { token: t, .. } if *t == token))
        else {
            debug!("response for unknown call {token} ignored");
            return;
        };
        let (request, params) = match self.nodes.get_mut(index) {
            Some(state) => match std::mem::replace(state, NodeState::Waiting) {
                NodeState::Running { request, params, .. } => (request, params),
                _ => (Value::Null, Value::Null),
            },
            None => return,
        };
        if self.finished {
            return;
        }
        let engine = Rc::clone(&self.engine);
        let Some((node_name, call)) = self
            .flow_def(&engine)
            .and_then(|f| f.nodes.get(index))
            .and_then(|n| Some((n.name.as_str(), n.call.as_ref()?)))
        else {
            return;
        };
        match upstream::read_response(&engine.plan, call, response) {
            Ok((response, headers)) => {
                if let Some(state) = self.nodes.get_mut(index) {
                    *state = NodeState::Done(Completed { request, response, headers, params });
                }
                self.advance(host);
            }
            Err(failure) => {
                let message = format!("resource `{node_name}`: {}", failure.message);
                warn!("flow `{}` failed: {message}", self.flow_name());
                self.fail(Failure::new(failure.status, message), host);
            }
        }
    }

    fn flow_def<'e>(&self, engine: &'e Engine) -> Option<&'e Flow> {
        engine.plan.flows.get(self.flow)
    }

    fn flow_name(&self) -> &str {
        self.engine.plan.flows.get(self.flow).map(|f| f.name.as_str()).unwrap_or("?")
    }

    fn decode_input(&self, matched: &Match, body: &[u8]) -> Result<Map<String, Value>, Failure> {
        let plan = &self.engine.plan;
        let (Some(endpoint), Some(flow)) = (plan.endpoints.get(self.endpoint), plan.flows.get(self.flow))
        else {
            return Err(Failure::new(500, "the plan's endpoint names no flow"));
        };
        let codec = Codec::try_from(endpoint.request_codec).unwrap_or(Codec::Json);
        let mut input = codec::decode_body(plan, flow.input, codec, body)
            .map_err(|e| Failure::new(400, format!("invalid request body: {e}")))?;
        route::bind_input(plan, flow.input, matched, &mut input)
            .map_err(|e| Failure::new(400, format!("invalid request: {e}")))?;
        Ok(input)
    }

    /// Dispatches every waiting node whose dependencies are all done, the moment they are, and
    /// answers once every node is done.
    fn advance(&mut self, host: &mut dyn Host) {
        let engine = Rc::clone(&self.engine);
        let Some(flow) = self.flow_def(&engine) else {
            return self.fail(Failure::new(500, "the plan's endpoint names no flow"), host);
        };
        // Nodes without a call complete at once and may unblock others: repeat until settled.
        let mut settled = false;
        while !settled {
            settled = true;
            for (index, node) in flow.nodes.iter().enumerate() {
                if !matches!(self.nodes.get(index), Some(NodeState::Waiting)) {
                    continue;
                }
                let ready = node
                    .depends_on
                    .iter()
                    .all(|d| self.nodes.get(*d as usize).is_some_and(NodeState::settled));
                if !ready {
                    continue;
                }
                let skip = node.condition.as_ref().is_some_and(|c| !eval::truthy(self.evaluate(c).as_ref()));
                let state = match &node.call {
                    _ if skip => {
                        settled = false;
                        debug!("flow `{}` skips `{}`: its condition is false", flow.name, node.name);
                        NodeState::Skipped
                    }
                    None => {
                        settled = false;
                        NodeState::Done(Completed {
                            request: Value::Null,
                            response: self.node_values(node),
                            headers: Vec::new(),
                            params: Value::Null,
                        })
                    }
                    Some(call) => match self.dispatch(call, host) {
                        Ok((token, request, params)) => {
                            debug!("flow `{}` dispatched `{}` (call {token})", flow.name, node.name);
                            NodeState::Running { token, request, params }
                        }
                        Err(failure) => {
                            let message = format!("resource `{}`: {}", node.name, failure.message);
                            warn!("flow `{}` failed: {message}", flow.name);
                            return self.fail(Failure::new(failure.status, message), host);
                        }
                    },
                };
                if let Some(slot) = self.nodes.get_mut(index) {
                    *slot = state;
                }
            }
        }
        if self.nodes.iter().all(NodeState::settled) {
            self.respond_output(flow, host);
        } else if !self.nodes.iter().any(|n| matches!(n, NodeState::Running { .. })) {
            self.fail(
                Failure::new(500, "the flow cannot make progress (its plan has a dependency cycle)"),
                host,
            );
        }
    }

    fn dispatch(&self, call: &Call, host: &mut dyn Host) -> Result<(u32, Value, Value), Failure> {
        let plan = &self.engine.plan;
        let request = self.build_message(call.request_message, call.request.as_ref())?;
        let built =
            upstream::build_callout(plan, call, &request, &self.headers, |value| self.evaluate(value))?;
        let token = host
            .dispatch(&built.callout)
            .map_err(|e| Failure::new(502, format!("cannot call upstream: {e}")))?;
        Ok((token, Value::Object(request), Value::Object(built.params)))
    }

    fn respond_output(&mut self, flow: &Flow, host: &mut dyn Host) {
        let plan = &self.engine.plan;
        let endpoint = plan.endpoints.get(self.endpoint);
        let status = endpoint.map(|e| e.status as u16).unwrap_or(200);
        let response_codec =
            endpoint.and_then(|e| Codec::try_from(e.response_codec).ok()).unwrap_or(Codec::Json);
        let result = match &flow.output {
            Some(output) => self.build_message(output.message, output.body.as_ref()).and_then(|body| {
                let (content_type, body) = codec::encode_body(plan, output.message, response_codec, &body);
                let mut headers = vec![("content-type".to_string(), content_type.to_string())];
                for header in &output.headers {
                    let value = header
                        .value
                        .as_ref()
                        .and_then(|v| self.evaluate(v))
                        .map(|v| codec::to_text(&v))
                        .unwrap_or_default();
                    upstream::check_header_value(&header.name, &value)?;
                    headers.push((header.name.clone(), value));
                }
                Ok(Reply { status, headers, body })
            }),
            None => Ok(Reply {
                status,
                headers: vec![("content-type".to_string(), "application/json".to_string())],
                body: b"{}".to_vec(),
            }),
        };
        match result {
            Ok(reply) => {
                self.finished = true;
                host.respond(reply);
            }
            Err(failure) => self.fail(failure, host),
        }
    }

    fn fail(&mut self, failure: Failure, host: &mut dyn Host) {
        if self.finished {
            return;
        }
        self.finished = true;
        let body = json!({ "message": failure.message, "status": failure.status });
        host.respond(Reply {
            status: failure.status,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: body.to_string().into_bytes(),
        });
    }

    /// What an intermediate node computes: its one unnamed value, or its named values.
    fn node_values(&self, node: &semaphore_plan::Node) -> Value {
        match node.values.as_slice() {
            [single] if single.name.is_empty() => {
                single.value.as_ref().and_then(|v| self.evaluate(v)).unwrap_or(Value::Null)
            }
            values => Value::Object(
                values
                    .iter()
                    .filter_map(|v| Some((v.name.clone(), self.evaluate(v.value.as_ref()?)?)))
                    .collect(),
            ),
        }
    }

    fn env<'a>(&'a self, lookup: &'a dyn Fn(&Reference) -> Option<Value>) -> eval::Env<'a> {
        eval::Env { plan: &self.engine.plan, lookup, now_unix_ms: self.now_unix_ms, random: &self.random }
    }

    /// Builds a message from its template, typing every value by the field it lands in.
    fn build_message(
        &self,
        layout: u32,
        template: Option<&MessageTemplate>,
    ) -> Result<Map<String, Value>, Failure> {
        let lookup = |reference: &Reference| self.resolve(reference);
        self.env(&lookup).build_message(layout, template).map_err(|message| Failure::new(500, message))
    }

    /// The value of a template; `None` when it refers to something absent.
    fn evaluate(&self, value: &semaphore_plan::Value) -> Option<Value> {
        let lookup = |reference: &Reference| self.resolve(reference);
        self.env(&lookup).evaluate(value)
    }

    fn resolve(&self, reference: &Reference) -> Option<Value> {
        let property = Property::try_from(reference.property).ok()?;
        let header = |headers: &[(String, String)]| {
            let name = reference.path.first()?;
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| Value::String(v.clone()))
        };
        let root = if reference.slot == INPUT_SLOT {
            match property {
                Property::Header => return header(&self.headers),
                _ => &self.input,
            }
        } else {
            let NodeState::Done(completed) = self.nodes.get(reference.slot as usize - 1)? else {
                return None;
            };
            match property {
                Property::Header => return header(&completed.headers),
                Property::Request => &completed.request,
                Property::Response => &completed.response,
                Property::Params => &completed.params,
                Property::Error => return None,
            }
        };
        let mut current = root;
        for name in &reference.path {
            current = current.as_object()?.get(name)?;
        }
        Some(current.clone())
    }
}
