//! The bootstrap `semaphore envoy` writes, and the pieces of a bootstrap that every one written
//! here is made of.

use std::collections::BTreeMap;
use std::path::PathBuf;

use semaphore_plan::{FORWARD_CLUSTER_HEADER, GRAPHQL_LISTENER_HEADER};
use serde_json::{json, Value};

use super::clusters::{clusters, socket_address};
use super::filter::{discovered_filter, local_code, wasm_filter};
use super::grpc_hop::{self, serves_grpc};
use super::{cors, ROUTER_FILTER};
use crate::listener::Tls;
use crate::Compiled;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
pub const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
/// The listener of `grpc { address }`.
pub const GRPC_LISTENER: &str = "grpc";
/// The listener of `graphql { address }`.
pub const GRAPHQL_LISTENER: &str = "graphql";

#[derive(Default)]
pub struct EnvoyOptions {
    /// Absolute path of `semaphore_filter.wasm`.
    pub wasm: PathBuf,
    /// Listener address; `None` takes the configuration's `http.address`, else 127.0.0.1:8080.
    /// Port 0 lets Envoy pick a free port.
    pub listen: Option<String>,
    /// The `grpc` listener's address; `None` takes the configuration's `grpc.address`. Without
    /// either there is no such listener: gRPC is served on the first.
    pub grpc_listen: Option<String>,
    /// The `graphql` listener's address, for a configuration with `graphql { address }`; `None`
    /// takes that address. Without it there is no such listener: the schema is served at its
    /// path on the first.
    pub graphql_listen: Option<String>,
    /// Admin address, 127.0.0.1:9901 by default.
    pub admin: String,
    /// Service FQN (e.g. `proto.Users`) -> `host:port` that its cluster should reach instead of
    /// the host the schema names.
    pub upstream_overrides: BTreeMap<String, String>,
    /// Deliver the filter's configuration over ECDS from this file, watched for updates (see
    /// [`super::filter_config_resource`]), instead of inline: a new plan moved into place is
    /// swapped in without restarting Envoy.
    pub filter_config_file: Option<PathBuf>,
}

