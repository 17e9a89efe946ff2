//! Matching a request to an endpoint, and building the flow's input from its path and query.

use percent_encoding::percent_decode_str;
use semaphore_plan::{Endpoint, Plan, Segment};
use serde_json::{Map, Value};

use super::codec::{self, CodecError};

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

/// Splits `:path` into path and query, and finds the endpoint serving it.
pub fn find(plan: &Plan, method: &str, full_path: &str) -> Route {
    let (path, query) = match full_path.split_once('?') {
        Some((path, query)) => (path, query),
        None => (full_path, ""),
    };
    let path = path.split('#').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut allowed: Vec<String> = Vec::new();
    for (index, endpoint) in plan.endpoints.iter().enumerate() {
        let Some(params) = bind(endpoint, &segments) else { continue };
        if endpoint.method.eq_ignore_ascii_case(method) {
            return Route::Endpoint(Match { endpoint: index, params, query: query.to_string() });
        }
        if !allowed.contains(&endpoint.method) {
            allowed.push(endpoint.method.clone());
        }
    }
    if allowed.is_empty() {
        Route::NoEndpoint
    } else {
        Route::MethodNotAllowed(allowed)
    }
}

fn bind(endpoint: &Endpoint, segments: &[&str]) -> Option<Vec<(String, String)>> {
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

/// Adds path and query parameters to the input message, typed by its fields. Path parameters
/// win over query and body values of the same name.
pub fn bind_input(
    plan: &Plan,
    layout: u32,
    matched: &Match,
    input: &mut Map<String, Value>,
) -> Result<(), CodecError> {
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
