//! The engine's [`Host`], in Envoy: an HTTP context's stream, and the root context's calls.

use log::{debug, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

use semaphore_plan::FORWARD_CLUSTER_HEADER;

use super::callouts::{dispatch, dispatch_as_root};
use super::grpc_hop::with_trailers_as_headers;
use super::Shared;
use crate::engine::{Callout, Event, Forwarding, Host, Reply};

/// The engine's view of Envoy for one HTTP context's flow.
pub(super) struct EnvoyHost<'a> {
    shared: &'a Shared,
    context_id: u32,
    /// Running in a root context callback, which dispatches as itself.
    in_root: bool,
    /// The client is there: answers and forwards reach its stream.
    attached: bool,
    /// A root callback made the stream's context the effective one, to act on the stream.
    on_stream: bool,
    /// The engine forwarded the request: the filter lets it go on instead of holding it.
    pub(super) forwarded: bool,
    /// The time of the callback it serves: the clock is read once per callback, not at every
    /// question the engine asks of it.
    now_ms: u64,
}

impl<'a> EnvoyHost<'a> {
    pub(super) fn new(
        shared: &'a Shared,
        context_id: u32,
        in_root: bool,
        attached: bool,
        now_ms: u64,
    ) -> Self {
        EnvoyHost { shared, context_id, in_root, attached, on_stream: false, forwarded: false, now_ms }
    }

    /// Whether the stream can be acted on. Stream operations (answer, forward, resume) act on
    /// the effective context: a root callback makes it the stream's only when it acts on it,
    /// as most answers to a flow's calls do not.
    pub(super) fn enter_stream(&mut self) -> bool {
        if !self.attached {
            return false;
        }
        if self.in_root && !self.on_stream {
            if hostcalls::set_effective_context(self.context_id).is_err() {
                self.attached = false;
                return false;
            }
            self.on_stream = true;
        }
        true
    }

    /// Back to the root context, after `enter_stream`.
    pub(super) fn leave_stream(&mut self) {
        if self.on_stream {
            let _ = hostcalls::set_effective_context(self.shared.root_id);
            self.on_stream = false;
        }
    }
}

/// Changes a request header while the request is held (`None` removes it). The SDK traps on a
/// refusal, which Envoy gives only when the request headers are gone; the filter never changes
/// them after it let the request go on.
pub(super) fn set_request_header(name: &str, value: Option<&str>) -> Result<(), String> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
        .map_err(|status| format!("Envoy refused to set the request header `{name}` ({status:?})"))
}

/// Envoy picked the route before the filter ran; a router using that stale pick would ignore
/// the changed headers. Whether a wasm filter's header changes alone make Envoy pick again has
/// changed between releases; the `clear_route_cache` foreign function makes it so in those that
/// have it (1.40 does), and older ones, which lack it, re-pick on every header change.
pub(super) fn refresh_route() {
    if let Err(status) = hostcalls::call_foreign_function("clear_route_cache", None) {
        debug!("Envoy has no clear_route_cache ({status:?}); it re-picks routes on header changes");
    }
}

/// A client naming the forward cluster itself would pick any cluster Envoy knows: the header is
/// the filter's alone. Takes the request's headers as read, and leaves them as Envoy has them.
pub(super) fn remove_client_forward_cluster(headers: &mut Vec<(String, String)>) {
    let before = headers.len();
    headers.retain(|(name, _)| name != FORWARD_CLUSTER_HEADER);
    if headers.len() != before {
        warn!("removed the `{FORWARD_CLUSTER_HEADER}` header a client sent");
        if set_request_header(FORWARD_CLUSTER_HEADER, None).is_ok() {
            refresh_route();
        }
    }
}

impl Host for EnvoyHost<'_> {
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String> {
        self.leave_stream();
        let token = if self.in_root { dispatch(callout) } else { dispatch_as_root(self.shared, callout) }?;
        self.shared.owners.borrow_mut().insert(token, self.context_id);
        Ok(token)
    }

    fn respond(&mut self, reply: Reply) {
        if !self.enter_stream() {
            return;
        }
        // Envoy's local replies end with their body: only gRPC answers have trailers.
        let headers = with_trailers_as_headers(&reply.headers, &reply.trailers, &reply.body);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        if let Err(status) =
            hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
        {
            warn!("cannot send the response ({status:?})");
        }
    }

    fn forward(&mut self, forwarding: Forwarding) -> Result<(), String> {
        if !self.enter_stream() {
            return Err("the client has gone".into());
        }
        for (name, value) in &forwarding.headers {
            set_request_header(name, value.as_deref())?;
        }
        // After the proxy's own headers, so that none of them can change where the request goes.
        set_request_header(":authority", Some(&forwarding.authority))?;
        set_request_header(":path", Some(&forwarding.path))?;
        set_request_header(FORWARD_CLUSTER_HEADER, Some(&forwarding.cluster))?;
        refresh_route();
        self.forwarded = true;
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn record(&mut self, event: Event) {
        self.shared.metrics.record(&self.shared.engine, event);
    }
}
