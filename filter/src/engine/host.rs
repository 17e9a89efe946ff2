//! What crosses between the engine and its host (the proxy-wasm adapter in Envoy, a fake in
//! tests): the [`Host`] trait, and the requests, calls and answers it carries.

use std::borrow::Cow;
use std::time::Duration;

/// What the engine asks of its host (the proxy-wasm adapter in Envoy, a fake in tests).
pub trait Host {
    /// Starts an upstream call; the answer comes back through `Execution::on_response` with the
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

/// A callout's header name or value: most names, and some values, are the filter's own
/// constants, which a callout borrows rather than copies.
pub type HeaderText = Cow<'static, str>;

#[derive(Debug, Clone, PartialEq)]
pub struct Callout {
    pub cluster: String,
    pub authority: String,
    /// HTTP: including the `:method`, `:path` and `:authority` pseudo-headers. gRPC: the initial
    /// metadata.
    pub headers: Vec<(HeaderText, HeaderText)>,
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
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
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

/// An answer to the client. `trailers` are sent after the body (gRPC's status is there).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// An upstream's answer; `status` is `None` when no response arrived (reset, refused, timeout).
/// A gRPC answer carries its status as the HTTP status it stands for, with `grpc-status` and
/// `grpc-message` (percent-encoded, as it came) among the headers.
#[derive(Debug, Clone, Default)]
pub struct UpstreamResponse {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The call may have been performed, but no answer says so: it timed out, or the connection
    /// was reset after the request went out. Its compensation runs if it can be built.
    pub outcome_unknown: bool,
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
