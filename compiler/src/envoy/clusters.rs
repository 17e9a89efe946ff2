//! Clusters and addresses: one cluster per cluster the plan's services name, reaching the
//! service's host or the address it is sent to instead.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Value};

use crate::Compiled;

pub(super) fn clusters(compiled: &Compiled, overrides: &BTreeMap<String, String>) -> Vec<Value> {
    let mut clusters: BTreeMap<String, Value> = BTreeMap::new();
    for service in &compiled.plan.services {
        // The cluster is named as the plan says; it reaches the service's host.
        let default_port = if service.tls { 443 } else { 80 };
        let authority = if service.authority.contains(':') {
            service.authority.clone()
        } else {
            format!("{}:{default_port}", service.authority)
        };
        let address = overrides.get(&service.name).unwrap_or(&authority);
        let mut cluster = upstream_cluster(&service.cluster, address, "5s");
        if service.transport() == semaphore_plan::Transport::Grpc {
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": { "http2_protocol_options": {} },
                },
            });
        }
        if service.tls {
            cluster["transport_socket"] = json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": split_address(&authority).0,
                },
            });
        }
        clusters.entry(service.cluster.clone()).or_insert(cluster);
    }
    clusters.into_values().collect()
}

/// A cluster of one host at `address` (`host:port`): resolved once when it is an IP address,
/// else through DNS.
pub(super) fn upstream_cluster(name: &str, address: &str, connect_timeout: &str) -> Value {
    let (host, port) = split_address(address);
    let resolution = if host.parse::<IpAddr>().is_ok() { "STATIC" } else { "STRICT_DNS" };
    json!({
        "name": name,
        "type": resolution,
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": host, "port_value": port },
            } } }] }],
        },
    })
}

/// `host:port`, `[v6]:port` or `:port` (every address), as Envoy's `socket_address`.
pub(super) fn socket_address(address: &str) -> Value {
    let (host, port) = split_address(address);
    json!({ "socket_address": { "address": host, "port_value": port } })
}

fn split_address(address: &str) -> (String, u16) {
    let address = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
    match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']).to_string(), port.parse().unwrap_or(80)),
        None => (address, 80),
    }
}
