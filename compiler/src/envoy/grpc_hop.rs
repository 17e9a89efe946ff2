//! The Envoy side of gRPC endpoints' hop (see `GRPC_HOP_CLUSTER`): an internal listener
//! running the filter, the cluster that reaches it, and the route the first filter's requests
//! take to it. `semaphore envoy`'s bootstrap and `semaphore istio`'s EnvoyFilter carry the
//! same pieces.

use semaphore_plan::{EndpointKind, Plan, FORWARD_CLUSTER_HEADER, GRPC_HOP_CLUSTER};
use serde_json::{json, Value};

use super::bootstrap::{http_connection_manager, router_filter};

/// Whether the plan serves a gRPC method, and so needs the hop.
pub fn serves_grpc(plan: &Plan) -> bool {
    plan.endpoints.iter().any(|endpoint| endpoint.kind() == EndpointKind::Grpc)
}

/// The bootstrap extension that lets Envoy run internal listeners (Istio's bootstrap has it).
pub fn internal_listener_extension() -> Value {
    json!({
        "name": "envoy.bootstrap.internal_listener",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener",
        },
    })
}

/// The route, first in the virtual host, that the first filter's gRPC requests take. The
/// flow's deadline and the client's `grpc-timeout` bound it, not a route timeout.
pub fn route() -> Value {
    json!({
        "name": GRPC_HOP_CLUSTER,
        "match": {
            "prefix": "/",
            "headers": [{ "name": FORWARD_CLUSTER_HEADER, "string_match": { "exact": GRPC_HOP_CLUSTER } }],
        },
        "route": { "cluster": GRPC_HOP_CLUSTER, "timeout": "0s" },
        "request_headers_to_remove": [FORWARD_CLUSTER_HEADER],
    })
}

/// The internal listener, running `filter` (the same filter, with the same plan, as the first
/// listener). Nothing but the filter answers there: its routes are empty.
pub fn listener(filter: Value) -> Value {
    let route_config = json!({
        "name": GRPC_HOP_CLUSTER,
        "virtual_hosts": [{ "name": "default", "domains": ["*"], "routes": [] }],
    });
    let manager = http_connection_manager(GRPC_HOP_CLUSTER, route_config, vec![filter, router_filter()]);
    json!({ "name": GRPC_HOP_CLUSTER, "internal_listener": {}, "filter_chains": [{ "filters": [manager] }] })
}

/// The cluster whose one endpoint is the internal listener. HTTP/2: measured against HTTP/1.1
/// with `cargo xtask bench --endpoints`, it gives gRPC calls about a quarter more throughput.
pub fn cluster() -> Value {
    json!({
        "name": GRPC_HOP_CLUSTER,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
        "load_assignment": {
            "cluster_name": GRPC_HOP_CLUSTER,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "envoy_internal_address": { "server_listener_name": GRPC_HOP_CLUSTER },
            } } }] }],
        },
    })
}
