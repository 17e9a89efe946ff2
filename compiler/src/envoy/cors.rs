//! CORS, when the `http` block allows origins: Envoy's CORS filter before ours, so that Envoy
//! answers preflights itself and adds the CORS headers to every answer, the filter's own
//! included; its policy on the virtual host; and the routes that make the policy apply.

use semaphore_plan::Segment;
use serde_json::{json, Value};

use crate::Compiled;

/// The cluster endpoint routes name: it has no hosts, as the filter answers every request it
/// serves before the router would send it anywhere.
const ENDPOINTS_CLUSTER: &str = "semaphore_endpoints";
const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Whether the configuration allows any origin, and so needs the rest of this module.
pub(super) fn enabled(compiled: &Compiled) -> bool {
    !compiled.listener.cors_origins.is_empty()
}

/// Envoy's CORS HTTP filter.
pub(super) fn filter() -> Value {
    json!({
        "name": CORS_FILTER,
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" },
    })
}

/// Adds the policy, and a route for each endpoint that carries it, to `virtual_host`.
pub(super) fn add_to_virtual_host(virtual_host: &mut Value, compiled: &Compiled) {
    virtual_host["typed_per_filter_config"] = json!({ CORS_FILTER: policy(compiled) });
    if let Some(routes) = virtual_host["routes"].as_array_mut() {
        routes.extend(endpoint_routes(compiled));
    }
}

/// The cluster the endpoint routes name.
pub(super) fn endpoints_cluster() -> Value {
    json!({ "name": ENDPOINTS_CLUSTER, "type": "STATIC", "connect_timeout": "1s" })
}

/// Envoy's CORS policy for the `origin` list: the endpoints' methods, the headers flows read
/// and the headers they answer with.
fn policy(compiled: &Compiled) -> Value {
    let plan = &compiled.plan;
    let origins: Vec<Value> = compiled
        .listener
        .cors_origins
        .iter()
        .map(|origin| match origin.as_str() {
            "*" => json!({ "safe_regex": { "regex": ".*" } }),
            exact => json!({ "exact": exact }),
        })
        .collect();
    let mut methods: Vec<&str> = plan.endpoints.iter().map(|e| e.method.as_str()).collect();
    methods.push("OPTIONS");
    methods.sort_unstable();
    methods.dedup();
    let mut headers: Vec<&str> =
        plan.flows.iter().flat_map(|f| f.input_headers.iter().map(String::as_str)).collect();
    headers.push("content-type");
    let grpc = plan.endpoints.iter().any(|e| e.kind() == semaphore_plan::EndpointKind::Grpc);
    if grpc {
        // What gRPC-Web and Connect clients in browsers send.
        headers.extend([
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "connect-protocol-version",
            "connect-timeout-ms",
        ]);
    }
    headers.sort_unstable();
    headers.dedup();
    let mut exposed: Vec<String> = plan
        .flows
        .iter()
        .filter_map(|f| f.output.as_ref())
        .flat_map(|output| output.headers.iter().map(|h| h.name.to_ascii_lowercase()))
        .collect();
    if grpc {
        // gRPC-Web's failures carry their status in headers; Connect's answers carry the
        // output's headers as `trailer-` ones.
        let trailers: Vec<String> = exposed.iter().map(|name| format!("trailer-{name}")).collect();
        exposed.extend(trailers);
        exposed.extend(["grpc-status".to_string(), "grpc-message".to_string()]);
    }
    exposed.sort_unstable();
    exposed.dedup();
    let mut policy = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": origins,
        "allow_methods": methods.join(", "),
        "allow_headers": headers.join(", "),
        "max_age": "600",
    });
    if !exposed.is_empty() {
        policy["expose_headers"] = json!(exposed.join(", "));
    }
    policy
}

/// Envoy's CORS filter applies the policy of the route a request matched, and only of a route
/// that forwards: each endpoint's path gets one, so that its requests carry the policy. The
/// filter answers them before the router; only with a refused plan would the router see one,
/// and answer 503.
fn endpoint_routes(compiled: &Compiled) -> Vec<Value> {
    let mut templates: Vec<String> = compiled
        .plan
        .endpoints
        .iter()
        .map(|endpoint| {
            let segments: Vec<String> = endpoint
                .path
                .iter()
                .filter_map(|segment| match segment.segment.as_ref()? {
                    Segment::Literal(text) => Some(text.clone()),
                    Segment::Param(name) => Some(format!("{{{name}}}")),
                    Segment::Wildcard(name) => Some(format!("{{{name}=**}}")),
                })
                .collect();
            format!("/{}", segments.join("/"))
        })
        .collect();
    templates.sort();
    templates.dedup();
    templates
        .into_iter()
        .map(|template| {
            json!({
                "match": { "path_match_policy": {
                    "name": "envoy.path.match.uri_template.uri_template_matcher",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                        "path_template": template,
                    },
                } },
                "route": { "cluster": ENDPOINTS_CLUSTER },
            })
        })
        .collect()
}
