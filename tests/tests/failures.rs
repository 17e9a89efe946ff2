//! The failure path in a real Envoy: sagas, error objects, statuses, timeouts, retries,
//! deadlines and metrics; and after each, a VM that did not trap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semaphore_e2e::{http_client, start_semaphore, Envoy, Reply, Upstream};
use serde_json::{json, Value};

const SAGA: &str = "tests/fixtures/failures/saga.hcl";
const ERRORS: &str = "tests/fixtures/failures/errors.hcl";

/// A service doing `/x` and undoing `/x/undo`; `fail` makes `/x` answer 500.
fn service(name: &'static str, fail: bool) -> Upstream {
    Upstream::builder()
        .route("POST", &format!("/{name}"), move |r| {
            if fail {
                return Reply::json(500, json!({"message": format!("{name} broke")}));
            }
            let id =
                r.body_json().ok().and_then(|b| b["id"].as_str().map(str::to_string)).unwrap_or_default();
            Reply::json(200, json!({"id": format!("{name}-{id}")}))
        })
        .route("POST", &format!("/{name}/undo"), |_| json!({"id": "undone"}))
        .start()
}

async fn saga(a: &Upstream, b: &Upstream, c: &Upstream) -> Envoy {
    start_semaphore(SAGA, &[("saga.A", a.addr()), ("saga.B", b.addr()), ("saga.C", c.addr())]).await.unwrap()
}

fn paths(upstream: &Upstream) -> Vec<String> {
    upstream.requests().into_iter().map(|r| r.path).collect()
}

/// The VM is alive and never trapped: no trap in the log, and it still serves.
async fn assert_vm_healthy(envoy: &Envoy) {
    let log = envoy.log();
    for sign in ["panicked", "Wasm VM failed", "wasm trap", "Function: proxy_"] {
        assert!(!log.contains(sign), "the log shows `{sign}`:\n{log}");
    }
    let ready = http_client().get(envoy.admin_url("/ready")).send().await.unwrap().text().await.unwrap();
    assert_eq!(ready.trim(), "LIVE");
}

async fn counter(envoy: &Envoy, name: &str) -> Option<u64> {
    envoy.stat(&format!("wasmcustom.{name}")).await
}

#[tokio::test]
async fn a_failure_at_the_end_of_a_chain_compensates_b_then_a() {
    let (a, b, c) = (service("a", false), service("b", false), service("c", true));
    let envoy = saga(&a, &b, &c).await;

    let response = http_client().post(envoy.url("/chain/1")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 500, "the upstream's status");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "resource `c`: upstream answered 500: c broke", "status": 500})
    );

    let a_calls = a.wait_for_requests(2, Duration::from_secs(5)).await;
    let b_calls = b.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(paths(&a), ["/a", "/a/undo"]);
    assert_eq!(paths(&b), ["/b", "/b/undo"]);
    assert!(b_calls[1].received_at <= a_calls[1].received_at, "B, which depended on A, is compensated first");
    assert_eq!(
        a_calls[1].body_json().unwrap(),
        json!({"id": "a-1", "ref": "1", "reason": "resource `c`: upstream answered 500: c broke"}),
        "a rollback reads its own response, the input and the error"
    );
    assert_eq!(b_calls[1].body_json().unwrap(), json!({"id": "b-a-1", "ref": "a-1"}));
    assert_eq!(paths(&c), ["/c"], "the failed resource is not compensated");

    assert_eq!(counter(&envoy, "semaphore.flow.chain.requests").await, Some(1));
    assert_eq!(counter(&envoy, "semaphore.flow.chain.failures").await, Some(1));
    assert_eq!(counter(&envoy, "semaphore.flow.chain.resource.c.failures").await, Some(1));
    assert_eq!(counter(&envoy, "semaphore.flow.chain.resource.a.calls").await, Some(1));
    assert_eq!(counter(&envoy, "semaphore.rollbacks").await, Some(2));
    assert_eq!(counter(&envoy, "semaphore.rollback_failures").await, Some(0));
    assert_vm_healthy(&envoy).await;
}

#[tokio::test]
async fn a_failure_in_parallel_compensates_only_what_completed() {
    let (a, b, c) = (service("a", false), service("b", true), service("c", false));
    let envoy = saga(&a, &b, &c).await;

    let response = http_client().post(envoy.url("/parallel/7")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 500);
    a.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(paths(&a), ["/a", "/a/undo"]);
    assert_eq!(paths(&b), ["/b"], "B failed: nothing to compensate");
    assert_eq!(a.requests()[1].body_json().unwrap(), json!({"id": "a-7"}));
    assert_vm_healthy(&envoy).await;
}

#[tokio::test]
async fn a_failure_before_anything_completed_compensates_nothing() {
    let (a, b, c) = (service("a", true), service("b", false), service("c", false));
    let envoy = saga(&a, &b, &c).await;

    let response = http_client().post(envoy.url("/chain/1")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(paths(&a), ["/a"]);
    assert!(b.requests().is_empty() && c.requests().is_empty(), "nothing after the failure was dispatched");
    assert_eq!(counter(&envoy, "semaphore.rollbacks").await, Some(0));
}

#[tokio::test]
async fn a_client_that_goes_away_mid_flow_still_gets_its_completed_steps_compensated() {
    let (a, b) = (service("a", false), service("b", false));
    let c = Upstream::builder()
        .route("POST", "/c", |_| Reply::json(200, json!({"id": "late"})).delay(Duration::from_secs(3)))
        .start();
    let envoy = saga(&a, &b, &c).await;

    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(500)).build().unwrap();
    let outcome = client.post(envoy.url("/chain/1")).json(&json!({})).send().await;
    assert!(outcome.is_err(), "the client gave up");

    a.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(paths(&b), ["/b", "/b/undo"]);
    assert_eq!(paths(&a), ["/a", "/a/undo"]);
    assert_vm_healthy(&envoy).await;
}

