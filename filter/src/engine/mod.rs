//! The engine: runs one flow per request by walking the plan. It knows nothing of proxy-wasm;
//! everything it needs from Envoy goes through [`Host`].
//!
//! The hub is [`Execution`] (`execution.rs`); everything it asks a question of has a home of
//! its own: `schedule.rs` (readiness, retries, deadlines, rollback order), `endpoint/` (one
//! file per kind of endpoint), `upstream/` (one file per transport), `codec/` (one file per
//! wire form), `eval/` (templates, operators, built-in functions), `forward.rs` (a proxy's
//! forwarding) and `saga.rs` (running the compensations of failed flows).

pub mod codec;
mod endpoint;
mod eval;
mod execution;
mod forward;
mod graphql;
mod headers;
mod host;
pub mod saga;
mod schedule;
mod state;
mod upstream;
pub mod value;

#[cfg(test)]
mod tests;

use std::rc::Rc;

use log::error;
use semaphore_plan::Plan;

pub use endpoint::{Match, Route, Wire};
pub use execution::Execution;
pub use graphql::Operation;
pub use host::{Callout, Event, Forwarding, GrpcMethod, Host, Reply, Request, UpstreamResponse};
pub use saga::{Compensation, SagaEvent, Sagas, EXECUTION_ID_HEADER};
pub use upstream::http_status_of_grpc;

/// The plan, loaded once per VM and shared read-only by every request.
pub struct Engine {
    pub plan: Plan,
    /// Each flow's rewrite rules, by flow index, compiled here so that no request compiles a
    /// regex. Refused rules fail the requests of their proxy.
    rewrites: Vec<Result<Vec<forward::Rule>, String>>,
    /// The GraphQL schema's `__schema` document, read once; `None` when introspection is off.
    graphql_introspection: Option<graphql::Introspection>,
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
        let graphql_introspection =
            plan.graphql.as_ref().filter(|g| !g.introspection.is_empty()).and_then(|g| {
                serde_json::from_slice(&g.introspection)
                    .map(graphql::Introspection::new)
                    .map_err(|e| {
                        error!("the plan's GraphQL introspection does not read, introspection is off: {e}")
                    })
                    .ok()
            });
        Rc::new(Engine { plan, rewrites, graphql_introspection })
    }

    /// The endpoint serving this request, if any; requests that match none pass through.
    /// `content_type` tells the protocols of a gRPC method apart.
    pub fn route(&self, method: &str, path: &str, content_type: &str) -> Route {
        endpoint::route(&self.plan, method, path, content_type)
    }

    /// The GraphQL endpoint serving this request on the `graphql { address }` listener, which
    /// serves nothing else, on any path.
    pub fn route_graphql(&self, method: &str, path: &str) -> Route {
        endpoint::route_graphql(&self.plan, method, path)
    }

    /// Whether the GraphQL schema has a listener of its own, whose requests are marked: only
    /// then does the mark mean anything.
    pub fn graphql_has_own_listener(&self) -> bool {
        self.plan.graphql.as_ref().is_some_and(|g| g.own_listener)
    }

    /// The answer to a method no endpoint of the path serves: 405 with the methods that are.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[String]) -> Reply {
        endpoint::method_not_allowed(method, path, allowed)
    }

    /// A request refused before its flow runs, answered as its endpoint answers failures.
    pub fn error_reply(&self, matched: &Match, status: u16, message: &str) -> Reply {
        endpoint::error_reply(matched.wire, status, message)
    }

    /// The answer of an endpoint that runs no flow (gRPC server reflection) to its request's
    /// first message; `None` for a flow's endpoint.
    pub fn answer_without_flow(&self, matched: &Match, body: &[u8]) -> Option<Reply> {
        endpoint::answer_without_flow(&self.plan, matched, body)
    }

    /// Whether the endpoint answers once its request's first message has arrived whole, not
    /// once the request ends (a streaming method); [`Engine::first_message_arrived`] says when.
    pub fn streams(&self, matched: &Match) -> bool {
        endpoint::streams(&self.plan, matched)
    }

    /// Whether a streaming request's first message is whole in `body`, the body so far.
    pub fn first_message_arrived(&self, matched: &Match, body: &[u8]) -> bool {
        endpoint::first_message_arrived(matched, body)
    }

    /// How long a request waits for the first data of its body: its flow's timeout, or
    /// `schedule::BODY_WAIT_MS` for a flow without one.
    pub fn body_wait_ms(&self, matched: &Match) -> u64 {
        let flow =
            self.plan.endpoints.get(matched.endpoint).and_then(|e| self.plan.flows.get(e.flow as usize));
        schedule::body_wait_ms(flow)
    }

    /// Whether the endpoint is a gRPC method.
    pub fn is_grpc(&self, matched: &Match) -> bool {
        self.plan
            .endpoints
            .get(matched.endpoint)
            .is_some_and(|e| e.kind() == semaphore_plan::EndpointKind::Grpc)
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

/// What a request runs: one flow, or the flows a GraphQL operation selects.
pub enum Run {
    Flow(Execution),
    Graphql(Operation),
}

impl Run {
    /// Starts what the matched endpoint runs for this request.
    pub fn start(engine: Rc<Engine>, matched: Match, request: Request, host: &mut dyn Host) -> Run {
        if matched.wire == Wire::Graphql {
            Run::Graphql(Operation::start(engine, &matched, request, host))
        } else {
            Run::Flow(Execution::start(engine, matched, request, host))
        }
    }

    pub fn is_finished(&self) -> bool {
        match self {
            Run::Flow(execution) => execution.is_finished(),
            Run::Graphql(operation) => operation.is_finished(),
        }
    }

    /// Whether the answer to call `token` must come with its headers (see
    /// [`Execution::reads_response_headers`]).
    pub fn reads_response_headers(&self, token: u32) -> bool {
        match self {
            Run::Flow(execution) => execution.reads_response_headers(token),
            Run::Graphql(operation) => operation.reads_response_headers(token),
        }
    }

    pub fn on_response(&mut self, token: u32, response: UpstreamResponse, host: &mut dyn Host) {
        match self {
            Run::Flow(execution) => execution.on_response(token, response, host),
            Run::Graphql(operation) => operation.on_response(token, response, host),
        }
    }

    pub fn abandon(&mut self, host: &mut dyn Host) {
        match self {
            Run::Flow(execution) => execution.abandon(host),
            Run::Graphql(operation) => operation.abandon(host),
        }
    }

    pub fn take_compensations(&mut self) -> (Vec<Compensation>, Vec<SagaEvent>) {
        match self {
            Run::Flow(execution) => execution.take_compensations(),
            Run::Graphql(operation) => operation.take_compensations(),
        }
    }
}

/// Why a flow, or a step of it, failed; becomes the client's error answer.
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
