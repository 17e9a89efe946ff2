//! Upstream calls: a built request message into a callout, and an upstream's answer into a
//! typed response. What every transport shares is here; one file per transport says how it
//! travels.

mod grpc;
mod http;

use std::time::Duration;

use crate::engine::value::{Map, Value};
use semaphore_plan::{Call, Codec, Plan, Transport};

use super::host::{Callout, HeaderText, UpstreamResponse};
use super::Failure;
use super::{codec, headers};

pub use grpc::http_status_of_grpc;

/// Headers of the incoming request that every callout carries on, so a distributed trace
/// stays whole.
const TRACE_HEADERS: &[&str] = &[
    "traceparent",
    "tracestate",
    "x-request-id",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// A call ready to dispatch, with the params it was built with (`{{ node.params:name }}`).
pub(super) struct Built {
    pub callout: Callout,
    pub params: Map,
}

pub(super) fn build_callout(
    plan: &Plan,
    call: &Call,
    request: &codec::Outgoing,
    incoming: &[(String, String)],
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Built, Failure> {
    let Some(service) = plan.services.get(call.service as usize) else {
        return Err(Failure::new(500, "the plan names a service it does not define"));
    };
    let params: Map = call
        .params
        .iter()
        .filter_map(|p| Some((p.name.clone(), Value::String(codec::to_text(&evaluate(p.value.as_ref()?)?)))))
        .collect();
    let headers = headers(call, incoming, &evaluate)?;
    let mut callout = match service.transport() {
        Transport::Http => http::callout(plan, service, call, request, &params, headers)?,
        Transport::Grpc => grpc::callout(plan, service, call, request, headers),
    };
    callout.timeout = Duration::from_millis(u64::from(call.timeout_ms));
    Ok(Built { callout, params })
}

/// The call's templated headers, then the incoming request's trace headers it does not set.
fn headers(
    call: &Call,
    incoming: &[(String, String)],
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Vec<(HeaderText, HeaderText)>, Failure> {
    let mut headers: Vec<(HeaderText, HeaderText)> = headers::present(&call.headers, evaluate)?
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect();
    for (name, value) in incoming {
        let Some(trace) = TRACE_HEADERS.iter().find(|trace| **trace == name) else { continue };
        if !headers.iter().any(|(n, _)| n == name) {
            headers.push(((*trace).into(), value.clone().into()));
        }
    }
    Ok(headers)
}

/// A call's decoded response, and the headers it came with.
pub(super) type Answer = (Value, Vec<(String, String)>);

/// A call's answer when its status is one the node expects (any 2xx unless it lists its own),
/// else why not, with the body the upstream sent.
pub(super) fn read_response(
    plan: &Plan,
    call: &Call,
    expect_status: &[u32],
    response: UpstreamResponse,
) -> Result<Answer, (Failure, Vec<u8>)> {
    let Some(status) = response.status else {
        return Err((Failure::new(502, "the upstream could not be reached"), response.body));
    };
    let expected = if expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect_status.contains(&u32::from(status))
    };
    if !expected {
        return Err((Failure::new(status, unexpected_status(status, &response)), response.body));
    }
    // Only the fields the flow's templates read: the compiler listed them.
    let fields = call.response_fields.as_ref().map(|set| set.fields.as_slice());
    let codec = response_codec(plan, call);
    match codec::decode_body_fields(plan, call.response_message, codec, &response.body, fields) {
        Ok(value) => Ok((Value::Object(value), response.headers)),
        Err(e) => Err((Failure::new(502, format!("invalid upstream response: {e}")), response.body)),
    }
}

/// `upstream answered <status>`, with the upstream's own words when it gave any: a gRPC
/// message (percent-encoded, as gRPC sends it, whether from a gRPC call or a transcoded one), or
/// a JSON body's `message`.
fn unexpected_status(status: u16, response: &UpstreamResponse) -> String {
    let grpc_message = response
        .headers
        .iter()
        .find(|(n, _)| n == "grpc-message")
        .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
        .filter(|m| !m.is_empty());
    let detail = grpc_message.or_else(|| {
        serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
    });
    match detail {
        Some(detail) => format!("upstream answered {status}: {detail}"),
        None => format!("upstream answered {status}"),
    }
}

/// A failed call's body, for `{{ node.error:path }}`: decoded with `schema` (the `on_error`
/// schema) in the service's response codec, else read as JSON; null when it does not decode.
pub(super) fn decode_error(plan: &Plan, call: &Call, schema: Option<u32>, body: &[u8]) -> Value {
    let Some(schema) = schema else { return serde_json::from_slice(body).unwrap_or(Value::Null) };
    let codec = plan.services.get(call.service as usize).map(|s| s.response_codec()).unwrap_or_default();
    codec::decode_body(plan, schema, codec, body).map(Value::Object).unwrap_or(Value::Null)
}

/// The codec of the call's answers: protobuf for gRPC, else the service's.
fn response_codec(plan: &Plan, call: &Call) -> Codec {
    match plan.services.get(call.service as usize) {
        Some(service) if service.transport() == Transport::Grpc => Codec::Proto,
        Some(service) => service.response_codec(),
        None => Codec::Json,
    }
}
