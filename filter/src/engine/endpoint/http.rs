//! HTTP endpoints: a method and a path template; the input from the path's params, the query
//! string and the body in the endpoint's request codec; the answer in its response codec.

use crate::engine::value::{json, Map};
use percent_encoding::percent_decode_str;
use semaphore_plan::{Codec, Endpoint, Plan, Segment};

use super::{Binding, Match, Target, Wire};
use crate::engine::codec::{self, CodecError, Int64Json};
use crate::engine::host::Reply;
use crate::engine::Failure;

pub(super) fn bind(index: usize, endpoint: &Endpoint, target: &Target) -> Binding {
    let Some(params) = bind_path(endpoint, &target.segments) else { return Binding::NotThisPath };
    if !endpoint.method.eq_ignore_ascii_case(target.method) {
        return Binding::OtherMethod;
    }
    Binding::Serves(Match { endpoint: index, params, query: target.query.to_string(), wire: Wire::Http })
}

fn bind_path(endpoint: &Endpoint, segments: &[&str]) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut rest = segments.iter();
    for template in &endpoint.path {
        match template.segment.as_ref()? {
            Segment::Literal(literal) => {
                if rest.next()? != literal {
                    return None;
                }
            }
            Segment::Param(name) => params.push((name.clone(), (*rest.next()?).to_string())),
            Segment::Wildcard(name) => {
                let joined: Vec<&str> = rest.by_ref().copied().collect();
                params.push((name.clone(), joined.join("/")));
            }
        }
    }
    rest.next().is_none().then_some(params)
}

/// The flow's input: the body in the endpoint's request codec, then the query string, then the
/// path's params, each winning over the one before for a field of the same name.
pub(super) fn decode_input(
    plan: &Plan,
    endpoint: &Endpoint,
    layout: u32,
    matched: &Match,
    body: &[u8],
) -> Result<Map, Failure> {
    let mut input = codec::decode_body(plan, layout, endpoint.request_codec(), body)
        .map_err(|e| Failure::new(400, format!("invalid request body: {e}")))?;
    bind_input(plan, layout, matched, &mut input)
        .map_err(|e| Failure::new(400, format!("invalid request: {e}")))?;
    Ok(input)
}

/// Adds path and query parameters to the input message, typed by its fields.
fn bind_input(plan: &Plan, layout: u32, matched: &Match, input: &mut Map) -> Result<(), CodecError> {
    let Some(message) = codec::message(plan, layout) else {
        return Ok(());
    };
    codec::decode_form(plan, layout, &matched.query, input)?;
    for (name, raw) in &matched.params {
        let Some(field) = codec::field_by_name(message, name) else { continue };
        let text = percent_decode_str(raw).decode_utf8().map_err(|_| CodecError {
            field: field.name.clone(),
            message: "path parameter is not valid UTF-8".into(),
        })?;
        let value = codec::from_text(plan, field, &text).map_err(|e| within(e, &field.name))?;
        input.insert(field.name.clone(), value);
    }
    Ok(())
}

fn within(mut error: CodecError, field: &str) -> CodecError {
    if error.field.is_empty() {
        error.field = field.to_string();
    }
    error
}

/// A message in the endpoint's response codec.
pub(super) fn reply(
    plan: &Plan,
    endpoint: &Endpoint,
    status: u16,
    layout: u32,
    message: codec::Outgoing,
    headers: Vec<(String, String)>,
) -> Reply {
    let int64 = Int64Json::strings_if(endpoint.int64_as_string);
    let (content_type, body) =
        codec::encode_outgoing(plan, layout, endpoint.response_codec(), int64, &message);
    let mut all = vec![("content-type".to_string(), content_type.to_string())];
    all.extend(headers);
    Reply { status, headers: all, body, trailers: Vec::new() }
}

/// A failure without an error object of its own: `{"message", "status"}` in JSON.
pub(super) fn error_reply(status: u16, message: &str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".to_string(), Codec::Json.content_type().to_string())],
        body: codec::json_text(&json!({ "message": message, "status": status })).into_bytes(),
        trailers: Vec::new(),
    }
}

/// The answer to a method no endpoint of the path serves: 405 with the methods that are.
pub(super) fn method_not_allowed(method: &str, path: &str, allowed: &[String]) -> Reply {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let allow = allowed.join(", ");
    let message = format!("{method} is not allowed on {path}; allowed: {allow}");
    let mut reply = error_reply(405, &message);
    reply.headers.push(("allow".into(), allow));
    reply
}

/// A flow without an output answers an empty JSON object.
pub(super) fn empty_reply(status: u16) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".to_string(), Codec::Json.content_type().to_string())],
        body: b"{}".to_vec(),
        trailers: Vec::new(),
    }
}
