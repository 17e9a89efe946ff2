//! Turning a built request message into an HTTP callout, and an upstream's answer into a
//! typed response.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use semaphore_plan::{Call, Codec, Plan, Segment, Transport};
use serde_json::{Map, Value};

use super::codec;
use super::{Callout, Failure, GrpcMethod, UpstreamResponse};

/// Everything but RFC 3986 unreserved characters is escaped, so a value can never add a path
/// segment, a query or a fragment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn has_body(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")
}

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
    pub params: Map<String, Value>,
}

pub(super) fn build_callout(
    plan: &Plan,
    call: &Call,
    request: &Map<String, Value>,
    incoming: &[(String, String)],
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Built, Failure> {
    let Some(service) = plan.services.get(call.service as usize) else {
        return Err(Failure::new(500, "the plan names a service it does not define"));
    };
    let params: Map<String, Value> = call
        .params
        .iter()
        .filter_map(|p| Some((p.name.clone(), Value::String(codec::to_text(&evaluate(p.value.as_ref()?)?)))))
        .collect();

    let mut headers: Vec<(String, String)> = Vec::new();
    for header in &call.headers {
        // A header whose value is absent is left out, not sent empty.
        let Some(value) = header.value.as_ref().and_then(&evaluate).map(|v| codec::to_text(&v)) else {
            continue;
        };
        check_header_value(&header.name, &value)?;
        headers.push((header.name.clone(), value));
    }
    for (name, value) in incoming {
        if TRACE_HEADERS.contains(&name.as_str()) && !headers.iter().any(|(n, _)| n == name) {
            headers.push((name.clone(), value.clone()));
        }
    }
    let timeout = Duration::from_millis(u64::from(call.timeout_ms));

    if service.transport == Transport::Grpc as i32 {
        let body = codec::proto::encode(plan, call.request_message, request);
        let callout = Callout {
            cluster: service.cluster.clone(),
            authority: service.authority.clone(),
            headers,
            body: Some(body),
            timeout,
            grpc: Some(GrpcMethod { service: service.name.clone(), method: call.method.clone() }),
        };
        return Ok(Built { callout, params });
    }

    let mut path = service.base_path.clone();
    let mut bound: Vec<&str> = Vec::new();
    for segment in &call.path {
        let Some(segment) = &segment.segment else { continue };
        let (name, wildcard) = match segment {
            Segment::Literal(literal) => {
                path.push('/');
                path.push_str(literal);
                continue;
            }
            Segment::Param(name) => (name.as_str(), false),
            Segment::Wildcard(name) => (name.as_str(), true),
        };
        let value = params
            .get(name)
            .map(codec::to_text)
            .or_else(|| request.get(name).map(codec::to_text))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Failure::new(400, format!("no value for the path parameter `:{name}` of {}", call.method))
            })?;
        bound.push(name);
        path.push('/');
        if wildcard {
            let parts: Vec<String> =
                value.split('/').map(|p| utf8_percent_encode(p, SEGMENT).to_string()).collect();
            path.push_str(&parts.join("/"));
        } else {
            path.push_str(&utf8_percent_encode(&value, SEGMENT).to_string());
        }
    }
    if path.is_empty() {
        path.push('/');
    }

    let layout = call.request_message;
    let remaining: Map<String, Value> = request
        .iter()
        .filter(|(k, _)| !bound.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let method = call.http_method.to_ascii_uppercase();
    let mut pseudo = vec![
        (":method".to_string(), method.clone()),
        (":path".to_string(), String::new()),
        (":authority".to_string(), service.authority.clone()),
        ("accept".to_string(), codec_of(service.response_codec).content_type().to_string()),
    ];
    let body = if has_body(&method) {
        let (content_type, body) = codec::encode_body(
            plan,
            layout,
            codec_of(service.request_codec),
            codec::Int64Json::strings_if(service.int64_as_string),
            &remaining,
        );
        pseudo.push(("content-type".into(), content_type.into()));
        Some(body)
    } else {
        let query = codec::encode_form(plan, layout, &remaining);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        None
    };
    if let Some((_, value)) = pseudo.get_mut(1) {
        *value = path;
    }
    pseudo.append(&mut headers);
    let callout = Callout {
        cluster: service.cluster.clone(),
        authority: service.authority.clone(),
        headers: pseudo,
        body,
        timeout,
        grpc: None,
    };
    Ok(Built { callout, params })
}

fn codec_of(codec: i32) -> Codec {
    Codec::try_from(codec).unwrap_or(Codec::Json)
}

/// The HTTP status a gRPC status code stands for.
pub fn http_status_of_grpc(code: u32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// Header values built from templates must not smuggle a second header or request.
pub(super) fn check_header_value(name: &str, value: &str) -> Result<(), Failure> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Failure::new(400, format!("the value for header `{name}` contains a line break")));
    }
    Ok(())
}

pub(super) fn read_response(
    plan: &Plan,
    call: &Call,
    expect_status: &[u32],
    response: UpstreamResponse,
) -> Result<(Value, Vec<(String, String)>), Failure> {
    let Some(status) = response.status else {
        return Err(Failure::new(502, "the upstream could not be reached"));
    };
    let header = |name: &str| response.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let expected = if expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect_status.contains(&u32::from(status))
    };
    if !expected {
        let detail = header("grpc-message").filter(|m| !m.is_empty()).or_else(|| {
            serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        });
        let message = match detail {
            Some(detail) => format!("upstream answered {status}: {detail}"),
            None => format!("upstream answered {status}"),
        };
        return Err(Failure::new(status, message));
    }
    let service = plan.services.get(call.service as usize);
    let codec = match service {
        Some(s) if s.transport == Transport::Grpc as i32 => Codec::Proto,
        Some(s) => codec_of(s.response_codec),
        None => Codec::Json,
    };
    let value = codec::decode_body(plan, call.response_message, codec, &response.body)
        .map_err(|e| Failure::new(502, format!("invalid upstream response: {e}")))?;
    Ok((Value::Object(value), response.headers))
}