pub fn bootstrap(compiled: &Compiled, options: &EnvoyOptions) -> String {
    let listen = options
        .listen
        .clone()
        .or_else(|| compiled.listener.address.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let manager = semaphore_connection_manager(compiled, semaphore_filter(options, compiled));
    let mut filter_chain = json!({ "filters": [manager] });
    if let Some(tls) = &compiled.listener.tls {
        filter_chain["transport_socket"] = downstream_tls(tls);
    }
    let mut clusters = clusters(compiled, &options.upstream_overrides);
    if cors::enabled(compiled) {
        clusters.push(cors::endpoints_cluster());
    }
    let grpc_listen = options.grpc_listen.clone().or_else(|| compiled.listener.grpc_address.clone());
    // The GraphQL listener marks its requests: on the others, a client's mark is removed.
    let graphql_listen = options
        .graphql_listen
        .clone()
        .or_else(|| compiled.listener.graphql_address.clone())
        .filter(|_| compiled.plan.graphql.as_ref().is_some_and(|g| g.own_listener));
    let graphql_chain = graphql_listen.as_ref().map(|_| {
        let chain = filter_chain.clone();
        filter_chain =
            with_early_mutation(filter_chain.clone(), json!({ "remove": GRAPHQL_LISTENER_HEADER }));
        with_early_mutation(
            chain,
            json!({
                "append": {
                    "header": { "key": GRAPHQL_LISTENER_HEADER, "value": "true" },
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
            }),
        )
    });
    let mut bootstrap =
        document(&options.admin, listener("semaphore", &listen, filter_chain.clone()), clusters);
    if let (Some(address), Some(listeners)) =
        (grpc_listen, bootstrap["static_resources"]["listeners"].as_array_mut())
    {
        // Semaphore's daemon served gRPC on an address of its own: the same connection manager
        // there, which serves every endpoint, gRPC's among them.
        listeners.push(listener(GRPC_LISTENER, &address, filter_chain.clone()));
    }
    if let (Some(address), Some(chain), Some(listeners)) =
        (graphql_listen, graphql_chain, bootstrap["static_resources"]["listeners"].as_array_mut())
    {
        listeners.push(listener(GRAPHQL_LISTENER, &address, chain));
    }
    if serves_grpc(&compiled.plan) {
        bootstrap["bootstrap_extensions"] = json!([grpc_hop::internal_listener_extension()]);
        if let Some(listeners) = bootstrap["static_resources"]["listeners"].as_array_mut() {
            listeners.push(grpc_hop::listener(semaphore_filter(options, compiled)));
        }
        if let Some(clusters) = bootstrap["static_resources"]["clusters"].as_array_mut() {
            clusters.push(grpc_hop::cluster());
        }
    }
    // File-based discovery wants the node to have a name.
    bootstrap["node"] = json!({ "id": "semaphore", "cluster": "semaphore" });
    format!("# Envoy bootstrap generated by `semaphore envoy`.\n{}", to_yaml(&bootstrap))
}

/// A filter chain whose connection manager changes the request headers with `mutation`
/// before any filter sees them. The GraphQL listener marks its requests so, and the schema
/// answers on any path there, as on Semaphore's GraphQL listener; the other listeners remove
/// the mark.
fn with_early_mutation(mut filter_chain: Value, mutation: Value) -> Value {
    let extension = json!([{
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": [mutation],
        },
    }]);
    if let Some(manager) = filter_chain["filters"].get_mut(0) {
        manager["typed_config"]["early_header_mutation_extensions"] = extension;
    }
    filter_chain
}

/// The filter with the plan inline, or with its configuration over ECDS from
/// `filter_config_file`.
fn semaphore_filter(options: &EnvoyOptions, compiled: &Compiled) -> Value {
    match &options.filter_config_file {
        None => {
            let wasm = std::path::absolute(&options.wasm).unwrap_or_else(|_| options.wasm.clone());
            wasm_filter(compiled, local_code(&wasm))
        }
        Some(file) => discovered_filter(file),
    }
}

/// The HTTP connection manager running `filter` then the router (CORS first when origins are
/// allowed), with the listener's timeouts.
fn semaphore_connection_manager(compiled: &Compiled, filter: Value) -> Value {
    let listener = &compiled.listener;
    let mut virtual_host = json!({ "name": "default", "domains": ["*"], "routes": forward_routes(compiled) });
    let mut http_filters = vec![filter];
    if cors::enabled(compiled) {
        http_filters.insert(0, cors::filter());
        cors::add_to_virtual_host(&mut virtual_host, compiled);
    }
    http_filters.push(router_filter());
    let route_config = json!({
        "name": "semaphore",
        // Requests no flow endpoint matches go to Envoy's router; add routes here to serve them.
        "virtual_hosts": [virtual_host],
    });
    let mut manager = http_connection_manager("semaphore", route_config, http_filters);
    let config = &mut manager["typed_config"];
    if let Some(ms) = listener.read_timeout_ms {
        config["request_timeout"] = json!(duration(ms));
    }
    if let Some(ms) = listener.write_timeout_ms {
        config["common_http_protocol_options"] = json!({ "max_stream_duration": duration(ms) });
    }
    manager
}

/// A proxy's request goes on, once its resources settled, to the cluster the filter names in
/// `FORWARD_CLUSTER_HEADER`, and a gRPC endpoint's to its hop (`grpc_hop::route`, first). The
/// routes match only requests carrying that header, which the filter removes from whatever a
/// client sends, and is not sent upstream. Without proxies or gRPC endpoints there is nothing
/// to route.
fn forward_routes(compiled: &Compiled) -> Vec<Value> {
    let mut routes = Vec::new();
    if serves_grpc(&compiled.plan) {
        routes.push(grpc_hop::route());
    }
    if !compiled.plan.flows.iter().any(|flow| flow.forward.is_some()) {
        return routes;
    }
    routes.push(json!({
        "name": "semaphore_forward",
        "match": {
            "prefix": "/",
            "headers": [{ "name": FORWARD_CLUSTER_HEADER, "present_match": true }],
        },
        "route": { "cluster_header": FORWARD_CLUSTER_HEADER },
        "request_headers_to_remove": [FORWARD_CLUSTER_HEADER],
    }));
    routes
}

/// The listener's TLS, from the `http` block's `cert_file` and `key_file`.
fn downstream_tls(tls: &Tls) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": { "filename": tls.cert_file.to_string_lossy() },
                    "private_key": { "filename": tls.key_file.to_string_lossy() },
                }],
            },
        },
    })
}

fn duration(ms: u32) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Free memory Envoy's allocator gives back to the system each second (see [`document`]).
const RELEASED_PER_SECOND: u64 = 8 << 20;

/// A bootstrap of one listener and these clusters, its admin at `admin`.
///
/// Envoy's allocator keeps what is freed, for later. Loading a Wasm module, V8 compiles every
/// function at once, several at a time, and frees that working memory after: given back a few
/// MiB a second, it stops weighing on the proxy's RSS (3 MiB of an idle Envoy's with the
/// benchmark's checkout flow, `cargo xtask bench`), at the cost of a timer.
pub(super) fn document(admin: &str, listener: Value, clusters: Vec<Value>) -> Value {
    json!({
        "admin": { "address": socket_address(admin) },
        "static_resources": { "listeners": [listener], "clusters": clusters },
        "memory_allocator_manager": {
            "bytes_to_release": RELEASED_PER_SECOND,
            "memory_release_interval": "1s",
        },
    })
}

pub(super) fn listener(name: &str, address: &str, filter_chain: Value) -> Value {
    json!({ "name": name, "address": socket_address(address), "filter_chains": [filter_chain] })
}

/// Envoy's HTTP connection manager as a network filter.
pub(super) fn http_connection_manager(
    stat_prefix: &str,
    route_config: Value,
    http_filters: Vec<Value>,
) -> Value {
    json!({
        "name": HTTP_CONNECTION_MANAGER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": route_config,
            "http_filters": http_filters,
        },
    })
}

pub(super) fn router_filter() -> Value {
    json!({
        "name": ROUTER_FILTER,
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    })
}

pub(super) fn to_yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_else(|_| value.to_string())
}
