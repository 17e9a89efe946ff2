//! The writer's output read back as data: what Envoy will find where.

use std::path::Path;

use semaphore_plan::Plan;
use serde_json::{json, Value};

use super::*;
use crate::listener::{Listener, Tls};
use crate::Compiled;

/// Where the first listener's connection manager keeps its configuration.
const MANAGER: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";

fn compiled(listener: Listener) -> Compiled {
    Compiled { plan: Plan::default(), listener, warnings: String::new(), graphql: None }
}

fn options() -> EnvoyOptions {
    EnvoyOptions {
        wasm: "/filters/semaphore_filter.wasm".into(),
        listen: Some("127.0.0.1:0".into()),
        admin: "127.0.0.1:0".into(),
        ..Default::default()
    }
}

fn read(yaml: &str) -> Value {
    serde_norway::from_str(yaml).expect("the writer writes YAML")
}

fn http_filter_names(bootstrap: &Value) -> Vec<&str> {
    let http_filters = bootstrap.pointer(&format!("{MANAGER}/http_filters")).and_then(Value::as_array);
    http_filters.expect("a list of HTTP filters").iter().map(|f| f["name"].as_str().unwrap()).collect()
}

/// The bootstrap of an empty plan, with CORS so that the semaphore filter is not the first.
fn with_cors() -> String {
    let listener = Listener { cors_origins: vec!["*".into()], ..Default::default() };
    bootstrap(&compiled(listener), &options())
}

const JWT_AUTHN_AND_LUA: &str = "
- name: envoy.filters.http.jwt_authn
  typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication }
- name: envoy.filters.http.lua
  typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua }
";

#[test]
fn every_bootstrap_gives_the_memory_envoy_freed_back_to_the_system() {
    let release = json!({ "bytes_to_release": 8 << 20, "memory_release_interval": "1s" });
    let plain = read(&plain_proxy_bootstrap("127.0.0.1:0", "127.0.0.1:9902", "127.0.0.1:7000"));
    assert_eq!(plain["memory_allocator_manager"], release);
    assert_eq!(read(&with_cors())["memory_allocator_manager"], release);
}