#[tokio::test]
async fn a_rollback_that_keeps_failing_is_given_up_and_the_others_still_run() {
    let a = service("a", false);
    let b = Upstream::builder()
        .route("POST", "/b", |_| json!({"id": "b-1"}))
        .route("POST", "/b/undo", |_| Reply::json(503, json!({"message": "cannot undo"})))
        .start();
    let c = service("c", true);
    let envoy = saga(&a, &b, &c).await;

    let response = http_client().post(envoy.url("/chain/1")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 500);
    // B's rollback: its first attempt and the five retries rollbacks get by default, backed off.
    a.wait_for_requests(2, Duration::from_secs(15)).await;
    assert_eq!(paths(&b), ["/b", "/b/undo", "/b/undo", "/b/undo", "/b/undo", "/b/undo", "/b/undo"]);
    assert_eq!(paths(&a), ["/a", "/a/undo"], "A is compensated although B's rollback failed");
    assert_eq!(counter(&envoy, "semaphore.rollbacks").await, Some(7));
    assert_eq!(counter(&envoy, "semaphore.rollback_failures").await, Some(6));
    envoy
        .wait_for_log(
            "gave up compensating `b`: the target answered 503 after 6 attempt(s)",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_vm_healthy(&envoy).await;
}

#[tokio::test]
async fn on_error_decodes_the_upstream_error_and_the_error_object_answers() {
    let a = Upstream::builder()
        .route("GET", "/a/{id}", |r| match r.param("id") {
            Some("ok") => Reply::json(203, json!({"id": "fine"})),
            _ => Reply::json(404, json!({"message": "no such step", "code": "E404", "trace": "t-1"})),
        })
        .start();
    let envoy = start_semaphore(ERRORS, &[("saga.A", a.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/custom/9")).send().await.unwrap();
    assert_eq!(response.status(), 422, "on_error's status");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-error-code"], "E404");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"cannot read 9: no such step","status":422,"code":"E404","trace":"t-1"}"#
    );

    let response = http_client().get(envoy.url("/custom/ok")).send().await.unwrap();
    assert_eq!(response.status(), 200, "203 is expected by this resource");
    assert_eq!(response.text().await.unwrap(), r#"{"a":"fine"}"#);

    let response = http_client().get(envoy.url("/plain/9")).send().await.unwrap();
    assert_eq!(response.status(), 404, "the upstream's status by default");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"global: resource `a`: upstream answered 404: no such step","status":404}"#,
        "the global error object"
    );
    assert_vm_healthy(&envoy).await;
}

#[tokio::test]
async fn unreachable_is_502_timeout_is_504_and_idempotent_calls_are_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&attempts);
    let a = Upstream::builder()
        .route("GET", "/a/{id}", move |r| match r.param("id") {
            Some("slow") => Reply::json(200, json!({"id": "slow"})).delay(Duration::from_secs(2)),
            Some("flaky") if seen.fetch_add(1, Ordering::SeqCst) < 2 => Reply::json(503, json!({})),
            Some(id) => Reply::json(200, json!({"id": id})),
            None => Reply::status(400),
        })
        .start();
    let envoy = start_semaphore(ERRORS, &[("saga.A", a.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/timeouts/flaky")).send().await.unwrap();
    assert_eq!(response.status(), 200, "two 503s, then success on the third attempt");
    assert_eq!(response.text().await.unwrap(), r#"{"a":"flaky"}"#);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let response = http_client().get(envoy.url("/timeouts/slow")).send().await.unwrap();
    assert_eq!(response.status(), 504, "300 ms timeout, retried twice, then given up");
    let slow_calls = a.requests().iter().filter(|r| r.path == "/a/slow").count();
    assert_eq!(slow_calls, 3);

    drop(a);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let envoy = start_semaphore(ERRORS, &[("saga.A", closed)]).await.unwrap();
    let response = http_client().get(envoy.url("/plain/1")).send().await.unwrap();
    assert_eq!(response.status(), 502, "nobody listens");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "global: resource `a`: the upstream could not be reached", "status": 502})
    );
    assert_vm_healthy(&envoy).await;
}

#[tokio::test]
async fn a_flow_deadline_stops_the_flow_and_dispatches_nothing_more() {
    let a = Upstream::builder()
        .route("GET", "/a/{id}", |r| {
            Reply::json(200, json!({"id": r.param("id")})).delay(Duration::from_millis(600))
        })
        .start();
    let b = service("b", false);
    let envoy = start_semaphore(ERRORS, &[("saga.A", a.addr()), ("saga.B", b.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/deadline/1")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.requests().is_empty(), "nothing is dispatched after the deadline");
    assert_vm_healthy(&envoy).await;
}
