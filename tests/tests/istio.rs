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
    assert_eq!(
        bodies,
        [
            "POST /checkout",
            "POST /checkout.Storefront/Checkout",
            "POST /grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "POST /grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "POST /graphql"
        ],
        "the EnvoyFilter, with allow_on_headers_stop_iteration"
    );

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

/// A gRPC method in an Istio sidecar: the bootstrap around the filter is built as Istio applies
/// `semaphore istio`'s EnvoyFilter, its cluster, internal listener and first route for the
/// gRPC hop taken from the manifest's patches (the filter's configuration over ECDS from a
/// file, as istio-agent hands it over), and a gRPC client calls the method through them.
#[tokio::test]
async fn a_grpc_method_answers_through_the_envoyfilters_hop() {
    use semaphore_compiler::istio::{manifests, IstioOptions};
    use tonic::codegen::http::uri::PathAndQuery;

    use semaphore_e2e::users::{User, UserQuery};

    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::builder()
        .route("GET", "/profiles/{id}", |_| {
            semaphore_e2e::Reply::json(200, json!({ "id": "7", "name": "Ada" }))
        })
        .start();
    let config = "tests/fixtures/grpc/config.hcl";
    let options = CompileOptions { clusters: ClusterNaming::Istio { namespace: "shop".into() } };
    let compiled = compile_file_with(&workspace_root().join(config), &options).unwrap();
    let istio = IstioOptions {
        module: "oci://ghcr.io/example/semaphore-filter:0.1.0".into(),
        selector: Vec::new(),
        namespace: "shop".into(),
        gateway: false,
    };
    let manifests = manifests(&compiled, &istio);
    let envoy_filter: Value = manifests
        .yaml
        .split("---\n")
        .filter_map(|document| serde_norway::from_str::<Value>(document).ok())
        .find(|document| document["kind"] == "EnvoyFilter")
        .expect("an EnvoyFilter");
    let patch = |apply_to: &str| {
        let patches = envoy_filter["spec"]["configPatches"].as_array().unwrap();
        patches.iter().find(|p| p["applyTo"] == apply_to).unwrap().clone()
    };
    let (cluster, listener, route) = (patch("CLUSTER"), patch("LISTENER"), patch("HTTP_ROUTE"));
    assert_eq!(
        (cluster["match"]["context"].as_str(), listener["match"]["context"].as_str()),
        (Some("SIDECAR_OUTBOUND"), Some("SIDECAR_OUTBOUND"))
    );
    assert_eq!(
        (route["match"]["context"].as_str(), route["patch"]["operation"].as_str()),
        (Some("SIDECAR_INBOUND"), Some("INSERT_FIRST"))
    );

    // The sidecar before the EnvoyFilter's hop: the filter over ECDS, without the hop's parts.
    let mut extension = extension_config(&compiled, &istio.module);
    extension["typed_config"]["config"]["vm_config"]["code"] =
        json!({ "local": { "filename": wasm_path() } });
    let ecds = dir.path().join("semaphore-ecds.json");
    std::fs::write(&ecds, extension_config_resource(&extension)).unwrap();
    let options = EnvoyOptions {
        listen: Some("127.0.0.1:0".into()),
        admin: "127.0.0.1:0".into(),
        upstream_overrides: [("users.v1.Profiles".to_string(), upstream.addr().to_string())].into(),
        filter_config_file: Some(ecds),
        ..Default::default()
    };
    let mut bootstrap: Value = serde_norway::from_str(&bootstrap(&compiled, &options)).unwrap();
    let hop = semaphore_plan::GRPC_HOP_CLUSTER;
    let resources = &mut bootstrap["static_resources"];
    resources["listeners"].as_array_mut().unwrap().retain(|l| l["name"] != hop);
    resources["clusters"].as_array_mut().unwrap().retain(|c| c["name"] != hop);
    let first = &mut resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let ecds_filter = first["http_filters"][0].clone();
    let routes = first["route_config"]["virtual_hosts"][0]["routes"].as_array_mut().unwrap();
    routes.retain(|r| r["name"] != hop);

    // Istio applies the patches; istio-agent serves the filter the internal listener discovers.
    routes.insert(0, route["patch"]["value"].clone());
    resources["clusters"].as_array_mut().unwrap().push(cluster["patch"]["value"].clone());
    let mut internal = listener["patch"]["value"].clone();
    let inner = &mut internal["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0];
    assert_eq!(inner["config_discovery"]["config_source"]["ads"], json!({}), "discovered over ADS");
    *inner = ecds_filter;
    resources["listeners"].as_array_mut().unwrap().push(internal);

    let envoy = Envoy::start(&serde_norway::to_string(&bootstrap).unwrap()).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(envoy.url("")).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<UserQuery, User>::default();
    let response = grpc
        .unary(
            tonic::Request::new(UserQuery { id: "7".into() }),
            PathAndQuery::from_static("/users.v1.Directory/GetUser"),
            codec,
        )
        .await
        .unwrap();
    assert_eq!((response.get_ref().id.as_str(), response.get_ref().name.as_str()), ("7", "Ada"));
    assert_eq!(upstream.requests()[0].path, "/profiles/7");
}
