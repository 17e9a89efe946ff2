//! The filter in an Envoy of the operator's own, with clusters named as the operator chose:
//! calls go to the cluster a service names (`cluster = "..."`), not to one named after its host.

use semaphore_compiler::envoy::plugin_configuration;
use semaphore_e2e::{http_client, wasm_path, workspace_root, Envoy, Reply, Upstream};
use serde_json::json;

#[tokio::test]
async fn calls_go_to_the_cluster_the_service_names() {
    let users = Upstream::builder()
        .route("GET", "/user/{id}", |r| {
            Reply::json(200, json!({ "name": format!("user {}", r.param("id").unwrap_or("")) }))
        })
        .start();
    let compiled =
        semaphore_compiler::compile_file(&workspace_root().join("tests/fixtures/own_envoy/config.hcl"))
            .unwrap();
    assert_eq!(compiled.plan.services[0].cluster, "users-blue");
    let configuration = serde_json::to_string(&plugin_configuration(&compiled)).unwrap();
    // An operator's bootstrap: its cluster names have nothing to do with the hosts they reach.
    // Written by hand on purpose, not with `semaphore_compiler::envoy`: its filter is the
    // snippet envoy/README.md tells operators to paste, so this checks the documented setup.
    let bootstrap = format!(
        r#"
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: /legacy }}
                direct_response: {{ status: 200, body: {{ inline_string: "the operator's own route" }} }}
          http_filters:
          - name: semaphore
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: semaphore
                root_id: semaphore
                allow_on_headers_stop_iteration: true
                vm_config:
                  vm_id: semaphore
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{wasm}" }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {configuration}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: users-blue
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: users-blue
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]
"#,
        wasm = wasm_path().display(),
        port = users.addr().port(),
    );
    let envoy = Envoy::start(&bootstrap).await.unwrap();

    let response = http_client().get(envoy.url("/user/3")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"name":"user 3"}"#);
    let requests = users.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/user/3");
    assert_eq!(
        requests[0].header("host"),
        Some("users.internal.invalid:7000"),
        "the service's host is the authority"
    );

    // The operator's own routes are untouched.
    let response = http_client().get(envoy.url("/legacy")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "the operator's own route");
}
