//! Hostile input from clients and upstreams: each gets a clear error with the right status,
//! the next request is served normally, and the VM never traps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing;
use axum::Router;
use http_body_util::BodyExt as _;
use http_body_util::Full;
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
    assert_no_trap(envoy);
}

fn assert_no_trap(envoy: &Envoy) {
    let log = envoy.log();
    for sign in ["panicked", "Wasm VM failed", "wasm trap", "Uncaught RuntimeError"] {
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

    // HTTP lets a header value carry bytes that are not UTF-8, and Envoy passes them on: the
    // flow reads them with each stray byte replaced.
    let response = http_client()
        .post(envoy.url("/echo/1"))
        .header("content-type", "application/json")
        .header("x-note", reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"a":"fine"}"#);
    let sent = upstream.requests().last().cloned().unwrap();
    assert_eq!(sent.header("x-note"), Some("caf\u{fffd}"));
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

    // A gRPC service behind a transcoder explains its error in a header, which the flow reads
    // although none of its templates reads the answer's headers.
    *next.lock().unwrap() = Reply::json(400, json!({})).header("grpc-message", "no such step: caf%C3%A9");
    let (status, body) = post(&envoy, "{}").await;
    assert_eq!(
        (status, message(&body).as_str()),
        (400, "resource `a`: upstream answered 400: no such step: café")
    );
    served_normally(&envoy, &next).await;
}

#[tokio::test]
async fn an_upstream_that_hangs_up_mid_answer_is_a_502_and_the_vm_lives_on() {
    let hang_up = Arc::new(AtomicBool::new(true));
    let hangs_up = Arc::clone(&hang_up);
    let upstream = Upstream::serve(Router::new().route(
        "/a",
        routing::post(move || {
            let hang_up = hangs_up.load(Ordering::SeqCst);
            async move {
                if !hang_up {
                    return Body::from(r#"{"id": "fine"}"#);
                }
                // The answer's status and first bytes, a moment for them to reach Envoy, then
                // the connection ends: Envoy reports the call failed, with no answer to read.
                let (parts, stream) = tokio::sync::mpsc::channel(2);
                tokio::spawn(async move {
                    let _ = parts.send(Ok(Bytes::from_static(b"{\"id\""))).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = parts.send(Err(std::io::Error::other("hung up"))).await;
                });
                Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(stream))
            }
        }),
    ));
    let envoy = start_semaphore(HOSTILE, &[("saga.A", upstream.addr())]).await.unwrap();

    let (status, body) = post(&envoy, "{}").await;
    assert_eq!((status, message(&body).as_str()), (502, "resource `a`: the upstream could not be reached"));

    hang_up.store(false, Ordering::SeqCst);
    assert_eq!(post(&envoy, "{}").await, (200, r#"{"a":"fine"}"#.to_string()), "the next request is served");
    assert_no_trap(&envoy);
}

#[tokio::test]
async fn a_grpc_status_message_reaches_the_client_as_text_or_not_at_all() {
    // `grpc-message` is percent-encoded UTF-8, which can decode to any bytes; an upstream can
    // send other bytes than ASCII as they are, which Envoy passes on; or send none.
    let messages = [Some(&b"caf%C3%A9 %E9 failed"[..]), Some(b"caf\xe9 failed"), None];
    let sent = Arc::new(Mutex::new(messages.into_iter()));
    let greeter = Upstream::serve(Router::new().route(
        "/rt.Greeter/Hello",
        routing::post(move || {
            let message = sent.lock().unwrap().next().flatten();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("13"));
            if let Some(message) = message {
                trailers.insert("grpc-message", HeaderValue::from_bytes(message).unwrap());
            }
            async move {
                let body = Full::new(Bytes::new()).with_trailers(async move { Some(Ok(trailers)) });
                ([("content-type", "application/grpc")], Body::new(body))
            }
        }),
    ));
    let envoy =
        start_semaphore("tests/fixtures/runtime/grpc.hcl", &[("rt.Greeter", greeter.addr())]).await.unwrap();

    for expected in [": café \u{fffd} failed", ": caf\u{fffd} failed", ""] {
        let response = http_client().get(envoy.url("/greet/7")).send().await.unwrap();
        assert_eq!(response.status(), 500, "INTERNAL");
        let message = format!("resource `hello`: upstream answered 500{expected}");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"message": message, "status": 500}));
    }
    assert_no_trap(&envoy);
}
