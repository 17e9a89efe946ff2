//! The engine: runs one flow per request by walking the plan. It knows nothing of proxy-wasm;
//! everything it needs from Envoy goes through [`Host`].

pub mod codec;
mod eval;
mod forward;

pub mod route;
pub mod saga;
mod upstream;

pub use upstream::http_status_of_grpc;

#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, warn};
use semaphore_plan::{Call, Codec, Flow, Forward, MessageTemplate, Plan, Property, Reference, INPUT_SLOT};
use serde_json::{json, Map, Value};

use semaphore_plan::{ErrorObject, Node, OnError, ERROR_SLOT};

pub use route::{Match, Route};
pub use saga::{Compensation, SagaEvent, Sagas, EXECUTION_ID_HEADER};

/// What the engine asks of its host (the proxy-wasm adapter in Envoy, a fake in tests).
pub trait Host {
    /// Starts an upstream call; the answer comes back through [`Execution::on_response`] with the
    /// returned token.
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String>;
    /// Answers the client. Called at most once per execution, and never with `forward`.
    fn respond(&mut self, reply: Reply);
    /// Sends a proxy's request, as it came but for these changes, on to its service; the
    /// service's answer goes to the client as it is. Called at most once per execution, once
    /// every node of the proxy has settled, and never with `respond`. An error fails the flow
    /// with 502; a host with nothing to forward through keeps this default, which refuses.
    fn forward(&mut self, forwarding: Forwarding) -> Result<(), String> {
        Err(format!("this host cannot forward to cluster `{}`", forwarding.cluster))
    }
    /// A monotonic-enough clock in milliseconds, for deadlines and durations.
    fn now_ms(&self) -> u64;
    /// Counts what happened, for the flow's and resources' metrics.
    fn record(&mut self, event: Event);
}

/// Something the metrics count. Indices are into the plan's flows and the flow's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A flow answered; `failed` when it answered with an error.
    Flow { flow: usize, failed: bool, duration_ms: u64 },
    /// A call of a node finished (after its retries).
    Call { flow: usize, node: usize, failed: bool, duration_ms: u64 },
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

/// How a proxy's request goes on: to `cluster`, with these request headers changed. Its body is
/// not the engine's: Envoy streams it to the service as it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarding {
    pub cluster: String,
    /// Sent as `:authority`.
    pub authority: String,
    /// Sent as `:path`: the service's base path, then the path the first matching rewrite rule
    /// built (else the request's own), then the request's query string.
    pub path: String,
    /// The proxy's `header {}`, lower-cased names. Each replaces the client's header of that
    /// name; `None`, for a value that is absent, removes it, so the service never mistakes a
    /// client's header for the proxy's.
    pub headers: Vec<(String, Option<String>)>,
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
    /// The call may have been performed, but no answer says so: it timed out, or the connection
    /// was reset after the request went out. Its compensation runs if it can be built.
    pub outcome_unknown: bool,
}

/// The plan, loaded once per VM and shared read-only by every request.
pub struct Engine {
    pub plan: Plan,
    /// Each flow's rewrite rules, by flow index, compiled here so that no request compiles a
    /// regex. Refused rules fail the requests of their proxy.
    rewrites: Vec<Result<Vec<forward::Rule>, String>>,
}

impl Engine {
    pub fn new(plan: Plan) -> Rc<Engine> {
        let rewrites = plan
            .flows
            .iter()
            .map(|flow| {
                let rules = forward::compile(flow);
                if let Err(reason) = &rules {
                    error!("proxy `{}` will answer 500: {reason}", flow.name);
                }
                rules
            })
            .collect();
        Rc::new(Engine { plan, rewrites })
    }

    /// The endpoint serving this request, if any; requests that match none pass through.
    pub fn route(&self, method: &str, path: &str) -> Route {
        route::find(&self.plan, method, path)
    }

