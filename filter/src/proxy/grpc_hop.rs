//! gRPC endpoints' one hop inside Envoy.
//!
//! Envoy answers every local reply to a gRPC request trailers-only and drops its body, so the
//! filter cannot answer a gRPC call with a message itself. It sends the request on instead,
//! through the route to `GRPC_HOP_CLUSTER`, an internal listener running this same filter,
//! with the content type changed to [`HOP_CONTENT_TYPE`]: Envoy does not take that request for
//! gRPC, so the filter there runs the flow and answers it with a local reply whose body stays.
//! The answer's trailers travel as headers prefixed with [`TRAILER_PREFIX`]. Back through the
//! first filter, as an upstream's answer, they become trailers again (or, for an answer with no
//! message, the headers of a trailers-only answer).

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};

use semaphore_plan::{FORWARD_CLUSTER_HEADER, GRPC_HOP_CLUSTER};

use super::abi;
use super::host::{refresh_route, set_request_header};

/// The content type a gRPC request carries on its hop; the internal listener's filter serves
/// it, from that listener only.
pub(super) const HOP_CONTENT_TYPE: &str = "application/x-semaphore-grpc";
/// An answer's trailers, as headers of the hop's answer.
const TRAILER_PREFIX: &str = "x-semaphore-grpc-trailer-";

/// What the hop's request is, once it has arrived.
pub(super) const CONTENT_TYPE: &str = "application/grpc";

/// Sends a gRPC endpoint's request on to the internal listener. Its body streams after it.
pub(super) fn send_on() -> Result<(), String> {
    set_request_header("content-type", Some(HOP_CONTENT_TYPE))?;
    set_request_header(FORWARD_CLUSTER_HEADER, Some(GRPC_HOP_CLUSTER))?;
    refresh_route();
    Ok(())
}

/// Whether the request came through the internal listener: only the filter's own hop can, so a
/// client cannot pass for it by sending [`HOP_CONTENT_TYPE`]. Envoy gives an internal
/// connection's peer an `envoy://` address.
pub(super) fn from_internal_listener() -> bool {
    match hostcalls::get_property(vec!["source", "address"]) {
        Ok(Some(address)) => address.starts_with(b"envoy://"),
        _ => false,
    }
}

/// A reply's headers as a local reply carries them, trailers included. Without a message the
/// trailers join the headers: a trailers-only answer, which Envoy keeps as it is also on a
/// gRPC request's own stream. With one, it is the hop's answer, which carries them prefixed.
pub(super) fn with_trailers_as_headers<'a>(
    headers: &'a [(String, String)],
    trailers: &'a [(String, String)],
    body: &[u8],
) -> Vec<(String, &'a str)> {
    let prefix = if body.is_empty() { "" } else { TRAILER_PREFIX };
    let headers = headers.iter().map(|(n, v)| (n.clone(), v.as_str()));
    headers.chain(trailers.iter().map(|(n, v)| (format!("{prefix}{n}"), v.as_str()))).collect()
}

/// The hop's answer arrives at the first filter: its trailers are taken out of its headers.
/// `None` for an answer the internal listener's filter did not write (Envoy's own, when the hop
/// failed), which goes on as it is. Without a message to follow (`end_of_stream`), the
/// trailers join the headers: a trailers-only answer.
pub(super) fn answer_headers(end_of_stream: bool) -> Option<Vec<(String, String)>> {
    let headers = abi::header_map(MapType::HttpResponseHeaders);
    let trailers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix(TRAILER_PREFIX)?.to_string(), value.clone())))
        .collect();
    if trailers.is_empty() {
        return None;
    }
    for (name, _) in &trailers {
        let _ =
            hostcalls::set_map_value(MapType::HttpResponseHeaders, &format!("{TRAILER_PREFIX}{name}"), None);
    }
    // The message is framed by gRPC, not by a length.
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
    if end_of_stream {
        for (name, value) in &trailers {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
        }
        return Some(Vec::new());
    }
    Some(trailers)
}

extern "C" {
    // The hostcall itself, not the SDK's wrapper, which traps on a refusal: Envoy refuses
    // trailers when the answer has ended before its last data.
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
}

/// The answer's last data passes: its trailers follow it.
pub(super) fn add_trailers(trailers: &[(String, String)]) {
    for (name, value) in trailers {
        // SAFETY: pointers and lengths of live strings, which Envoy copies before it returns.
        let status = unsafe {
            proxy_add_header_map_value(
                MapType::HttpResponseTrailers,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
        if !matches!(status, Status::Ok) {
            warn!("Envoy refused the gRPC answer's trailer `{name}` ({status:?})");
            return;
        }
    }
}
