//! Envoy 1.40 bootstrap generation: one listener running the filter with the plan, one cluster
//! per upstream host, and the route that proxies' requests go on by.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use base64::Engine as _;
use semaphore_plan::{Segment, FORWARD_CLUSTER_HEADER};
use serde_json::{json, Value};

use crate::Compiled;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

#[derive(Default)]
pub struct EnvoyOptions {
    /// Absolute path of `semaphore_filter.wasm`.
    pub wasm: PathBuf,
    /// Listener address; `None` takes the configuration's `http.address`, else 127.0.0.1:8080.
    /// Port 0 lets Envoy pick a free port.
    pub listen: Option<String>,
    /// Admin address, 127.0.0.1:9901 by default.
    pub admin: String,
    /// Service FQN (e.g. `proto.Users`) -> `host:port` that its cluster should reach instead of
    /// the host the schema names.
    pub upstream_overrides: BTreeMap<String, String>,
    /// Deliver the filter's configuration over ECDS from this file, watched for updates (see
    /// [`filter_config_resource`]), instead of inline: a new plan moved into place is swapped in
    /// without restarting Envoy.
    pub filter_config_file: Option<PathBuf>,
}

/// The plugin configuration the filter reads: the plan, base64 in JSON, as an Istio
/// WasmPlugin's `pluginConfig` would deliver it.
pub fn plugin_configuration(compiled: &Compiled) -> String {
    let plan = base64::engine::general_purpose::STANDARD.encode(compiled.plan.encode_to_bytes());
    json!({ "plan": plan }).to_string()
}

/// The ECDS resource file the filter's configuration comes from with `filter_config_file`. Its
/// plugin configuration asks the filter to refuse a plan it cannot run, so that Envoy keeps the
/// previous one rather than a filter with no plan.
pub fn filter_config_resource(compiled: &Compiled, wasm: &std::path::Path) -> String {
    let mut filter = wasm_filter(compiled, json!({ "local": { "filename": wasm.to_string_lossy() } }));
    let plan = base64::engine::general_purpose::STANDARD.encode(compiled.plan.encode_to_bytes());
    filter["typed_config"]["config"]["configuration"]["value"] =
        json!(json!({ "plan": plan, "reject_invalid": true }).to_string());
    let resource = json!({
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": filter["name"],
        "typed_config": filter["typed_config"],
    });
    let yaml = serde_json::to_string(&json!({ "resources": [resource] })).unwrap_or_default();
    format!("{yaml}\n")
}

/// The filter as an HTTP filter (and an ECDS extension config): the module from `code` (a
/// `local` file or `remote` URL), the plan as its configuration.
pub fn wasm_filter(compiled: &Compiled, code: Value) -> Value {
    json!({
        "name": "semaphore",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "semaphore",
                "root_id": "semaphore",
                // Hold the request headers while the body of a flow's input arrives; without it
                // Envoy would stop delivering the body to the filter too.
                "allow_on_headers_stop_iteration": true,
                "vm_config": {
                    "vm_id": "semaphore",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": code,
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_configuration(compiled),
                },
            },
        },
    })
}

