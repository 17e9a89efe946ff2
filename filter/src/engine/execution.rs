//! One request's run of a flow: the hub that walks the plan. Each step returns what it came to
//! ([`Step`]); [`Execution::conclude`] alone acts on it, and [`Execution::decide`] alone decides
//! the flow's answer and counts it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::engine::value::{Map, Value};
use log::{debug, error, warn};
use semaphore_plan::{
    Call, Endpoint, ErrorObject, Flow, HeaderTemplate, MessageTemplate, Node, OnError, Reference,
};

use super::endpoint::{self, Match, Wire};
use super::host::{Event, Host, Reply, Request, UpstreamResponse};
use super::saga::{Compensation, SagaEvent, EXECUTION_ID_HEADER};
use super::schedule::{self, Completion, Rollback};
use super::state::{Completed, Handled, NodeState, Running, Scope};
use super::upstream::{self, Built};
use super::{codec, eval, forward, headers, Engine, Failure};

/// Where the flow is.
enum Phase {
    /// Its nodes run; it has not answered.
    Running,
    /// It failed while calls were in flight. It waits for them, so that those that complete are
    /// compensated too, then sends its answer (`None`: its client has gone).
    Draining(Option<Reply>),
    /// It answered, forwarded, or was abandoned with nothing left in flight.
    Finished,
}

/// What a step of the flow came to.
enum Step {
    /// Calls are in flight: nothing to do until one answers.
    Waiting,
    /// Every node has settled: the flow answers with its output, or forwards.
    Settled,
    /// The flow fails, outside any node (its input, its plan).
    Failed(Failure),
    /// A node's call failed; `body` is what its upstream answered.
    NodeFailed { index: usize, failure: Failure, body: Vec<u8> },
}

/// How the flow answers; decided once.
enum Answer {
    Output(Reply),
    /// A proxy's request went on to its service, which answers the client.
    Forwarded,
    Error(Reply),
    /// Nobody is left to answer.
    ClientGone,
}

/// One request's run of a flow.
pub struct Execution {
    engine: Rc<Engine>,
    /// Sent with every call and compensation (`x-semaphore-execution-id`).
    id: String,
    endpoint: usize,
    /// The protocol its request came in, and its answer goes out in.
    wire: Wire,
    flow: usize,
    /// What its templates read.
    scope: Scope,
    /// Node indices in the order their calls completed, for the rollback order.
    completed: Vec<usize>,
    phase: Phase,
    started_ms: u64,
    deadline_ms: Option<u64>,
    now_unix_ms: u64,
    random: Cell<u64>,
}

impl Execution {
    /// Decodes the input and dispatches every node that depends on nothing.
    pub fn start(engine: Rc<Engine>, matched: Match, mut request: Request, host: &mut dyn Host) -> Execution {
        let flow = engine.plan.endpoints.get(matched.endpoint).map(|e| e.flow as usize).unwrap_or(usize::MAX);
        let body = std::mem::take(&mut request.body);
        let mut execution = Execution::new(engine, matched.endpoint, matched.wire, flow, request, host);
        let step = execution.begin(&matched, &body, host);
        execution.conclude(step, host);
        execution
    }

    /// A GraphQL field's run of `flow`, its input typed from the field's arguments; it answers
    /// as `endpoint` (the GraphQL endpoint) writes answers.
    pub fn start_with_input(
        engine: Rc<Engine>,
        endpoint: usize,
        flow: usize,
        input: Map,
        request: Request,
        host: &mut dyn Host,
    ) -> Execution {
        let mut execution = Execution::new(engine, endpoint, Wire::Graphql, flow, request, host);
        let step = match execution.engine.rewrites.get(flow) {
            Some(Err(reason)) => Step::Failed(Failure::new(500, reason.clone())),
            _ => {
                execution.scope.input = Value::Object(input);
                execution.advance(host)
            }
        };
        execution.conclude(step, host);
        execution
    }

