//! HTTP upstreams: the call's path template filled from its params (else the request's
//! fields), the remaining fields as the body in the service's codec, or as the query string of
//! a method without a body.

use std::borrow::Cow;

use crate::engine::value::Map;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use semaphore_plan::{Call, Plan, Segment, Service};

use crate::engine::codec::{self, Int64Json, Outgoing};
use crate::engine::host::{Callout, HeaderText};
use crate::engine::Failure;

/// Everything but RFC 3986 unreserved characters is escaped, so a value can never add a path
/// segment, a query or a fragment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The method in upper case: one of the filter's constants for the usual ones.
fn method(name: &str) -> HeaderText {
    const USUAL: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    match USUAL.iter().find(|usual| usual.eq_ignore_ascii_case(name)) {
        Some(usual) => (*usual).into(),
        None => name.to_ascii_uppercase().into(),
    }
}

fn has_body(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")
}

pub(super) fn callout(
    plan: &Plan,
    service: &Service,
    call: &Call,
    request: &Outgoing,
    params: &Map,
    headers: Vec<(HeaderText, HeaderText)>,
) -> Result<Callout, Failure> {
    let layout = call.request_message;
    let (mut path, bound) = path(plan, service, call, request, params)?;
    // What the path did not take goes in the body or the query; most often that is all of it.
    let remaining: Cow<Outgoing> = if bound.iter().any(|name| request.get(plan, layout, name).is_some()) {
        Cow::Owned(request.without(plan, layout, &bound))
    } else {
        Cow::Borrowed(request)
    };
    let method = method(&call.http_method);
    let (body, content_type) = if has_body(&method) {
        let int64 = Int64Json::strings_if(service.int64_as_string);
        let (content_type, body) =
            codec::encode_outgoing(plan, layout, service.request_codec(), int64, &remaining);
        (Some(body), Some(content_type))
    } else {
        let query = codec::encode_form(plan, layout, &remaining.to_map(plan, layout));
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        (None, None)
    };
    // Room for the pseudo-headers, the content type, the call's own headers and the execution
    // id the execution adds: the vector is allocated once.
    let mut all: Vec<(HeaderText, HeaderText)> = Vec::with_capacity(headers.len() + 6);
    all.extend([
        (":method".into(), method),
        (":path".into(), path.into()),
        (":authority".into(), service.authority.clone().into()),
        ("accept".into(), service.response_codec().content_type().into()),
    ]);
    if let Some(content_type) = content_type {
        all.push(("content-type".into(), content_type.into()));
    }
    all.extend(headers);
    Ok(Callout {
        cluster: service.cluster.clone(),
        authority: service.authority.clone(),
        headers: all,
        body,
        timeout: Default::default(),
        grpc: None,
    })
}

/// The service's base path and the call's path template, each `:name` from the params, else
/// from the request field of that name; with the fields the path used, which the body or query
/// then leaves out.
fn path<'c>(
    plan: &Plan,
    service: &Service,
    call: &'c Call,
    request: &Outgoing,
    params: &Map,
) -> Result<(String, Vec<&'c str>), Failure> {
    let mut path = service.base_path.clone();
    let mut bound: Vec<&str> = Vec::new();
    for segment in call.path.iter().filter_map(|s| s.segment.as_ref()) {
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
            .or_else(|| request.get(plan, call.request_message, name))
            .map(codec::to_text)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Failure::new(400, format!("no value for the path parameter `:{name}` of {}", call.method))
            })?;
        bound.push(name);
        path.push('/');
        // Escaped straight into the path, without formatting machinery.
        if wildcard {
            for (index, part) in value.split('/').enumerate() {
                if index > 0 {
                    path.push('/');
                }
                path.extend(utf8_percent_encode(part, SEGMENT));
            }
        } else {
            path.extend(utf8_percent_encode(&value, SEGMENT));
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok((path, bound))
}
