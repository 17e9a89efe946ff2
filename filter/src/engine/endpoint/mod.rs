//! Endpoints: how a client reaches a flow. Each kind of endpoint (the plan's `EndpointKind`)
//! says which requests it serves, reads the flow's input from a request and writes the flow's
//! answers; one file per kind, and this one only picks the kind.

pub mod graphql;
pub mod grpc;
mod http;
mod reflection;

use crate::engine::value::Map;
use semaphore_plan::{Endpoint, EndpointKind, Plan};

use super::codec;
use super::host::Reply;
use super::Failure;

/// An endpoint that matched, with the raw values its path bound and the protocol it is called
/// in.
#[derive(Debug, PartialEq)]
pub struct Match {
    pub endpoint: usize,
    pub params: Vec<(String, String)>,
    pub query: String,
    pub wire: Wire,
}

/// The form a request and its answer take: an HTTP endpoint's, or one of the protocols a gRPC
/// method is called in (see `grpc.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The endpoint's path, method and codecs.
    Http,
    /// gRPC over HTTP/2.
    Grpc,
    /// gRPC-Web; `text` is its base64 form.
    GrpcWeb { text: bool },
    /// Connect unary, its messages in protobuf or JSON.
    Connect { json: bool },
    /// A GraphQL request (`engine/graphql/`); the flows its fields run answer in JSON.
    Graphql,
}

/// What the plan says of a request's method and path.
#[derive(Debug, PartialEq)]
pub enum Route {
    Endpoint(Match),
    /// Endpoints serve the path, but only for these methods: 405, as Semaphore answered.
    MethodNotAllowed(Vec<String>),
    /// An endpoint serves the request, or the service of its path, but refuses it before any
    /// flow runs: a gRPC method called with a content type no gRPC client sends (415), or a
    /// method the service lacks (UNIMPLEMENTED, as a gRPC server answers).
    Refused(Reply),
    /// No endpoint serves the path: the request is Envoy's router's.
    NoEndpoint,
}

/// A request as routing sees it: its method, and its `:path` split once for every endpoint it
/// is matched against.
struct Target<'a> {
    method: &'a str,
    segments: Vec<&'a str>,
    query: &'a str,
}

impl<'a> Target<'a> {
    fn new(method: &'a str, full_path: &'a str) -> Target<'a> {
        let (path, query) = full_path.split_once('?').unwrap_or((full_path, ""));
        let path = path.split('#').next().unwrap_or("");
        Target { method, segments: path.split('/').filter(|s| !s.is_empty()).collect(), query }
    }
}

/// Whether an endpoint serves a request.
enum Binding {
    /// Its path and method: with the values its path bound.
    Serves(Match),
    /// Its path, not its method.
    OtherMethod,
    NotThisPath,
}

/// The endpoint serving a request, the first in the plan's order. `content_type` tells the
/// protocols of a gRPC method apart.
pub fn route(plan: &Plan, method: &str, path: &str, content_type: &str) -> Route {
    let target = Target::new(method, path);
    let mut allowed: Vec<String> = Vec::new();
    for (index, endpoint) in plan.endpoints.iter().enumerate() {
        // Every kind binds a method and a path: a gRPC method's is `POST /package.Service/Method`.
        let binding = http::bind(index, endpoint, &target);
        match binding {
            Binding::Serves(matched) if endpoint.kind() == EndpointKind::Graphql => {
                return Route::Endpoint(Match { wire: Wire::Graphql, ..matched })
            }
            Binding::Serves(matched) if endpoint.kind() != EndpointKind::Http => {
                let reflection = endpoint.kind() == EndpointKind::GrpcReflection;
                return match grpc::wire(content_type) {
                    // Reflection streams, which Connect's unary calls cannot.
                    Some(Wire::Connect { .. }) if reflection => Route::Refused(http::error_reply(
                        415,
                        &format!("{} is gRPC server reflection: gRPC and gRPC-Web call it", endpoint.route),
                    )),
                    Some(wire) => Route::Endpoint(Match { wire, ..matched }),
                    None => Route::Refused(http::error_reply(
                        415,
                        &format!(
                            "{} is a gRPC method: it takes gRPC, gRPC-Web and Connect requests \
                             (`application/grpc`, `application/grpc-web`, `application/grpc-web-text`, \
                             `application/proto`, `application/json`)",
                            endpoint.route
                        ),
                    )),
                };
            }
            Binding::Serves(matched) => return Route::Endpoint(matched),
            Binding::OtherMethod if !allowed.contains(&endpoint.method) => {
                allowed.push(endpoint.method.clone())
            }
            Binding::OtherMethod | Binding::NotThisPath => {}
        }
    }
    if allowed.is_empty() {
        let service = target.segments.first().copied().unwrap_or_default();
        let served = |endpoint: &Endpoint| {
            matches!(endpoint.kind(), EndpointKind::Grpc | EndpointKind::GrpcReflection)
                && endpoint
                    .route
                    .strip_prefix('/')
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(s, _)| s == service)
        };
        // Most requests that reach here are for Envoy's other routes: the path is checked first.
        if target.segments.len() == 2 && plan.endpoints.iter().any(served) {
            if let Some(wire) = grpc::wire(content_type) {
                let path = path.split('?').next().unwrap_or_default();
                return Route::Refused(grpc::error_reply(wire, 501, &format!("unknown method {path}")));
            }
        }
        Route::NoEndpoint
    } else {
        Route::MethodNotAllowed(allowed)
    }
}

