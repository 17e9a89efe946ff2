//! Calls out of the VM: dispatching a callout (as the root context's, whichever context asks),
//! and reading its answer as the engine reads answers.

use std::time::{Duration, UNIX_EPOCH};

use prost::Message;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::{abi, Shared};
use crate::engine::{http_status_of_grpc, Callout, UpstreamResponse};

// The SDK's entry point for a root context's queue. Called from an HTTP context, it makes the
// SDK run the root context, so the calls dispatched there are the root's: their answers reach
// the root context whatever becomes of the stream. Only the queue id below is ever used.
extern "C" {
    fn proxy_on_queue_ready(context_id: u32, queue_id: u32);
}
pub(super) const DISPATCH_AS_ROOT: u32 = u32::MAX;

/// Dispatches a call from an HTTP context as the root context's. The root context reads the
/// callout where it is, not a copy: the outbox points to it only while the SDK runs the root
/// context, inside this function.
pub(super) fn dispatch_as_root(shared: &Shared, callout: &Callout) -> Result<u32, String> {
    shared.outbox.set(callout);
    // SAFETY: the SDK's own exported entry point, called with its root context's id; it borrows
    // only the SDK's root contexts, which no HTTP context callback holds.
    unsafe { proxy_on_queue_ready(shared.root_id, DISPATCH_AS_ROOT) };
    shared.outbox.set(std::ptr::null());
    shared
        .dispatched
        .borrow_mut()
        .take()
        .unwrap_or_else(|| Err("the root context did not dispatch the call".into()))
}

/// The callout `dispatch_as_root` is dispatching, read once.
pub(super) fn take_outbox(shared: &Shared) -> Option<&Callout> {
    let callout = shared.outbox.replace(std::ptr::null());
    // SAFETY: the outbox is not null only inside `dispatch_as_root`, which holds the callout
    // borrowed around the synchronous call that brings the root context here; the reference
    // does not outlive that callback.
    unsafe { callout.as_ref() }
}

pub(super) fn dispatch(callout: &Callout) -> Result<u32, String> {
    let refused = |status| format!("Envoy refused the call to cluster `{}` ({status:?})", callout.cluster);
    if let Some(grpc) = &callout.grpc {
        let metadata: Vec<(&str, &[u8])> =
            callout.headers.iter().map(|(n, v)| (n.as_ref(), v.as_bytes())).collect();
        return hostcalls::dispatch_grpc_call(
            &grpc_service(&callout.cluster, &callout.authority),
            &grpc.service,
            &grpc.method,
            metadata,
            callout.body.as_deref(),
            callout.timeout,
        )
        .map_err(refused);
    }
    let headers: Vec<(&str, &str)> = callout.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref())).collect();
    hostcalls::dispatch_http_call(&callout.cluster, headers, callout.body.as_deref(), vec![], callout.timeout)
        .map_err(refused)
}

