//! Turning a built request message into an HTTP callout, and an upstream's answer into a
//! typed response.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use semaphore_plan::{Call, Codec, Kind, Plan, Segment, Transport};
use serde_json::{Map, Value};

use super::codec;
use super::{Callout, Failure, UpstreamResponse};

/// Everything but RFC 3986 unreserved characters is escaped, so a value can never add a path
/// segment, a query or a fragment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn has_body(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")
}

pub(super) fn build_callout(
    plan: &Plan,
    call: &Call,
    request: &Map<String, Value>,
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Callout, Failure> {
    let Some(service) = plan.services.get(call.service as usize) else {
        return Err(Failure::new(500, "the plan names a service it does not define"));
    };
    if service.transport == Transport::Grpc as i32 {
        return Err(Failure::new(501, format!("gRPC upstream `{}` is not supported yet", service.name)));
    }
    let params: Vec<(&str, String)> = call
        .params
        .iter()
        .filter_map(|p| Some((p.name.as_str(), codec::to_text(&evaluate(p.value.as_ref()?)?))))
        .collect();

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
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
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
    let codec = Codec::try_from(service.request_codec).unwrap_or(Codec::Json);
    let mut headers: Vec<(String, String)> = Vec::new();
    let method = call.http_method.to_ascii_uppercase();
    let body = if has_body(&method) {
        match codec {
            Codec::Json => {
                headers.push(("content-type".into(), "application/json".into()));
                Some(codec::encode_json(plan, layout, &remaining).to_string().into_bytes())
            }
            Codec::FormUrlencoded => {
                headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
                Some(form_encode(plan, layout, &remaining).into_bytes())
            }
            Codec::Proto => return Err(Failure::new(501, "the proto request codec is not supported yet")),
        }
    } else {
        let query = form_encode(plan, layout, &remaining);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        None
    };

    let mut all = vec![
        (":method".to_string(), method),
        (":path".to_string(), path),
        (":authority".to_string(), service.authority.clone()),
        ("accept".to_string(), accept(service.response_codec).to_string()),
    ];
    all.append(&mut headers);
    for header in &call.headers {
        let value = header.value.as_ref().and_then(&evaluate).map(|v| codec::to_text(&v)).unwrap_or_default();
        check_header_value(&header.name, &value)?;
        all.push((header.name.clone(), value));
    }
    Ok(Callout {
        cluster: service.cluster.clone(),
        headers: all,
        body,
        timeout: Duration::from_millis(u64::from(call.timeout_ms)),
    })
}

fn accept(codec: i32) -> &'static str {
    match Codec::try_from(codec) {
        Ok(Codec::Proto) => "application/protobuf",
        Ok(Codec::FormUrlencoded) => "application/x-www-form-urlencoded",
        _ => "application/json",
    }
}

/// Header values built from templates must not smuggle a second header or request.
pub(super) fn check_header_value(name: &str, value: &str) -> Result<(), Failure> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Failure::new(400, format!("the value for header `{name}` contains a line break")));
    }
    Ok(())
}

/// Scalars and repeated scalars as `key=value` pairs; nested messages with dotted keys.
fn form_encode(plan: &Plan, layout: u32, message: &Map<String, Value>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    append_pairs(plan, layout, message, "", &mut serializer, 0);
    serializer.finish()
}

fn append_pairs(
    plan: &Plan,
    layout: u32,
    message: &Map<String, Value>,
    prefix: &str,
    out: &mut form_urlencoded::Serializer<String>,
    depth: usize,
) {
    let Some(layout) = codec::message(plan, layout) else { return };
    if depth > codec::MAX_DEPTH {
        return;
    }
    for field in &layout.fields {
        let Some(value) = message.get(&field.name) else { continue };
        let key = format!("{prefix}{}", field.name);
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match (Kind::try_from(field.kind), item) {
                (Ok(Kind::Message), Value::Object(nested)) => {
                    append_pairs(plan, field.message, nested, &format!("{key}."), out, depth + 1)
                }
                (_, item) => {
                    out.append_pair(&key, &codec::to_text(item));
                }
            }
        }
    }
}

pub(super) fn read_response(
    plan: &Plan,
    call: &Call,
    response: UpstreamResponse,
) -> Result<(Value, Vec<(String, String)>), Failure> {
    let Some(status) = response.status else {
        return Err(Failure::new(502, "the upstream could not be reached"));
    };
    if !(200..300).contains(&status) {
        let detail = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
        let message = match detail {
            Some(detail) => format!("upstream answered {status}: {detail}"),
            None => format!("upstream answered {status}"),
        };
        return Err(Failure::new(status, message));
    }
    let service_codec = plan
        .services
        .get(call.service as usize)
        .and_then(|s| Codec::try_from(s.response_codec).ok())
        .unwrap_or(Codec::Json);
    let value = match service_codec {
        Codec::Json => codec::decode_json(plan, call.response_message, &response.body)
            .map_err(|e| Failure::new(502, format!("invalid upstream response: {e}")))?,
        _ => return Err(Failure::new(501, "this upstream response codec is not supported yet")),
    };
    Ok((Value::Object(value), response.headers))
}