pub fn bootstrap(compiled: &Compiled, options: &EnvoyOptions) -> String {
    let listen = options
        .listen
        .clone()
        .or_else(|| compiled.listener.address.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let wasm = std::path::absolute(&options.wasm).unwrap_or_else(|_| options.wasm.clone());
    let filter = match &options.filter_config_file {
        None => wasm_filter(compiled, json!({ "local": { "filename": wasm.to_string_lossy() } })),
        // Envoy reloads the file when a new one is moved into its folder.
        Some(file) => {
            let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            let folder = file.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            json!({
                "name": "semaphore",
                "config_discovery": {
                    "config_source": {
                        "path_config_source": { "path": file, "watched_directory": { "path": folder } },
                        "resource_api_version": "V3",
                    },
                    "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
                },
            })
        }
    };
    let listener = &compiled.listener;
    let mut virtual_host = json!({ "name": "default", "domains": ["*"], "routes": routes(compiled) });
    let mut http_filters = vec![filter];
    if !listener.cors_origins.is_empty() {
        // Before the filter, so that Envoy answers preflights itself and adds the CORS headers
        // to every answer, the filter's own included.
        http_filters.insert(
            0,
            json!({
                "name": "envoy.filters.http.cors",
                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" },
            }),
        );
        virtual_host["typed_per_filter_config"] = json!({ "envoy.filters.http.cors": cors_policy(compiled) });
        if let Some(routes) = virtual_host["routes"].as_array_mut() {
            routes.extend(endpoint_routes(compiled));
        }
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    }));
    let mut manager_config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "semaphore",
        "route_config": {
            "name": "semaphore",
            // Requests no flow endpoint matches go to Envoy's router; add routes here to
            // serve them.
            "virtual_hosts": [virtual_host],
        },
        "http_filters": http_filters,
    });
    if let Some(ms) = listener.read_timeout_ms {
        manager_config["request_timeout"] = json!(duration(ms));
    }
    if let Some(ms) = listener.write_timeout_ms {
        manager_config["common_http_protocol_options"] = json!({ "max_stream_duration": duration(ms) });
    }
    let manager =
        json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": manager_config });
    let mut filter_chain = json!({ "filters": [manager] });
    if let Some(tls) = &listener.tls {
        filter_chain["transport_socket"] = json!({
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
        });
    }
    let mut clusters = clusters(compiled, &options.upstream_overrides);
    if !listener.cors_origins.is_empty() {
        clusters.push(json!({ "name": ENDPOINTS_CLUSTER, "type": "STATIC", "connect_timeout": "1s" }));
    }
    let bootstrap = json!({
        // File-based discovery wants the node to have a name.
        "node": { "id": "semaphore", "cluster": "semaphore" },
        "admin": { "address": socket_address(&options.admin) },
        "static_resources": {
            "listeners": [{
                "name": "semaphore",
                "address": socket_address(&listen),
                "filter_chains": [filter_chain],
            }],
            "clusters": clusters,
        },
    });
    let yaml = serde_norway::to_string(&bootstrap).unwrap_or_else(|_| bootstrap.to_string());
    format!("# Envoy bootstrap generated by `semaphore envoy`.\n{yaml}")
}

/// A proxy's request goes on, once its resources settled, to the cluster the filter names in
/// `FORWARD_CLUSTER_HEADER`. The route matches only requests carrying that header, which the
/// filter removes from whatever a client sends, and is not sent upstream. Without proxies there
/// is nothing to route.
fn routes(compiled: &Compiled) -> Vec<Value> {
    if !compiled.plan.flows.iter().any(|flow| flow.forward.is_some()) {
        return Vec::new();
    }
    vec![json!({
        "name": "semaphore_forward",
        "match": {
            "prefix": "/",
            "headers": [{ "name": FORWARD_CLUSTER_HEADER, "present_match": true }],
        },
        "route": { "cluster_header": FORWARD_CLUSTER_HEADER },
        "request_headers_to_remove": [FORWARD_CLUSTER_HEADER],
    })]
}

/// Envoy's CORS policy for the `origin` list: the endpoints' methods, the headers flows read
/// and the headers they answer with.
fn cors_policy(compiled: &Compiled) -> Value {
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
    headers.sort_unstable();
    headers.dedup();
    let mut exposed: Vec<String> = plan
        .flows
        .iter()
        .filter_map(|f| f.output.as_ref())
        .flat_map(|output| output.headers.iter().map(|h| h.name.to_ascii_lowercase()))
        .collect();
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

/// The cluster endpoint routes name: it has no hosts, as the filter answers every request it
/// serves before the router would send it anywhere.
const ENDPOINTS_CLUSTER: &str = "semaphore_endpoints";

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

fn duration(ms: u32) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

fn clusters(compiled: &Compiled, overrides: &BTreeMap<String, String>) -> Vec<Value> {
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
        let (host, port) = split_address(address);
        let resolution = if host.parse::<IpAddr>().is_ok() { "STATIC" } else { "STRICT_DNS" };
        let mut cluster = json!({
            "name": service.cluster,
            "type": resolution,
            "connect_timeout": "5s",
            "load_assignment": {
                "cluster_name": service.cluster,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                    "socket_address": { "address": host, "port_value": port },
                } } }] }],
            },
        });
        if service.transport == semaphore_plan::Transport::Grpc as i32 {
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

fn split_address(address: &str) -> (String, u16) {
    let address = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
    match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']).to_string(), port.parse().unwrap_or(80)),
        None => (address, 80),
    }
}

fn socket_address(address: &str) -> Value {
    let (host, port) = split_address(address);
    json!({ "socket_address": { "address": host, "port_value": port } })
}