/// `envoy.config.core.v3.GrpcService`, as far as a callout needs it: Envoy reads a gRPC
/// callout's target from it, the cluster and the `:authority` to send.
#[derive(Clone, PartialEq, prost::Message)]
struct GrpcService {
    #[prost(message, optional, tag = "1")]
    envoy_grpc: Option<EnvoyGrpc>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EnvoyGrpc {
    #[prost(string, tag = "1")]
    cluster_name: String,
    #[prost(string, tag = "2")]
    authority: String,
}

/// The target of a gRPC callout, as the hostcall takes it. Envoy takes a plain cluster name
/// too, which is the fallback should the message not be text.
fn grpc_service(cluster: &str, authority: &str) -> String {
    let envoy_grpc = EnvoyGrpc { cluster_name: cluster.to_string(), authority: authority.to_string() };
    let encoded = GrpcService { envoy_grpc: Some(envoy_grpc) }.encode_to_vec();
    String::from_utf8(encoded).unwrap_or_else(|_| cluster.to_string())
}

/// An HTTP callout's answer, with its headers when the flow reads them or the answer is no
/// success (an error may explain itself in one, such as a transcoded gRPC upstream's
/// `grpc-message`); else its status alone: one value instead of every header, each copied out
/// of Envoy. A call that failed before its answer was whole (a reset, an answer over Envoy's
/// buffer limit) has no headers (`header_count` 0), and no status.
///
/// Envoy answers for an upstream it could not reach with a 503 of its own; that is no answer
/// from the upstream, which the engine reports as 502. Whether the upstream may have performed
/// a call that got no answer is read from Envoy's words: a timeout or a reset after connecting
/// may have; a connection that never opened has not.
pub(super) fn read_http_response(
    header_count: usize,
    body_size: usize,
    with_headers: bool,
) -> UpstreamResponse {
    let status_of = |value: &str| value.parse::<u16>().ok();
    let status_alone = match header_count {
        0 => None,
        _ if with_headers => None,
        _ => abi::header_value(MapType::HttpCallResponseHeaders, ":status").and_then(|v| status_of(&v)),
    };
    let (status, headers) = match status_alone {
        Some(status) if (200..300).contains(&status) => (Some(status), Vec::new()),
        _ if header_count == 0 => (None, Vec::new()),
        _ => {
            let headers = abi::header_map(MapType::HttpCallResponseHeaders);
            let status = headers.iter().find(|(name, _)| name == ":status").and_then(|(_, v)| status_of(v));
            (status, headers)
        }
    };
    let body = match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
        Ok(body) => body.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let envoys_own = status == Some(503)
        && (body.starts_with(b"upstream connect error") || body.starts_with(b"no healthy upstream"));
    let never_sent =
        envoys_own && (contains(&body, b"connection failure") || body.starts_with(b"no healthy upstream"));
    let timed_out = status == Some(504) && body.starts_with(b"upstream request timeout");
    let outcome_unknown = status.is_none() || timed_out || (envoys_own && !never_sent);
    UpstreamResponse { status: if envoys_own { None } else { status }, headers, body, outcome_unknown }
}

/// A gRPC callout's answer, as the engine reads answers.
pub(super) fn read_grpc_response(status_code: u32, response_size: usize) -> UpstreamResponse {
    let message = abi::grpc_status_message().unwrap_or_default();
    // Envoy appends where the status came from, or gives only that when the upstream said
    // nothing; the client wants the upstream's words.
    let message = match message.strip_suffix("{via_upstream}") {
        Some(words) => words.to_string(),
        None if message == "via_upstream" => String::new(),
        None => message,
    };
    let body = match hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size) {
        Ok(body) => body.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    // DEADLINE_EXCEEDED: the upstream may have done it, and its answer came too late.
    let outcome_unknown = status_code == 4;
    UpstreamResponse {
        status: Some(http_status_of_grpc(status_code)),
        headers: vec![("grpc-status".into(), status_code.to_string()), ("grpc-message".into(), message)],
        body,
        outcome_unknown,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

thread_local! {
    /// The tick period this VM's root context has, as last set.
    static TICK: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
}

/// Sets the root context's tick period, unless it has it already: the timer is set again on
/// every answer otherwise.
pub(super) fn set_tick_period(period: Duration) {
    if TICK.with(|tick| tick.replace(Some(period))) != Some(period) {
        let _ = hostcalls::set_tick_period(period);
    }
}

/// Whether the root context's timer ticks.
pub(super) fn ticking() -> bool {
    TICK.with(|tick| tick.get().is_some_and(|period| !period.is_zero()))
}

pub(super) fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_callout_names_its_cluster_and_authority_as_envoy_reads_them() {
        // GrpcService { envoy_grpc (1): EnvoyGrpc { cluster_name (1), authority (2) } }
        let expected = b"\x0a\x10\x0a\x05users\x12\x07users:9";
        assert_eq!(grpc_service("users", "users:9").as_bytes(), &expected[..]);
    }
}