/// On the `graphql { address }` listener the schema answers on any path: the GraphQL endpoint
/// for `method`, else 405 naming the methods it takes.
pub fn route_graphql(plan: &Plan, method: &str, path: &str) -> Route {
    let graphql = |e: &&Endpoint| e.kind() == EndpointKind::Graphql;
    let query = path.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or("")).unwrap_or("");
    match plan.endpoints.iter().enumerate().find(|(_, e)| graphql(e) && e.method.eq_ignore_ascii_case(method))
    {
        Some((endpoint, _)) => Route::Endpoint(Match {
            endpoint,
            params: Vec::new(),
            query: query.to_string(),
            wire: Wire::Graphql,
        }),
        None if plan.endpoints.iter().any(|e| graphql(&e)) => {
            Route::MethodNotAllowed(plan.endpoints.iter().filter(graphql).map(|e| e.method.clone()).collect())
        }
        None => Route::NoEndpoint,
    }
}

/// The flow's input message (of layout `layout`) from the request.
pub(super) fn decode_input(
    plan: &Plan,
    endpoint: &Endpoint,
    layout: u32,
    matched: &Match,
    body: &[u8],
) -> Result<Map, Failure> {
    match endpoint.kind() {
        EndpointKind::Http => http::decode_input(plan, endpoint, layout, matched, body),
        EndpointKind::Grpc | EndpointKind::GrpcReflection => {
            grpc::decode_input(plan, matched.wire, layout, body)
        }
        // A GraphQL field's input is its arguments, typed before its flow starts.
        EndpointKind::Graphql => Err(Failure::new(500, "a GraphQL field's flow reads no request body")),
    }
}

/// The answer of an endpoint that runs no flow (gRPC server reflection), to its request's
/// first message; `None` for every other endpoint.
pub fn answer_without_flow(plan: &Plan, matched: &Match, body: &[u8]) -> Option<Reply> {
    let endpoint = plan.endpoints.get(matched.endpoint)?;
    (endpoint.kind() == EndpointKind::GrpcReflection).then(|| reflection::answer(plan, matched.wire, body))
}

/// Whether the endpoint streams: it answers once its request's first message has arrived
/// whole, before the request ends, as a streaming method's client may wait for the answer
/// before it sends more.
pub fn streams(plan: &Plan, matched: &Match) -> bool {
    plan.endpoints.get(matched.endpoint).is_some_and(|e| e.kind() == EndpointKind::GrpcReflection)
}

/// Whether a streaming request's first message has arrived whole in `body`, the body so far.
pub fn first_message_arrived(matched: &Match, body: &[u8]) -> bool {
    grpc::first_message_arrived(matched.wire, body)
}

/// When the request's flow must have answered: the client's own deadline where the protocol
/// carries one (gRPC's `grpc-timeout`, Connect's `connect-timeout-ms`), else none.
pub(super) fn client_timeout_ms(wire: Wire, headers: &[(String, String)]) -> Option<u64> {
    match wire {
        Wire::Http | Wire::Graphql => None,
        _ => grpc::timeout_ms(wire, headers),
    }
}

/// Whether failures are answered with the flow's error object. gRPC answers a failure with its
/// status and message only, as Semaphore's gRPC listener did.
pub(super) fn writes_error_objects(endpoint: &Endpoint) -> bool {
    endpoint.kind() == EndpointKind::Http
}

/// A message answered to the client: the output, or an error object.
pub(super) fn reply(
    plan: &Plan,
    endpoint: &Endpoint,
    wire: Wire,
    status: u16,
    layout: u32,
    message: codec::Outgoing,
    headers: Vec<(String, String)>,
) -> Reply {
    match wire {
        Wire::Http | Wire::Graphql => http::reply(plan, endpoint, status, layout, message, headers),
        _ => grpc::reply(plan, wire, layout, message, headers),
    }
}

/// A failure answered without an error object of the flow's: its status and message.
pub(super) fn error_reply(wire: Wire, status: u16, message: &str) -> Reply {
    match wire {
        Wire::Http | Wire::Graphql => http::error_reply(status, message),
        _ => grpc::error_reply(wire, status, message),
    }
}

/// The answer to a method no endpoint of the path serves: 405 with the methods that are.
pub fn method_not_allowed(method: &str, path: &str, allowed: &[String]) -> Reply {
    http::method_not_allowed(method, path, allowed)
}

/// The answer of a flow without an output.
pub(super) fn empty_reply(wire: Wire, status: u16) -> Reply {
    match wire {
        Wire::Http | Wire::Graphql => http::empty_reply(status),
        _ => grpc::empty_reply(wire),
    }
}
