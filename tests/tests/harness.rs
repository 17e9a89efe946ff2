//! The harness itself, with a plain Envoy (no filter): if these fail, no e2e result means much.

use std::net::SocketAddr;
use std::time::Duration;

use semaphore_compiler::envoy::{plain_proxy_bootstrap, PLAIN_PROXY_CLUSTER};
use semaphore_e2e::{http_client, Envoy, Reply, Upstream};
use serde_json::{json, Value};

/// Envoy alone, proxying everything to `upstream`; ports 0 so tests never clash.
fn proxy_bootstrap(upstream: SocketAddr) -> String {
    plain_proxy_bootstrap("127.0.0.1:0", "127.0.0.1:0", &upstream.to_string())
}

#[tokio::test]
async fn envoy_proxies_to_the_upstream_which_records_the_request() {
    let upstream = Upstream::builder()
        .route("GET", "/user/{id}", |request| json!({ "id": request.param("id"), "name": "Ada Lovelace" }))
        .start();
    let envoy = Envoy::start(&proxy_bootstrap(upstream.addr())).await.expect("Envoy starts");

    let response = http_client()
        .get(envoy.url("/user/1?fields=name"))
        .header("X-Test-Marker", "harness")
        .send()
        .await
        .expect("Envoy answers");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(body, json!({ "id": "1", "name": "Ada Lovelace" }));

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/user/1");
    assert_eq!(request.query.as_deref(), Some("fields=name"));
    assert_eq!(request.query_param("fields").as_deref(), Some("name"));
    assert_eq!(request.param("id"), Some("1"));
    assert_eq!(request.header("x-test-marker"), Some("harness"));
    assert!(
        request.headers.iter().any(|(name, _)| name == "x-test-marker"),
        "header names are recorded lower-cased: {:?}",
        request.headers
    );
    if let Err(log) = envoy.wait_for_log("starting main dispatch loop", Duration::from_secs(5)).await {
        panic!("Envoy's log lacks its startup line:\n{log}");
    }
}

#[tokio::test]
async fn envoy_admin_is_reachable() {
    let upstream = Upstream::builder().start();
    let envoy = Envoy::start(&proxy_bootstrap(upstream.addr())).await.expect("Envoy starts");

    let ready = http_client().get(envoy.admin_url("/ready")).send().await.expect("the admin answers");
    assert_eq!(ready.text().await.expect("a body").trim(), "LIVE");
    assert_eq!(envoy.stat(&format!("cluster.{PLAIN_PROXY_CLUSTER}.membership_healthy")).await, Some(1));
}

#[tokio::test]
async fn an_invalid_bootstrap_fails_with_envoys_complaint() {
    let mut bootstrap: Value =
        serde_norway::from_str(&proxy_bootstrap("127.0.0.1:9".parse().expect("an address"))).unwrap();
    bootstrap["static_resources"]["clusters"][0]["bogus_field"] = json!(1);
    let bootstrap = serde_norway::to_string(&bootstrap).unwrap();

    let error = Envoy::start(&bootstrap).await.expect_err("Envoy refuses an unknown field");
    let message = error.to_string();
    println!("{message}");
    assert!(message.contains("Envoy exited early"), "{message}");
    assert!(message.contains("bogus_field"), "{message}");
}

#[tokio::test]
async fn the_upstream_records_every_request_even_unrouted_ones() {
    let upstream = Upstream::builder()
        .route("POST", "/orders", |request| {
            Reply::json(201, json!({ "received": request.body_json().expect("JSON") }))
                .header("x-order", "42")
        })
        .route("GET", "/orders", |_| 405)
        .start();
    let client = http_client();

    let created = client
        .post(upstream.url("/orders"))
        .json(&json!({ "item": "tea" }))
        .send()
        .await
        .expect("the upstream answers");
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["x-order"], "42");
    assert_eq!(
        created.json::<serde_json::Value>().await.expect("JSON"),
        json!({ "received": { "item": "tea" } })
    );
    let listed = client.get(upstream.url("/orders")).send().await.expect("answer");
    assert_eq!(listed.status(), 405);
    let unrouted = client.delete(upstream.url("/nowhere?why=test")).send().await.expect("answer");
    assert_eq!(unrouted.status(), 404);

    let requests = upstream.requests();
    let summary: Vec<(&str, &str)> =
        requests.iter().map(|request| (request.method.as_str(), request.path.as_str())).collect();
    assert_eq!(summary, [("POST", "/orders"), ("GET", "/orders"), ("DELETE", "/nowhere")]);
    assert_eq!(requests[0].body_text(), r#"{"item":"tea"}"#);
    assert_eq!(requests[0].header("Content-Type"), Some("application/json"));
    assert_eq!(requests[2].query.as_deref(), Some("why=test"));
}
