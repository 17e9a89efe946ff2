//! The filter as an Istio sidecar runs it, built from what `semaphore istio` generates: clusters
//! named as Istio names them (`outbound|<port>||<fqdn>`), the filter's configuration arriving
//! over ECDS from a file (as istio-agent hands Envoy a pulled module), the plan in the JSON a
//! WasmPlugin's `pluginConfig` becomes. Around them, the bootstrap `semaphore envoy` writes.

use std::net::SocketAddr;

use example_upstream::{checkout, getuser};
use semaphore_compiler::envoy::{bootstrap, extension_config_resource, EnvoyOptions};
use semaphore_compiler::istio::{endpoints_with_bodies, extension_config};
use semaphore_compiler::{compile_file_with, ClusterNaming, CompileOptions};
use semaphore_e2e::{http_client, wasm_path, workspace_root, Envoy, Upstream};
use serde_json::{json, Value};

/// Envoy with `config` compiled for Istio in namespace `shop`, every cluster sent to `upstream`.
async fn istio_proxy(
    config: &str,
    upstream: SocketAddr,
    dir: &std::path::Path,
) -> (Envoy, Vec<String>, Vec<String>) {
    let options = CompileOptions { clusters: ClusterNaming::Istio { namespace: "shop".into() } };
    let compiled = compile_file_with(&workspace_root().join(config), &options).unwrap();
    let clusters: Vec<String> = compiled.plan.services.iter().map(|s| s.cluster.clone()).collect();

    // What istio-agent gives Envoy: the EnvoyFilter's extension config, the module pulled to a
    // local file.
    let mut extension = extension_config(&compiled, "oci://ghcr.io/example/semaphore-filter:0.1.0");
    extension["typed_config"]["config"]["vm_config"]["code"] =
        json!({ "local": { "filename": wasm_path() } });
    let ecds = dir.join("semaphore-ecds.json");
    std::fs::write(&ecds, extension_config_resource(&extension)).unwrap();

    let options = EnvoyOptions {
        listen: Some("127.0.0.1:0".into()),
        admin: "127.0.0.1:0".into(),
        upstream_overrides: compiled
            .plan
            .services
            .iter()
            .map(|s| (s.name.clone(), upstream.to_string()))
            .collect(),
        filter_config_file: Some(ecds),
        ..Default::default()
    };
    let envoy = Envoy::start(&bootstrap(&compiled, &options)).await.unwrap();
    (envoy, clusters, endpoints_with_bodies(&compiled.plan))
}

#[tokio::test]
async fn a_get_flow_answers_through_ecds_and_istios_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let users = getuser::load_users(&getuser::default_data_path()).unwrap();
    let upstream = Upstream::serve(getuser::router(users));
    let (envoy, clusters, bodies) =
        istio_proxy("tests/fixtures/istio/getuser.hcl", upstream.addr(), dir.path()).await;
    assert_eq!(clusters, ["outbound|9090||users.shop.svc.cluster.local"]);
    assert!(bodies.is_empty(), "a WasmPlugin would do");

    let response = http_client().get(envoy.url("/user/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"name":"Ada Lovelace"}"#);
    assert_eq!(upstream.requests()[0].header("host"), Some("users:9090"));
}

#[tokio::test]
async fn a_post_flow_answers_through_ecds_and_istios_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::serve(checkout::router());
    let (envoy, clusters, bodies) =
        istio_proxy("tests/fixtures/istio/checkout.hcl", upstream.addr(), dir.path()).await;
    assert!(clusters.iter().all(|c| c == "outbound|9091||shop.shop.svc.cluster.local"), "{clusters:?}");
    assert_eq!(bodies, ["POST /checkout"], "the EnvoyFilter, with allow_on_headers_stop_iteration");

    let response = http_client()
        .post(envoy.url("/checkout"))
        .header("Authorization", "Bearer demo-token")
        .json(&json!({"cart_id": "c-1001", "user_id": "u-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-carrier"], "PostNL");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cart_id"], "c-1001");
    assert_eq!(body["customer"]["name"], "Ada Lovelace");
}