    fn new(
        engine: Rc<Engine>,
        endpoint: usize,
        wire: Wire,
        flow: usize,
        request: Request,
        host: &mut dyn Host,
    ) -> Execution {
        let flow_def = engine.plan.flows.get(flow);
        let node_count = flow_def.map(|f| f.nodes.len()).unwrap_or(0);
        let now = host.now_ms();
        let flow_deadline = flow_def.filter(|f| f.timeout_ms > 0).map(|f| now + u64::from(f.timeout_ms));
        let client_deadline =
            endpoint::client_timeout_ms(wire, &request.headers).map(|ms| now.saturating_add(ms));
        let deadline_ms = match (flow_deadline, client_deadline) {
            (Some(flow), Some(client)) => Some(flow.min(client)),
            (flow, client) => flow.or(client),
        };
        let random = Cell::new(request.seed);
        Execution {
            engine,
            id: eval::uuid(&random),
            endpoint,
            wire,
            flow,
            scope: Scope {
                input: Value::Null,
                headers: request.headers,
                nodes: (0..node_count).map(|_| NodeState::Waiting).collect(),
                failure: None,
            },
            completed: Vec::new(),
            phase: Phase::Running,
            started_ms: now,
            deadline_ms,
            now_unix_ms: request.now_unix_ms,
            random,
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// The id its calls and compensations carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `token` belongs to a call of this execution that is still waiting.
    pub fn owns(&self, token: u32) -> bool {
        self.scope.running(token).is_some()
    }

    /// Whether the answer to call `token` must come with its headers: some template reads
    /// them. Otherwise the host reads only its status.
    pub fn reads_response_headers(&self, token: u32) -> bool {
        let Some(index) = self.scope.running(token) else { return false };
        let node = self.engine.plan.flows.get(self.flow).and_then(|flow| flow.nodes.get(index));
        node.and_then(|node| node.call.as_ref()).is_some_and(|call| !call.response_headers_unread)
    }

    pub fn on_response(&mut self, token: u32, response: UpstreamResponse, host: &mut dyn Host) {
        let Some(index) = self.scope.running(token) else {
            debug!("response for unknown call {token} ignored");
            return;
        };
        let Some(NodeState::Running(running)) = self.scope.set(index, NodeState::Waiting) else { return };
        if self.is_finished() {
            return;
        }
        let step = self.settle_call(index, running, response, host);
        self.conclude(step, host);
    }

    /// The client went away before the flow answered. The flow fails, but its calls in flight
    /// go on: the upstreams may perform them, so the flow waits for their answers (or their
    /// timeouts) and compensates what completed, exactly as a flow that failed on its own does.
    /// Finished once nothing is in flight.
    pub fn abandon(&mut self, host: &mut dyn Host) {
        match self.phase {
            Phase::Finished | Phase::Draining(None) => return,
            // A flow already failing keeps its own error (and has counted itself) for its
            // rollbacks.
            Phase::Draining(Some(_)) => self.phase = Phase::Draining(None),
            Phase::Running => {
                self.scope.failure = Some(Handled::new(499, "the client went away", Value::Null));
                self.decide(Answer::ClientGone, host);
            }
        }
        warn!("flow `{}` ({}): the client went away before the answer", self.flow_name(), self.id);
        self.conclude(Step::Waiting, host);
    }

    /// The compensating calls of a failed flow, in the order `schedule::rollbacks` gives. Built
    /// once, from the state at failure; empty for a flow that succeeded.
    pub fn take_rollbacks(&mut self) -> Vec<Compensation> {
        self.take_compensations().0
    }

    /// The compensations, and those that cannot be built (each logged), for the metrics.
    pub fn take_compensations(&mut self) -> (Vec<Compensation>, Vec<SagaEvent>) {
        let (mut compensations, mut given_up) = (Vec::new(), Vec::new());
        let engine = Rc::clone(&self.engine);
        let Some(flow) = engine.plan.flows.get(self.flow).filter(|_| self.scope.failure.is_some()) else {
            return (compensations, given_up);
        };
        let completed: Vec<(usize, Completion)> = std::mem::take(&mut self.completed)
            .into_iter()
            .map(|index| match self.scope.nodes.get(index) {
                Some(NodeState::Unknown { .. }) => (index, Completion::Unknown),
                _ => (index, Completion::Done),
            })
            .collect();
        for rollback in schedule::rollbacks(flow, &completed) {
            let result = match rollback {
                Rollback::Compensate(index) => self.compensation(flow, index),
                Rollback::GiveUp(index) => Err((index, self.needs_its_answer(flow, index))),
            };
            match result {
                Ok(compensation) => compensations.push(compensation),
                Err((index, reason)) => {
                    error!("flow `{}` ({}): {reason}", flow.name, self.id);
                    given_up.push(SagaEvent::GivenUp { flow: self.flow, node: index });
                }
            }
        }
        (compensations, given_up)
    }

    /// Runs the rewrite rules' verdict and the input's decoding, then the first nodes.
    fn begin(&mut self, matched: &Match, body: &[u8], host: &mut dyn Host) -> Step {
        if let Some(Err(reason)) = self.engine.rewrites.get(self.flow) {
            // Refused before any resource runs, so nothing needs compensating.
            return Step::Failed(Failure::new(500, reason.clone()));
        }
        let engine = Rc::clone(&self.engine);
        let (Some(endpoint), Some(flow)) = (self.endpoint_def(&engine), engine.plan.flows.get(self.flow))
        else {
            return Step::Failed(Failure::new(500, "the plan's endpoint names no flow"));
        };
        match endpoint::decode_input(&engine.plan, endpoint, flow.input, matched, body) {
            Ok(input) => {
                self.scope.input = Value::Object(input);
                self.advance(host)
            }
            Err(failure) => Step::Failed(failure),
        }
    }

    /// Acts on what a step came to; a flow draining answers once nothing is in flight.
    fn conclude(&mut self, step: Step, host: &mut dyn Host) {
        match step {
            Step::Waiting => {}
            Step::Settled => match self.settled_answer(host) {
                Ok(answer) => self.decide(answer, host),
                Err(failure) => self.fail(failure, host),
            },
            Step::Failed(failure) => self.fail(failure, host),
            Step::NodeFailed { index, failure, body } => self.node_failed(index, failure, &body, host),
        }
        if matches!(self.phase, Phase::Draining(_)) && !self.scope.in_flight() {
            if let Phase::Draining(Some(reply)) = std::mem::replace(&mut self.phase, Phase::Finished) {
                host.respond(reply);
            }
        }
    }

    /// The flow's answer: counted once, and sent now, or, for an error while calls are in
    /// flight, once they have ended.
    fn decide(&mut self, answer: Answer, host: &mut dyn Host) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        let failed = matches!(answer, Answer::Error(_) | Answer::ClientGone);
        let duration_ms = host.now_ms().saturating_sub(self.started_ms);
        host.record(Event::Flow { flow: self.flow, failed, duration_ms });
        self.phase = match answer {
            Answer::Output(reply) => {
                host.respond(reply);
                Phase::Finished
            }
            Answer::Forwarded => Phase::Finished,
            Answer::Error(reply) => {
                if self.scope.in_flight() {
                    debug!("flow `{}` answers once its calls in flight have ended", self.flow_name());
                }
                Phase::Draining(Some(reply))
            }
            Answer::ClientGone => Phase::Draining(None),
        };
    }

    /// Every node has settled: the output, or a proxy's request sent on.
    // Apart from its one caller: see "Small functions" in the crate's documentation.
    #[inline(never)]
    fn settled_answer(&mut self, host: &mut dyn Host) -> Result<Answer, Failure> {
        let engine = Rc::clone(&self.engine);
        let Some(flow) = engine.plan.flows.get(self.flow) else {
            return Err(Failure::new(500, "the plan's endpoint names no flow"));
        };
        if let Some(forward) = &flow.forward {
            let rules = match engine.rewrites.get(self.flow) {
                Some(Ok(rules)) => rules.as_slice(),
                _ => &[],
            };
            let forwarding =
                forward::forwarding(&engine.plan, forward, rules, &self.scope.headers, |v| self.evaluate(v))?;
            host.forward(forwarding)
                .map_err(|e| Failure::new(502, format!("cannot forward the request: {e}")))?;
            return Ok(Answer::Forwarded);
        }
        let endpoint = self.endpoint_def(&engine);
        let status = endpoint.map(|e| e.status as u16).unwrap_or(200);
        let reply = match &flow.output {
            Some(output) => self.reply(status, output.message, output.body.as_ref(), &output.headers)?,
            None => endpoint::empty_reply(self.wire, status),
        };
        Ok(Answer::Output(reply))
    }

    /// Dispatches every waiting node whose dependencies have settled, the moment they have.
    fn advance(&mut self, host: &mut dyn Host) -> Step {
        let engine = Rc::clone(&self.engine);
        let Some(flow) = engine.plan.flows.get(self.flow) else {
            return Step::Failed(Failure::new(500, "the plan's endpoint names no flow"));
        };
        // Nodes without a call settle at once and may make others ready: again until none does.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for (index, node) in flow.nodes.iter().enumerate() {
                let waiting = matches!(self.scope.nodes.get(index), Some(NodeState::Waiting));
                if !waiting
                    || !schedule::ready(node, |d| self.scope.nodes.get(d).is_some_and(NodeState::settled))
                {
                    continue;
                }
                match self.start_node(flow, index, node, host) {
                    Ok(settled) => progressed |= settled,
                    Err(failure) => return Step::NodeFailed { index, failure, body: Vec::new() },
                }
            }
        }
        if self.scope.nodes.iter().all(NodeState::settled) {
            Step::Settled
        } else if self.scope.in_flight() {
            Step::Waiting
        } else {
            Step::Failed(Failure::new(500, "the flow cannot make progress (its plan has a dependency cycle)"))
        }
    }

    /// Skips a ready node, computes it, or dispatches its call; whether it settled at once.
    fn start_node(
        &mut self,
        flow: &Flow,
        index: usize,
        node: &Node,
        host: &mut dyn Host,
    ) -> Result<bool, Failure> {
        let skip = node.condition.as_ref().is_some_and(|c| !eval::truthy(self.evaluate(c).as_ref()));
        let state = match &node.call {
            _ if skip => {
                debug!("flow `{}` skips `{}`: its condition is false", flow.name, node.name);
                NodeState::Skipped
            }
            None => {
                self.completed.push(index);
                let response = self.node_values(node);
                NodeState::Done(Completed {
                    request: Value::Null,
                    response,
                    headers: Vec::new(),
                    params: Value::Null,
                })
            }
            Some(call) => {
                let running = self.dispatch(call, host)?;
                debug!("flow `{}` dispatched `{}` (call {})", flow.name, node.name, running.token);
                self.scope.set(index, NodeState::Running(running));
                return Ok(false);
            }
        };
        self.scope.set(index, state);
        Ok(true)
    }

    fn dispatch(&self, call: &Call, host: &mut dyn Host) -> Result<Running, Failure> {
        let now = host.now_ms();
        let Some(timeout_ms) = schedule::call_timeout_ms(call, self.deadline_ms, now) else {
            return Err(Failure::new(504, "the flow's deadline passed"));
        };
        let request = self.build_request(call)?;
        let mut built = self.callout(call, &request)?;
        built.callout.timeout = Duration::from_millis(timeout_ms);
        let token = host
            .dispatch(&built.callout)
            .map_err(|e| Failure::new(502, format!("cannot call upstream: {e}")))?;
        // Copied in only when something reads it later: the compiler says whether anything does.
        let request = match call.request_unread {
            true => Value::Null,
            false => Value::Object(request.into_map(&self.engine.plan, call.request_message)),
        };
        Ok(Running {
            token,
            request,
            params: Value::Object(built.params),
            callout: built.callout,
            attempt: 0,
            started_ms: now,
        })
    }

    /// A call, or a rollback, ready to send: it carries the execution's id.
    fn callout(&self, call: &Call, request: &codec::Outgoing) -> Result<Built, Failure> {
        let mut built =
            upstream::build_callout(&self.engine.plan, call, request, &self.scope.headers, |value| {
                self.evaluate(value)
            })?;
        built.callout.headers.push((EXECUTION_ID_HEADER.into(), self.id.clone().into()));
        Ok(built)
    }

    /// Records how a call ended, trying it again when the policy says so. A flow draining
    /// retries nothing and starts nothing new.
    fn settle_call(
        &mut self,
        index: usize,
        running: Running,
        response: UpstreamResponse,
        host: &mut dyn Host,
    ) -> Step {
        let engine = Rc::clone(&self.engine);
        let node = engine.plan.flows.get(self.flow).and_then(|f| f.nodes.get(index));
        let Some((node, call)) = node.and_then(|n| Some((n, n.call.as_ref()?))) else { return Step::Waiting };
        let draining = !matches!(self.phase, Phase::Running);
        if !draining && schedule::retries(call, running.attempt, response.status, self.past_deadline(host)) {
            debug!("flow `{}` retries `{}` (attempt {})", self.flow_name(), node.name, running.attempt + 2);
            match host.dispatch(&running.callout) {
                Ok(token) => {
                    self.scope.set(
                        index,
                        NodeState::Running(Running { token, attempt: running.attempt + 1, ..running }),
                    );
                    return Step::Waiting;
                }
                Err(e) => warn!("flow `{}`: cannot retry `{}`: {e}", self.flow_name(), node.name),
            }
        }
        let duration_ms = host.now_ms().saturating_sub(running.started_ms);
        let unknown = response.outcome_unknown;
        let outcome = upstream::read_response(&engine.plan, call, &node.expect_status, response);
        host.record(Event::Call { flow: self.flow, node: index, failed: outcome.is_err(), duration_ms });
        let (request, params) = (running.request, running.params);
        match outcome {
            Ok((response, headers)) => {
                self.completed.push(index);
                self.scope.set(index, NodeState::Done(Completed { request, response, headers, params }));
                if draining {
                    Step::Waiting
                } else {
                    self.advance(host)
                }
            }
            Err((failure, body)) if unknown => {
                if !draining {
                    let (flow, id) = (self.flow_name(), &self.id);
                    warn!(
                        "flow `{flow}` ({id}): `{}` may have been performed: {}",
                        node.name, failure.message
                    );
                }
                self.completed.push(index);
                self.scope.set(index, NodeState::Unknown { request, params });
                if draining {
                    Step::Waiting
                } else {
                    Step::NodeFailed { index, failure, body }
                }
            }
            Err(_) if draining => {
                self.scope.set(index, NodeState::Failed { error: Value::Null });
                Step::Waiting
            }
            Err((failure, body)) => Step::NodeFailed { index, failure, body },
        }
    }

    /// A node's call failed: its `on_error` (else the flow's) decides the status, message and
    /// params; its error object (else the flow's) answers the client.
    // Apart from its one caller: see "Small functions" in the crate's documentation.
    #[inline(never)]
    fn node_failed(&mut self, index: usize, failure: Failure, body: &[u8], host: &mut dyn Host) {
        let engine = Rc::clone(&self.engine);
        let flow = engine.plan.flows.get(self.flow);
        let Some(node) = flow.and_then(|f| f.nodes.get(index)) else { return self.fail(failure, host) };
        let on_error = node.on_error.as_ref().or(flow.and_then(|f| f.on_error.as_ref()));
        let schema = on_error.and_then(|e| e.schema);
        let error = match &node.call {
            Some(call) => upstream::decode_error(&engine.plan, call, schema, body),
            None => Value::Null,
        };
        let previous = self.scope.set(index, NodeState::Failed { error });
        let message = format!("resource `{}`: {}", node.name, failure.message);
        // The on_error templates read the failure as it came (`{{ error:message }}`).
        self.scope.failure = Some(Handled::new(failure.status, &message, Value::Null));
        let handled = on_error.map(|on_error| self.apply_on_error(on_error, failure.status, message.clone()));
        // A call whose outcome is unknown keeps what it sent, for its compensation.
        if let Some(unknown @ NodeState::Unknown { .. }) = previous {
            self.scope.set(index, unknown);
        }
        let (status, message) = match handled {
            Some((status, message, params)) => {
                self.scope.failure = Some(Handled::new(status, &message, params));
                (status, message)
            }
            None => (failure.status, message),
        };
        warn!("flow `{}` failed: {message} ({status})", self.flow_name());
        let object = node.error.as_ref().or(flow.and_then(|f| f.error.as_ref()));
        let reply = self.error_reply(status, &message, object);
        self.decide(Answer::Error(reply), host);
    }

    /// A failure outside any node (the input, the plan): the flow's error object answers it.
    fn fail(&mut self, failure: Failure, host: &mut dyn Host) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        warn!("flow `{}` failed: {} ({})", self.flow_name(), failure.message, failure.status);
        if self.scope.failure.is_none() {
            self.scope.failure = Some(Handled::new(failure.status, &failure.message, Value::Null));
        }
        let engine = Rc::clone(&self.engine);
        let object = engine.plan.flows.get(self.flow).and_then(|f| f.error.as_ref());
        let reply = self.error_reply(failure.status, &failure.message, object);
        self.decide(Answer::Error(reply), host);
    }

    /// The status, message and params an `on_error` gives a failure.
    fn apply_on_error(
        &self,
        on_error: &OnError,
        mut status: u16,
        mut message: String,
    ) -> (u16, String, Value) {
        if let Some(value) = on_error.status.as_ref().and_then(|v| self.evaluate(v)) {
            match value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok())) {
                Some(code @ 100..=599) => status = code as u16,
                _ => warn!(
                    "flow `{}`: on_error status {} is not an HTTP status",
                    self.flow_name(),
                    codec::json_text(&value)
                ),
            }
        }
        if let Some(value) = on_error.message.as_ref().and_then(|v| self.evaluate(v)) {
            message = codec::to_text(&value);
        }
        let params: Map = on_error
            .params
            .iter()
            .filter_map(|p| Some((p.name.clone(), self.evaluate(p.value.as_ref()?)?)))
            .collect();
        (status, message, Value::Object(params))
    }

    /// The error object's answer, else `{message, status}`.
    fn error_reply(&self, status: u16, message: &str, object: Option<&ErrorObject>) -> Reply {
        let endpoint = self.endpoint_def(&self.engine);
        if let Some(object) = object.filter(|_| endpoint.is_some_and(endpoint::writes_error_objects)) {
            match self.reply(status, object.message, object.body.as_ref(), &object.headers) {
                Ok(reply) => return reply,
                Err(problem) => {
                    warn!("flow `{}`: cannot build its error object: {}", self.flow_name(), problem.message)
                }
            }
        }
        endpoint::error_reply(self.wire, status, message)
    }

    /// A message built from its template, with templated headers, as the endpoint answers.
    fn reply(
        &self,
        status: u16,
        layout: u32,
        template: Option<&MessageTemplate>,
        header_templates: &[HeaderTemplate],
    ) -> Result<Reply, Failure> {
        let Some(endpoint) = self.endpoint_def(&self.engine) else {
            return Err(Failure::new(500, "the plan names an endpoint it does not define"));
        };
        // Values held in the scope are written from there, not copied into the answer.
        let lookup = |reference: &Reference| self.scope.resolve(reference);
        let held = |reference: &Reference| self.scope.get(reference);
        let message = self
            .env(&lookup)
            .build_outgoing(layout, template, &held)
            .map_err(|message| Failure::new(500, message))?;
        let headers = headers::present(header_templates, |v| self.evaluate(v))?;
        Ok(endpoint::reply(&self.engine.plan, endpoint, self.wire, status, layout, message, headers))
    }

    /// The compensating call of a completed node, or why it cannot be built.
    fn compensation(&self, flow: &Flow, index: usize) -> Result<Compensation, (usize, String)> {
        let node = flow.nodes.get(index).ok_or((index, "the plan names a node it lacks".to_string()))?;
        let call = node.rollback.as_ref().ok_or((index, format!("`{}` has no rollback", node.name)))?;
        let built =
            self.build_request(call).and_then(|request| self.callout(call, &request)).map_err(|failure| {
                (index, format!("cannot build the rollback of `{}`: {}", node.name, failure.message))
            })?;
        Ok(Compensation {
            execution_id: self.id.clone(),
            flow: self.flow,
            node: index,
            flow_name: flow.name.clone(),
            node_name: node.name.clone(),
            callout: built.callout,
            retries: call.retries,
        })
    }

    /// Why a node whose outcome is unknown cannot be compensated, with what it sent.
    fn needs_its_answer(&self, flow: &Flow, index: usize) -> String {
        let name = flow.nodes.get(index).map(|n| n.name.as_str()).unwrap_or("?");
        let sent = match self.scope.nodes.get(index) {
            Some(NodeState::Unknown { request, .. }) => codec::json_text(request),
            _ => String::new(),
        };
        format!("`{name}` may have been performed, and its rollback needs its answer: compensate it by hand; it sent {sent}")
    }

    fn endpoint_def<'e>(&self, engine: &'e Engine) -> Option<&'e Endpoint> {
        engine.plan.endpoints.get(self.endpoint)
    }

    fn flow_name(&self) -> &str {
        self.engine.plan.flows.get(self.flow).map(|f| f.name.as_str()).unwrap_or("?")
    }

    fn past_deadline(&self, host: &dyn Host) -> bool {
        self.deadline_ms.is_some_and(|deadline| host.now_ms() >= deadline)
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
    /// A call's request message; values it takes whole from the scope are left where they are.
    fn build_request(&self, call: &Call) -> Result<codec::Outgoing<'_>, Failure> {
        let lookup = |reference: &Reference| self.scope.resolve(reference);
        let held = |reference: &Reference| self.scope.get(reference);
        self.env(&lookup)
            .build_outgoing(call.request_message, call.request.as_ref(), &held)
            .map_err(|message| Failure::new(500, message))
    }

    /// The value of a template; `None` when it refers to something absent.
    fn evaluate(&self, value: &semaphore_plan::Value) -> Option<Value> {
        let lookup = |reference: &Reference| self.scope.resolve(reference);
        self.env(&lookup).evaluate(value)
    }
}
