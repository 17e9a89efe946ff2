//! Hostile input from clients and upstreams: each gets a clear error with the right status,
//! the next request is served normally, and the VM never traps.

use std::sync::{Arc, Mutex};

use semaphore_e2e::{http_client, start_semaphore, Envoy, Reply, Upstream};
use serde_json::{json, Value};

const HOSTILE: &str = "tests/fixtures/failures/hostile.hcl";

/// An upstream answering whatever the test sets next.
fn scripted() -> (Upstream, Arc<Mutex<Reply>>) {
    let next = Arc::new(Mutex::new(Reply::json(200, json!({"id": "fine"}))));
    let reply = Arc::clone(&next);
    let upstream = Upstream::builder().route("POST", "/a", move |_| reply.lock().unwrap().clone()).start();
    (upstream, next)
}

async fn post(envoy: &Envoy, body: impl Into<reqwest::Body>) -> (u16, String) {
    let response = http_client()
        .post(envoy.url("/echo/1"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn served_normally(envoy: &Envoy, next: &Arc<Mutex<Reply>>) {
    *next.lock().unwrap() = Reply::json(200, json!({"id": "fine"}));
    assert_eq!(post(envoy, "{}").await, (200, r#"{"a":"fine"}"#.to_string()), "the next request is served");
    let log = envoy.log();
    for sign in ["panicked", "Wasm VM failed", "wasm trap"] {
        assert!(!log.contains(sign), "the log shows `{sign}`:\n{log}");
    }
}

fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn hostile_client_input() {
    let (upstream, next) = scripted();
    let envoy = start_semaphore(HOSTILE, &[("saga.A", upstream.addr())]).await.unwrap();

    let (status, body) = post(&envoy, r#"{"id": "#).await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("invalid request body: invalid JSON: EOF while parsing"), "{body}");
    served_normally(&envoy, &next).await;

    let deep = format!(r#"{{"unknown": {}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let (status, body) = post(&envoy, deep).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("recursion limit exceeded"), "{body}");
    served_normally(&envoy, &next).await;

    let (status, body) =
        post(&envoy, vec![b'{', b'"', b'r', b'e', b'f', b'"', b':', b'"', 0xff, 0xfe, b'"', b'}']).await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("invalid request body: invalid JSON"), "{body}");
    served_normally(&envoy, &next).await;

    let (status, _) = post(&envoy, format!(r#"{{"ref": "{}"}}"#, "x".repeat(2 << 20))).await;
    assert_eq!(status, 413, "over Envoy's buffer limit");
    served_normally(&envoy, &next).await;

    let before = upstream.requests().len();
    let (status, body) = post(&envoy, r#"{"reason": "ok\r\nX-Injected: yes"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(message(&body), "resource `a`: the value for header `x-reason` contains a line break");
    assert_eq!(upstream.requests().len(), before, "nothing was sent");
    served_normally(&envoy, &next).await;
    assert!(upstream.requests().iter().all(|r| r.header("x-injected").is_none()));
}

#[tokio::test]
async fn hostile_upstream_answers() {
    let (upstream, next) = scripted();
    let envoy = start_semaphore(HOSTILE, &[("saga.A", upstream.addr())]).await.unwrap();

    *next.lock().unwrap() = Reply::text(200, "<html>surprise</html>").header("content-type", "text/html");
    let (status, body) = post(&envoy, "{}").await;
    assert_eq!(status, 502);
    assert!(message(&body).starts_with("resource `a`: invalid upstream response: invalid JSON"), "{body}");
    served_normally(&envoy, &next).await;

    *next.lock().unwrap() = Reply::text(200, r#"{"id": "tru"#);
    let (status, body) = post(&envoy, "{}").await;
    assert_eq!(status, 502, "a truncated body: {body}");
    served_normally(&envoy, &next).await;

    *next.lock().unwrap() = Reply::status(200);
    assert_eq!(post(&envoy, "{}").await, (200, "{}".to_string()), "an empty body is an empty message");

    *next.lock().unwrap() =
        Reply::text(200, r#"{"id": "labelled text"}"#).header("content-type", "text/plain");
    assert_eq!(
        post(&envoy, "{}").await,
        (200, r#"{"a":"labelled text"}"#.to_string()),
        "the codec, not the label"
    );

    *next.lock().unwrap() = Reply::json(200, json!({"id": "big", "padding": "x".repeat(10 << 20)}));
    let (status, body) = post(&envoy, "{}").await;
    assert!(
        (status, body.as_str()) == (200, r#"{"a":"big"}"#) || status == 502 || status == 503,
        "a 10 MB answer is read or refused, never a trap: {status} {}",
        &body[..body.len().min(200)]
    );
    served_normally(&envoy, &next).await;
}