#[test]
fn a_plain_proxy_sends_every_request_to_one_upstream_without_a_filter() {
    let yaml = read(&plain_proxy_bootstrap("127.0.0.1:0", "127.0.0.1:9902", "127.0.0.1:7000"));
    assert_eq!(http_filter_names(&yaml), [ROUTER_FILTER]);
    assert_eq!(
        yaml["admin"],
        json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 9902 } } })
    );
    let listener = &yaml["static_resources"]["listeners"][0];
    assert_eq!(listener["address"], json!({ "socket_address": { "address": "127.0.0.1", "port_value": 0 } }));
    assert_eq!(
        yaml.pointer(&format!("{MANAGER}/route_config/virtual_hosts/0/routes")),
        Some(&json!([{ "match": { "prefix": "/" }, "route": { "cluster": PLAIN_PROXY_CLUSTER } }]))
    );
    assert_eq!(
        yaml["static_resources"]["clusters"],
        json!([{
            "name": PLAIN_PROXY_CLUSTER,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": PLAIN_PROXY_CLUSTER,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                    "socket_address": { "address": "127.0.0.1", "port_value": 7000 },
                } } }] }],
            },
        }])
    );

    let by_name = read(&plain_proxy_bootstrap(":8080", "127.0.0.1:9901", "upstream.internal:80"));
    assert_eq!(by_name["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
    assert_eq!(
        by_name["static_resources"]["listeners"][0]["address"]["socket_address"]["address"],
        "0.0.0.0"
    );
}

#[test]
fn filters_inserted_before_semaphore_come_just_before_it_and_change_nothing_else() {
    let generated = with_cors();
    let edited = read(&insert_before_semaphore(&generated, JWT_AUTHN_AND_LUA).unwrap());
    assert_eq!(
        http_filter_names(&edited),
        [
            "envoy.filters.http.cors",
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.lua",
            SEMAPHORE_FILTER,
            ROUTER_FILTER
        ]
    );
    let mut without = edited.clone();
    let http_filters =
        without.pointer_mut(&format!("{MANAGER}/http_filters")).unwrap().as_array_mut().unwrap();
    http_filters.drain(1..3);
    assert_eq!(without, read(&generated));
}

#[test]
fn filters_inserted_before_the_router_come_after_semaphore() {
    let buffer = "- name: envoy.filters.http.buffer\n  typed_config: { max_request_bytes: 1024 }\n";
    let edited =
        read(&insert_before_router(&bootstrap(&compiled(Listener::default()), &options()), buffer).unwrap());
    assert_eq!(http_filter_names(&edited), [SEMAPHORE_FILTER, "envoy.filters.http.buffer", ROUTER_FILTER]);
    assert_eq!(
        edited.pointer(&format!("{MANAGER}/http_filters/1/typed_config/max_request_bytes")),
        Some(&json!(1024))
    );
}

#[test]
fn appended_routes_come_after_the_generated_ones() {
    let mut compiled = compiled(Listener::default());
    compiled
        .plan
        .flows
        .push(semaphore_plan::Flow { forward: Some(Default::default()), ..Default::default() });
    let generated = bootstrap(&compiled, &options());
    let other = "- match: { prefix: /other }\n  route: { cluster: other }\n";
    let edited = read(&append_routes(&generated, other).unwrap());
    let routes = edited.pointer(&format!("{MANAGER}/route_config/virtual_hosts/0/routes")).unwrap();
    let targets: Vec<Value> = routes.as_array().unwrap().iter().map(|route| route["route"].clone()).collect();
    assert_eq!(
        targets,
        [json!({ "cluster_header": semaphore_plan::FORWARD_CLUSTER_HEADER }), json!({ "cluster": "other" })],
        "the route proxies' requests go on by stays first"
    );
    let mut without = edited.clone();
    let routes = without.pointer_mut(&format!("{MANAGER}/route_config/virtual_hosts/0/routes")).unwrap();
    routes.as_array_mut().unwrap().pop();
    assert_eq!(without, read(&generated));
}

#[test]
fn an_edit_says_what_it_could_not_find_or_read() {
    let plain = plain_proxy_bootstrap("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:7000");
    assert_eq!(
        insert_before_semaphore(&plain, JWT_AUTHN_AND_LUA),
        Err(EditError::NoSuchFilter(SEMAPHORE_FILTER))
    );
    let error = replace_module(&plain, Path::new("/m.wasm"), "{}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "no HTTP connection manager in the bootstrap runs the `semaphore` HTTP filter"
    );

    let generated = with_cors();
    let error = insert_before_semaphore(&generated, "name: envoy.filters.http.jwt_authn").unwrap_err();
    assert!(matches!(error, EditError::Unreadable { what: "the HTTP filters (a YAML list)", .. }), "{error}");
    let error = insert_before_semaphore("listeners: [", JWT_AUTHN_AND_LUA).unwrap_err();
    assert!(error.to_string().starts_with("cannot read the bootstrap: "), "{error}");

    let options = EnvoyOptions { filter_config_file: Some("/etc/semaphore/filter.json".into()), ..options() };
    let over_ecds = bootstrap(&compiled(Listener::default()), &options);
    assert_eq!(replace_module(&over_ecds, Path::new("/m.wasm"), "{}"), Err(EditError::NotInline));
}

#[test]
fn a_replaced_module_runs_with_its_own_configuration_in_the_same_envoy() {
    let generated = with_cors();
    let edited = read(&replace_module(&generated, Path::new("/bench/minimal.wasm"), r#"{"a":"1"}"#).unwrap());
    let mut expected = read(&generated);
    let config = expected.pointer_mut(&format!("{MANAGER}/http_filters/1/typed_config/config")).unwrap();
    config["vm_config"]["code"] = json!({ "local": { "filename": "/bench/minimal.wasm" } });
    config["configuration"]["value"] = json!(r#"{"a":"1"}"#);
    assert_eq!(edited, expected);
}

#[test]
fn an_extension_config_resource_holds_the_filters_configuration_under_its_name() {
    let compiled = compiled(Listener::default());
    let filter = wasm_filter(&compiled, json!({ "local": { "filename": "/m.wasm" } }));
    let resource: Value = serde_json::from_str(&extension_config_resource(&filter)).unwrap();
    assert_eq!(
        resource,
        json!({ "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": SEMAPHORE_FILTER,
            "typed_config": filter["typed_config"],
        }] })
    );

    let resource: Value =
        serde_json::from_str(&filter_config_resource(&compiled, Path::new("/m.wasm"))).unwrap();
    let configuration = resource.pointer("/resources/0/typed_config/config/configuration/value").unwrap();
    let configuration: Value = serde_json::from_str(configuration.as_str().unwrap()).unwrap();
    assert_eq!(configuration["reject_invalid"], true, "Envoy keeps the previous plan rather than none");
}

#[test]
fn the_listener_takes_tls_timeouts_and_cors_from_the_http_block() {
    let listener = Listener {
        address: Some(":8443".into()),
        cors_origins: vec!["https://app.example".into()],
        tls: Some(Tls { cert_file: "/tls/cert.pem".into(), key_file: "/tls/key.pem".into() }),
        read_timeout_ms: Some(2500),
        write_timeout_ms: Some(30_000),
        grpc_address: None,
        graphql_address: None,
    };
    let yaml = read(&bootstrap(&compiled(listener), &EnvoyOptions { listen: None, ..options() }));
    let listener = &yaml["static_resources"]["listeners"][0];
    assert_eq!(listener["address"]["socket_address"], json!({ "address": "0.0.0.0", "port_value": 8443 }));
    assert_eq!(
        listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
            ["tls_certificates"],
        json!([{ "certificate_chain": { "filename": "/tls/cert.pem" }, "private_key": { "filename": "/tls/key.pem" } }])
    );
    let manager = yaml.pointer(MANAGER).unwrap();
    assert_eq!(manager["request_timeout"], "2.500s");
    assert_eq!(manager["common_http_protocol_options"]["max_stream_duration"], "30.000s");
    assert_eq!(http_filter_names(&yaml), ["envoy.filters.http.cors", SEMAPHORE_FILTER, ROUTER_FILTER]);
    let virtual_host = &manager["route_config"]["virtual_hosts"][0];
    assert_eq!(
        virtual_host["typed_per_filter_config"]["envoy.filters.http.cors"]["allow_origin_string_match"],
        json!([{ "exact": "https://app.example" }])
    );
    assert_eq!(yaml["static_resources"]["clusters"][0]["name"], "semaphore_endpoints");
}

#[test]
fn over_ecds_the_filter_reads_a_file_in_a_watched_folder() {
    let options = EnvoyOptions { filter_config_file: Some("/etc/semaphore/filter.json".into()), ..options() };
    let yaml = read(&bootstrap(&compiled(Listener::default()), &options));
    let source = yaml.pointer(&format!("{MANAGER}/http_filters/0/config_discovery/config_source")).unwrap();
    assert_eq!(
        source["path_config_source"],
        json!({ "path": "/etc/semaphore/filter.json", "watched_directory": { "path": "/etc/semaphore" } })
    );
    assert_eq!(
        yaml["node"],
        json!({ "id": "semaphore", "cluster": "semaphore" }),
        "file-based discovery needs one"
    );
}
