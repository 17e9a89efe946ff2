//! Without `allow_on_headers_stop_iteration` (Istio's WasmPlugin cannot set it; Envoy 1.34 and
//! older refuse it), Envoy never hands a held request's body to the filter: a flow that reads a
//! body answers a clear error within its timeout instead of hanging; flows without a body and
//! proxies go on working.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use semaphore_compiler::envoy::{bootstrap, EnvoyOptions};
use semaphore_e2e::{http_client, wasm_path, workspace_root, Envoy, Reply, Upstream};
use serde_json::{json, Value};

/// Envoy running `config` with the setting false, services sent to `upstreams`.
async fn without_the_setting(config: &str, upstreams: &[(&str, std::net::SocketAddr)]) -> Envoy {
    let compiled = semaphore_compiler::compile_file(&workspace_root().join(config)).unwrap();
    let options = EnvoyOptions {
        wasm: wasm_path(),
        listen: Some("127.0.0.1:0".into()),
        admin: "127.0.0.1:0".into(),
        upstream_overrides: upstreams
            .iter()
            .map(|(s, a)| (s.to_string(), a.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    let yaml = bootstrap(&compiled, &options);
    assert!(yaml.contains("allow_on_headers_stop_iteration: true"));
    // One worker: the log line is written once per worker's VM, and Envoy closes a connection
    // whose body it never read, so the next request may land on another worker.
    Envoy::start_with_args(
        &yaml.replace("allow_on_headers_stop_iteration: true", "allow_on_headers_stop_iteration: false"),
        &["--concurrency", "1"],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_body_flow_answers_an_error_naming_the_setting_instead_of_hanging() {
    let envoy = without_the_setting("tests/fixtures/no_body/config.hcl", &[]).await;

    let started = Instant::now();
    let response = http_client().post(envoy.url("/echo")).json(&json!({"name": "ada"})).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 500);
    assert!(body["message"].as_str().unwrap().contains("allow_on_headers_stop_iteration: true"), "{body}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "within the flow's 1 s: {waited:?}"
    );

    // A second one is answered the same; the worker's log said it once.
    let response = http_client().post(envoy.url("/echo")).json(&json!({"name": "bob"})).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let log = envoy.log();
    assert_eq!(log.matches("needs `allow_on_headers_stop_iteration: true`").count(), 1, "{log}");

    // A flow without a body does not need the setting.
    let response = http_client().get(envoy.url("/hello/ada")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Hello ada"}"#);
}

#[tokio::test]
async fn a_proxy_streams_its_body_without_the_setting() {
    let auth = Upstream::builder()
        .route("POST", "/check", |_| Reply::json(200, json!({"user": "ada", "scope": "write"})))
        .start();
    let blobs = Upstream::builder()
        .route("ANY", "/blobs/{*path}", |r| Reply::text(201, format!("stored {} bytes", r.body.len())))
        .start();
    let envoy = without_the_setting(
        "tests/fixtures/proxy/config.hcl",
        &[("files.Auth", auth.addr()), ("files.Blobs", blobs.addr())],
    )
    .await;
    let body: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let response = http_client()
        .post(envoy.url("/files/a.bin"))
        .header("authorization", "Bearer good")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), "stored 600000 bytes");
    assert!(blobs.requests()[0].body == body, "byte for byte");
}