    /// The answer to a method no endpoint of the path serves: 405 with the methods that are.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[String]) -> Reply {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let allow = allowed.join(", ");
        let message = format!("{method} is not allowed on {path}; allowed: {allow}");
        Reply {
            status: 405,
            headers: vec![("content-type".into(), "application/json".into()), ("allow".into(), allow)],
            body: json!({ "message": message, "status": 405 }).to_string().into_bytes(),
        }
    }

    /// Whether the endpoint belongs to a proxy. A proxy never reads the request body, so its
    /// execution starts at the request headers, with an empty body.
    pub fn forwards(&self, matched: &Match) -> bool {
        self.plan
            .endpoints
            .get(matched.endpoint)
            .and_then(|endpoint| self.plan.flows.get(endpoint.flow as usize))
            .is_some_and(|flow| flow.forward.is_some())
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
    Running(Running),
    Done(Completed),
    /// Its condition was false: it leaves its values absent.
    Skipped,
    /// Its call failed; `error` is its decoded error body, for `{{ node.error:path }}`.
    Failed {
        error: Value,
    },
    /// Its call timed out or was reset after it was sent: the upstream may have performed it.
    /// What it sent is known, what it answered is not.
    Unknown {
        request: Value,
        params: Value,
    },
}

struct Running {
    token: u32,
    request: Value,
    params: Value,
    callout: Callout,
    attempt: u32,
    started_ms: u64,
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
    /// Sent with every call and compensation (`x-semaphore-execution-id`).
    id: String,
    endpoint: usize,
    flow: usize,
    input: Value,
    headers: Vec<(String, String)>,
    nodes: Vec<NodeState>,
    /// Node indices in the order their calls completed, for compensation.
    completed: Vec<usize>,
    /// The failure being handled: `{message, status}` and the `on_error` params.
    error: Option<(Value, Value)>,
    finished: bool,
    /// The flow failed while calls were in flight: its answer waits for them, so that those
    /// that complete are compensated too.
    failing: Option<Reply>,
    /// The client went away: nobody is answered, but the calls in flight are waited for.
    client_gone: bool,
    started_ms: u64,
    deadline_ms: Option<u64>,
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

/// Failures worth another attempt: nothing arrived, or the upstream said it could not serve.
fn transient(status: Option<u16>) -> bool {
    matches!(status, None | Some(502..=504))
}

fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
}

