//! Endpoints: how a client reaches a flow. Each kind of endpoint (the plan's `EndpointKind`)
//! says which requests it serves, reads the flow's input from a request and writes the flow's
//! answers; one file per kind, and this one only picks the kind.

mod http;

use semaphore_plan::{Endpoint, EndpointKind, Plan};
use serde_json::{Map, Value};

use super::codec;
use super::host::Reply;
use super::Failure;

/// An endpoint that matched, with the raw values its path bound.
#[derive(Debug, PartialEq)]
pub struct Match {
    pub endpoint: usize,
    pub params: Vec<(String, String)>,
    pub query: String,
}

/// What the plan says of a request's method and path.
#[derive(Debug, PartialEq)]
pub enum Route {
    Endpoint(Match),
    /// Endpoints serve the path, but only for these methods: 405, as Semaphore answered.
    MethodNotAllowed(Vec<String>),
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

/// The endpoint serving a request, the first in the plan's order.
pub fn route(plan: &Plan, method: &str, path: &str) -> Route {
    let target = Target::new(method, path);
    let mut allowed: Vec<String> = Vec::new();
    for (index, endpoint) in plan.endpoints.iter().enumerate() {
        let binding = match endpoint.kind() {
            EndpointKind::Http => http::bind(index, endpoint, &target),
        };
        match binding {
            Binding::Serves(matched) => return Route::Endpoint(matched),
            Binding::OtherMethod if !allowed.contains(&endpoint.method) => {
                allowed.push(endpoint.method.clone())
            }
            Binding::OtherMethod | Binding::NotThisPath => {}
        }
    }
    if allowed.is_empty() {
        Route::NoEndpoint
    } else {
        Route::MethodNotAllowed(allowed)
    }
}

/// The flow's input message (of layout `layout`) from the request.
pub(super) fn decode_input(
    plan: &Plan,
    endpoint: &Endpoint,
    layout: u32,
    matched: &Match,
    body: &[u8],
) -> Result<Map<String, Value>, Failure> {
    match endpoint.kind() {
        EndpointKind::Http => http::decode_input(plan, endpoint, layout, matched, body),
    }
}

/// A message answered to the client: the output, or an error object.
pub(super) fn reply(
    plan: &Plan,
    endpoint: &Endpoint,
    status: u16,
    layout: u32,
    message: codec::Outgoing,
    headers: Vec<(String, String)>,
) -> Reply {
    match endpoint.kind() {
        EndpointKind::Http => http::reply(plan, endpoint, status, layout, message, headers),
    }
}

/// A failure answered without an error object of the flow's: its status and message. Without
/// an endpoint (a plan naming one it lacks) the answer is HTTP's.
pub(super) fn error_reply(endpoint: Option<&Endpoint>, status: u16, message: &str) -> Reply {
    match endpoint.map(Endpoint::kind) {
        Some(EndpointKind::Http) | None => http::error_reply(status, message),
    }
}

/// The answer to a method no endpoint of the path serves: 405 with the methods that are.
pub fn method_not_allowed(method: &str, path: &str, allowed: &[String]) -> Reply {
    http::method_not_allowed(method, path, allowed)
}

/// The answer of a flow without an output.
pub(super) fn empty_reply(endpoint: Option<&Endpoint>, status: u16) -> Reply {
    match endpoint.map(Endpoint::kind) {
        Some(EndpointKind::Http) | None => http::empty_reply(status),
    }
}