impl Execution {
    /// Decodes the input and dispatches every node that depends on nothing.
    pub fn start(engine: Rc<Engine>, matched: Match, request: Request, host: &mut dyn Host) -> Execution {
        let (endpoint, flow) = match engine.plan.endpoints.get(matched.endpoint) {
            Some(endpoint) => (matched.endpoint, endpoint.flow as usize),
            None => (matched.endpoint, usize::MAX),
        };
        let flow_def = engine.plan.flows.get(flow);
        let node_count = flow_def.map(|f| f.nodes.len()).unwrap_or(0);
        let now = host.now_ms();
        let deadline_ms = flow_def.filter(|f| f.timeout_ms > 0).map(|f| now + u64::from(f.timeout_ms));
        let random = std::cell::Cell::new(request.seed);
        let id = eval::uuid(&random);
        let mut execution = Execution {
            engine,
            id,
            endpoint,
            flow,
            input: Value::Null,
            headers: request.headers,
            nodes: (0..node_count).map(|_| NodeState::Waiting).collect(),
            completed: Vec::new(),
            error: None,
            finished: false,
            failing: None,
            client_gone: false,
            started_ms: now,
            deadline_ms,
            now_unix_ms: request.now_unix_ms,
            random,
        };
        if let Some(Err(reason)) = execution.engine.rewrites.get(flow) {
            // Refused before any resource runs, so nothing needs compensating.
            let failure = Failure::new(500, reason.clone());
            execution.fail(failure, host);
            return execution;
        }
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

    /// The id its calls and compensations carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `token` belongs to a call of this execution that is still waiting.
    pub fn owns(&self, token: u32) -> bool {
        self.nodes.iter().any(|n| matches!(n, NodeState::Running(r) if r.token == token))
    }

    pub fn on_response(&mut self, token: u32, response: UpstreamResponse, host: &mut dyn Host) {
        let Some(index) =
            self.nodes.iter().position(|n| matches!(n, NodeState::Running(r) if r.token == token))
        else {
            debug!("response for unknown call {token} ignored");
            return;
        };
        let Some(NodeState::Running(running)) =
            self.nodes.get_mut(index).map(|state| std::mem::replace(state, NodeState::Waiting))
        else {
            return;
        };
        if self.finished {
            return;
        }
        let engine = Rc::clone(&self.engine);
        let Some((node, call)) =
            self.flow_def(&engine).and_then(|f| f.nodes.get(index)).and_then(|n| Some((n, n.call.as_ref()?)))
        else {
            return;
        };
        let unknown = response.outcome_unknown;
        if self.failing.is_some() {
            // No retries and no new calls: record how the call ended, and answer once none is
            // left in flight.
            let duration_ms = host.now_ms().saturating_sub(running.started_ms);
            let outcome = upstream::read_response(&engine.plan, call, &node.expect_status, response);
            host.record(Event::Call { flow: self.flow, node: index, failed: outcome.is_err(), duration_ms });
            if let Some(state) = self.nodes.get_mut(index) {
                *state = match outcome {
                    Ok((response, headers)) => {
                        self.completed.push(index);
                        let (request, params) = (running.request, running.params);
                        NodeState::Done(Completed { request, response, headers, params })
                    }
                    Err(_) if unknown => {
                        self.completed.push(index);
                        NodeState::Unknown { request: running.request, params: running.params }
                    }
                    Err(_) => NodeState::Failed { error: Value::Null },
                };
            }
            if !self.nodes.iter().any(|n| matches!(n, NodeState::Running(_))) {
                if let Some(reply) = self.failing.take() {
                    self.finished = true;
                    if !self.client_gone {
                        host.respond(reply);
                    }
                }
            }
            return;
        }
        let method = call.http_method.as_str();
        let retry_allowed = running.attempt < call.retries && (idempotent(method) || call.retry_unsafe);
        if transient(response.status) && retry_allowed && !self.past_deadline(host) {
            debug!("flow `{}` retries `{}` (attempt {})", self.flow_name(), node.name, running.attempt + 2);
            match host.dispatch(&running.callout) {
                Ok(token) => {
                    if let Some(state) = self.nodes.get_mut(index) {
                        *state =
                            NodeState::Running(Running { token, attempt: running.attempt + 1, ..running });
                    }
                    return;
                }
                Err(e) => warn!("flow `{}`: cannot retry `{}`: {e}", self.flow_name(), node.name),
            }
        }
        let duration_ms = host.now_ms().saturating_sub(running.started_ms);
        let body = response.body.clone();
        match upstream::read_response(&engine.plan, call, &node.expect_status, response) {
            Ok((response, headers)) => {
                host.record(Event::Call { flow: self.flow, node: index, failed: false, duration_ms });
                if let Some(state) = self.nodes.get_mut(index) {
                    let (request, params) = (running.request, running.params);
                    *state = NodeState::Done(Completed { request, response, headers, params });
                }
                self.completed.push(index);
                self.advance(host);
            }
            Err(failure) => {
                host.record(Event::Call { flow: self.flow, node: index, failed: true, duration_ms });
                if unknown {
                    warn!(
                        "flow `{}` ({}): `{}` may have been performed: {}",
                        self.flow_name(),
                        self.id,
                        node.name,
                        failure.message
                    );
                    self.completed.push(index);
                    if let Some(state) = self.nodes.get_mut(index) {
                        *state = NodeState::Unknown { request: running.request, params: running.params };
                    }
                    return self.fail_unknown(index, node, failure, &body, host);
                }
                self.fail_node(index, node, failure, &body, host);
            }
        }
    }

    /// A call whose outcome is unknown fails the flow like any failed call, but keeps its node's
    /// state: its request and params stay readable to its compensation.
    fn fail_unknown(
        &mut self,
        index: usize,
        node: &Node,
        failure: Failure,
        body: &[u8],
        host: &mut dyn Host,
    ) {
        let kept = self.nodes.get_mut(index).map(|state| std::mem::replace(state, NodeState::Waiting));
        self.fail_node(index, node, failure, body, host);
        if let (Some(kept), Some(state)) = (kept, self.nodes.get_mut(index)) {
            *state = kept;
        }
    }

    /// The client went away before the flow answered. The flow fails, but its calls in flight
    /// go on: the upstreams may perform them, so the flow waits for their answers (or their
    /// timeouts) and compensates what completed, exactly as a flow that failed on its own does.
    /// Finished once nothing is in flight.
    pub fn abandon(&mut self, host: &mut dyn Host) {
        if self.finished || self.client_gone {
            return;
        }
        warn!("flow `{}` ({}): the client went away before the answer", self.flow_name(), self.id);
        self.client_gone = true;
        // A flow already failing keeps its own error (and has counted itself) for its rollbacks.
        if self.failing.is_none() {
            self.error = Some((json!({"message": "the client went away", "status": 499}), Value::Null));
            let duration_ms = host.now_ms().saturating_sub(self.started_ms);
            host.record(Event::Flow { flow: self.flow, failed: true, duration_ms });
        }
        if self.nodes.iter().any(|n| matches!(n, NodeState::Running(_))) {
            // Answered to nobody: only the wait for the calls in flight matters.
            self.failing.get_or_insert_with(|| Reply { status: 499, headers: Vec::new(), body: Vec::new() });
        } else {
            self.failing = None;
            self.finished = true;
        }
    }

    /// The compensating calls of a failed flow: each completed node with a `rollback`, in reverse
    /// completion order, so a node is compensated only after the completed nodes that depended
    /// on it; and each node whose outcome is unknown, when its rollback does not need its
    /// response (else it is logged for replay). Built once, from the state at failure; empty for a
    /// flow that succeeded.
    pub fn take_rollbacks(&mut self) -> Vec<Compensation> {
        self.take_compensations().0
    }

    /// The compensations, and those that cannot be built (each logged), for the metrics.
    pub fn take_compensations(&mut self) -> (Vec<Compensation>, Vec<SagaEvent>) {
        let mut given_up = Vec::new();
        if self.error.is_none() {
            return (Vec::new(), given_up);
        }
        let engine = Rc::clone(&self.engine);
        let Some(flow) = self.flow_def(&engine) else { return (Vec::new(), given_up) };
        let mut compensations = Vec::new();
        for index in std::mem::take(&mut self.completed).into_iter().rev() {
            let Some(node) = flow.nodes.get(index) else { continue };
            let Some(call) = &node.rollback else { continue };
            let unknown = matches!(self.nodes.get(index), Some(NodeState::Unknown { .. }));
            if unknown && node.rollback_reads_response {
                let sent = match self.nodes.get(index) {
                    Some(NodeState::Unknown { request, .. }) => request.to_string(),
                    _ => String::new(),
                };
                error!(
                    "flow `{}` ({}): `{}` may have been performed, and its rollback needs its answer: \
                     compensate it by hand; it sent {sent}",
                    flow.name, self.id, node.name
                );
                given_up.push(SagaEvent::GivenUp { flow: self.flow, node: index });
                continue;
            }
            let built = self.build_message(call.request_message, call.request.as_ref()).and_then(|request| {
                upstream::build_callout(&engine.plan, call, &request, &self.headers, |v| self.evaluate(v))
            });
            match built {
                Ok(mut built) => {
                    built.callout.headers.push((EXECUTION_ID_HEADER.to_string(), self.id.clone()));
                    compensations.push(Compensation {
                        execution_id: self.id.clone(),
                        flow: self.flow,
                        node: index,
                        flow_name: flow.name.clone(),
                        node_name: node.name.clone(),
                        callout: built.callout,
                        retries: call.retries,
                    })
                }
                Err(failure) => {
                    error!(
                        "flow `{}` ({}): cannot build the rollback of `{}`: {}",
                        flow.name, self.id, node.name, failure.message
                    );
                    given_up.push(SagaEvent::GivenUp { flow: self.flow, node: index });
                }
            }
        }
        (compensations, given_up)
    }

    fn flow_def<'e>(&self, engine: &'e Engine) -> Option<&'e Flow> {
        engine.plan.flows.get(self.flow)
    }

    fn flow_name(&self) -> &str {
        self.engine.plan.flows.get(self.flow).map(|f| f.name.as_str()).unwrap_or("?")
    }

    fn past_deadline(&self, host: &dyn Host) -> bool {
        self.deadline_ms.is_some_and(|deadline| host.now_ms() >= deadline)
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
    /// answers (or, for a proxy, forwards) once every node is done.
    fn advance(&mut self, host: &mut dyn Host) {
        if self.failing.is_some() {
            return;
        }
        let engine = Rc::clone(&self.engine);
        let Some(flow) = self.flow_def(&engine) else {
            return self.fail(Failure::new(500, "the plan's endpoint names no flow"), host);
        };
        // Nodes without a call complete at once and may unblock others: repeat until settled.
        let mut settled = false;
        while !settled {
            settled = true;
            for (index, node) in flow.nodes.iter().enumerate() {
                if self.finished || self.failing.is_some() {
                    return;
                }
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
                        self.completed.push(index);
                        NodeState::Done(Completed {
                            request: Value::Null,
                            response: self.node_values(node),
                            headers: Vec::new(),
                            params: Value::Null,
                        })
                    }
                    Some(call) => match self.dispatch(call, host) {
                        Ok(running) => {
                            debug!(
                                "flow `{}` dispatched `{}` (call {})",
                                flow.name, node.name, running.token
                            );
                            NodeState::Running(running)
                        }
                        Err(failure) => return self.fail_node(index, node, failure, &[], host),
                    },
                };
                if let Some(slot) = self.nodes.get_mut(index) {
                    *slot = state;
                }
            }
        }
        if self.nodes.iter().all(NodeState::settled) {
            match &flow.forward {
                Some(forward) => self.forward(forward, host),
                None => self.respond_output(flow, host),
            }
        } else if !self.nodes.iter().any(|n| matches!(n, NodeState::Running(_))) {
            self.fail(
                Failure::new(500, "the flow cannot make progress (its plan has a dependency cycle)"),
                host,
            );
        }
    }

    fn dispatch(&self, call: &Call, host: &mut dyn Host) -> Result<Running, Failure> {
        let plan = &self.engine.plan;
        let now = host.now_ms();
        let mut timeout_ms = u64::from(call.timeout_ms);
        if let Some(deadline) = self.deadline_ms {
            if now >= deadline {
                return Err(Failure::new(504, "the flow's deadline passed"));
            }
            timeout_ms = timeout_ms.min(deadline - now);
        }
        let request = self.build_message(call.request_message, call.request.as_ref())?;
        let mut built =
            upstream::build_callout(plan, call, &request, &self.headers, |value| self.evaluate(value))?;
        built.callout.timeout = Duration::from_millis(timeout_ms);
        built.callout.headers.push((EXECUTION_ID_HEADER.to_string(), self.id.clone()));
        let token = host
            .dispatch(&built.callout)
            .map_err(|e| Failure::new(502, format!("cannot call upstream: {e}")))?;
        Ok(Running {
            token,
            request: Value::Object(request),
            params: Value::Object(built.params),
            callout: built.callout,
            attempt: 0,
            started_ms: now,
        })
    }

    fn respond_output(&mut self, flow: &Flow, host: &mut dyn Host) {
        let plan = &self.engine.plan;
        let endpoint = plan.endpoints.get(self.endpoint);
        let status = endpoint.map(|e| e.status as u16).unwrap_or(200);
        let result = match &flow.output {
            Some(output) => self
                .build_message(output.message, output.body.as_ref())
                .and_then(|body| self.reply(status, output.message, &body, &output.headers)),
            None => Ok(Reply {
                status,
                headers: vec![("content-type".to_string(), "application/json".to_string())],
                body: b"{}".to_vec(),
            }),
        };
        match result {
            Ok(reply) => {
                self.finished = true;
                let duration_ms = host.now_ms().saturating_sub(self.started_ms);
                host.record(Event::Flow { flow: self.flow, failed: false, duration_ms });
                host.respond(reply);
            }
            Err(failure) => self.fail(failure, host),
        }
    }

    /// Hands a proxy's request to the host to send on; a failure to build or send it answers
    /// as any failure of the flow does.
    fn forward(&mut self, forward: &Forward, host: &mut dyn Host) {
        let sent = self.forwarding(forward).and_then(|forwarding| {
            host.forward(forwarding)
                .map_err(|e| Failure::new(502, format!("cannot forward the request: {e}")))
        });
        match sent {
            Ok(()) => {
                self.finished = true;
                let duration_ms = host.now_ms().saturating_sub(self.started_ms);
                host.record(Event::Flow { flow: self.flow, failed: false, duration_ms });
            }
            Err(failure) => self.fail(failure, host),
        }
    }

    fn forwarding(&self, forward: &Forward) -> Result<Forwarding, Failure> {
        let Some(service) = self.engine.plan.services.get(forward.service as usize) else {
            return Err(Failure::new(500, "the plan names a service it does not define"));
        };
        let Some((_, original)) = self.headers.iter().find(|(name, _)| name == ":path") else {
            return Err(Failure::new(400, "the request has no path"));
        };
        let rules = match self.engine.rewrites.get(self.flow) {
            Some(Ok(rules)) => rules.as_slice(),
            _ => &[],
        };
        let path = format!("{}{}", service.base_path, forward::rewrite(rules, original));
        let mut headers = Vec::new();
        for header in &forward.headers {
            let value = header.value.as_ref().and_then(|v| self.evaluate(v)).map(|v| codec::to_text(&v));
            if let Some(value) = &value {
                upstream::check_header_value(&header.name, value)?;
            }
            headers.push((header.name.clone(), value));
        }
        Ok(Forwarding {
            cluster: service.cluster.clone(),
            authority: service.authority.clone(),
            path,
            headers,
        })
    }

    /// A message encoded with the endpoint's response codec, with templated headers.
    fn reply(
        &self,
        status: u16,
        layout: u32,
        body: &Map<String, Value>,
        templates: &[semaphore_plan::HeaderTemplate],
    ) -> Result<Reply, Failure> {
        let plan = &self.engine.plan;
        let endpoint = plan.endpoints.get(self.endpoint);
        let codec = endpoint.and_then(|e| Codec::try_from(e.response_codec).ok()).unwrap_or(Codec::Json);
        let int64 = codec::Int64Json::strings_if(endpoint.is_some_and(|e| e.int64_as_string));
        let (content_type, body) = codec::encode_body(plan, layout, codec, int64, body);
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        for header in templates {
            // A header whose value is absent is left out, not sent empty.
            let Some(value) =
                header.value.as_ref().and_then(|v| self.evaluate(v)).map(|v| codec::to_text(&v))
            else {
                continue;
            };
            upstream::check_header_value(&header.name, &value)?;
            headers.push((header.name.clone(), value));
        }
        Ok(Reply { status, headers, body })
    }

    /// A node's call failed: its `on_error` (else the flow's) decides the status, message and
    /// params; the error object answers the client.
    fn fail_node(&mut self, index: usize, node: &Node, failure: Failure, body: &[u8], host: &mut dyn Host) {
        let engine = Rc::clone(&self.engine);
        let plan = &engine.plan;
        let flow = self.flow_def(&engine);
        let on_error: Option<&OnError> = node.on_error.as_ref().or(flow.and_then(|f| f.on_error.as_ref()));
        let schema = on_error.and_then(|e| e.schema);
        let node_error = match (schema, node.call.as_ref()) {
            (Some(schema), Some(call)) => {
                let codec = plan
                    .services
                    .get(call.service as usize)
                    .and_then(|s| Codec::try_from(s.response_codec).ok())
                    .unwrap_or(Codec::Json);
                codec::decode_body(plan, schema, codec, body).map(Value::Object).unwrap_or(Value::Null)
            }
            _ => serde_json::from_slice(body).unwrap_or(Value::Null),
        };
        if let Some(state) = self.nodes.get_mut(index) {
            *state = NodeState::Failed { error: node_error };
        }
        let message = format!("resource `{}`: {}", node.name, failure.message);
        self.error = Some((json!({"message": message, "status": failure.status}), Value::Null));
        let mut status = failure.status;
        let mut message = message;
        if let Some(on_error) = on_error {
            if let Some(value) = on_error.status.as_ref().and_then(|v| self.evaluate(v)) {
                match value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok())) {
                    Some(code @ 100..=599) => status = code as u16,
                    _ => warn!("flow `{}`: on_error status {value} is not an HTTP status", self.flow_name()),
                }
            }
            if let Some(value) = on_error.message.as_ref().and_then(|v| self.evaluate(v)) {
                message = codec::to_text(&value);
            }
            let params: Map<String, Value> = on_error
                .params
                .iter()
                .filter_map(|p| Some((p.name.clone(), self.evaluate(p.value.as_ref()?)?)))
                .collect();
            self.error = Some((json!({"message": message, "status": status}), Value::Object(params)));
        }
        warn!("flow `{}` failed: {message} ({status})", self.flow_name());
        let object = node.error.as_ref().or(flow.and_then(|f| f.error.as_ref()));
        self.answer_error(status, message, object, host);
    }

    /// A failure outside any node (the input, the plan): the flow's error object answers it.
    fn fail(&mut self, failure: Failure, host: &mut dyn Host) {
        if self.finished {
            return;
        }
        warn!("flow `{}` failed: {} ({})", self.flow_name(), failure.message, failure.status);
        if self.error.is_none() {
            self.error = Some((json!({"message": failure.message, "status": failure.status}), Value::Null));
        }
        let engine = Rc::clone(&self.engine);
        let object = self.flow_def(&engine).and_then(|f| f.error.as_ref());
        self.answer_error(failure.status, failure.message, object, host);
    }

    fn answer_error(
        &mut self,
        status: u16,
        message: String,
        object: Option<&ErrorObject>,
        host: &mut dyn Host,
    ) {
        if self.finished || self.failing.is_some() {
            return;
        }
        let duration_ms = host.now_ms().saturating_sub(self.started_ms);
        host.record(Event::Flow { flow: self.flow, failed: true, duration_ms });
        let custom = object.map(|object| {
            self.build_message(object.message, object.body.as_ref())
                .and_then(|body| self.reply(status, object.message, &body, &object.headers))
        });
        let reply = match custom {
            Some(Ok(reply)) => reply,
            other => {
                if let Some(Err(problem)) = other {
                    warn!("flow `{}`: cannot build its error object: {}", self.flow_name(), problem.message);
                }
                Reply {
                    status,
                    headers: vec![("content-type".to_string(), "application/json".to_string())],
                    body: json!({ "message": message, "status": status }).to_string().into_bytes(),
                }
            }
        };
        let in_flight = self.nodes.iter().filter(|n| matches!(n, NodeState::Running(_))).count();
        if in_flight > 0 {
            debug!("flow `{}` answers once its {in_flight} call(s) in flight have ended", self.flow_name());
            self.failing = Some(reply);
            return;
        }
        self.finished = true;
        host.respond(reply);
    }

    /// What an intermediate node computes: its one unnamed value, or its named values.
    fn node_values(&self, node: &Node) -> Value {
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
        let root = match reference.slot {
            INPUT_SLOT => match property {
                Property::Header => return header(&self.headers),
                _ => &self.input,
            },
            ERROR_SLOT => {
                let (error, params) = self.error.as_ref()?;
                match property {
                    Property::Params => params,
                    _ => error,
                }
            }
            slot => match self.nodes.get(slot as usize - 1)? {
                NodeState::Done(completed) => match property {
                    Property::Header => return header(&completed.headers),
                    Property::Request => &completed.request,
                    Property::Response => &completed.response,
                    Property::Params => &completed.params,
                    Property::Error => return None,
                },
                NodeState::Failed { error } if property == Property::Error => error,
                NodeState::Unknown { request, .. } if property == Property::Request => request,
                NodeState::Unknown { params, .. } if property == Property::Params => params,
                _ => return None,
            },
        };
        let mut current = root;
        for name in &reference.path {
            current = current.as_object()?.get(name)?;
        }
        Some(current.clone())
    }
}
