//! Sagas that hold, in a real Envoy: a checkout (reserve -> charge -> order, release and refund
//! compensating) against a recording shop, counting compensations per execution id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semaphore_e2e::{http_client, start_semaphore_with_args, Envoy, RecordedRequest, Reply, Upstream};
use serde_json::json;

const CHECKOUT: &str = "tests/fixtures/sagas/checkout.hcl";
const EXECUTION_ID: &str = "x-semaphore-execution-id";

/// How the shop behaves: the charge's delay, and how the order, the refund and the release
/// answer their n-th call.
struct Shop {
    charge_delay: Duration,
    order_status: u16,
    refund: fn(usize) -> Reply,
    release: fn(usize) -> Reply,
}

fn ok_receipt(id: &str) -> Reply {
    Reply::json(200, json!({ "id": id }))
}

fn shop(behaviour: Shop) -> Upstream {
    let refunds = Arc::new(AtomicUsize::new(0));
    let releases = Arc::new(AtomicUsize::new(0));
    let Shop { charge_delay, order_status, refund, release } = behaviour;
    Upstream::builder()
        .route("POST", "/reserve", |r| ok_receipt(&format!("hold-{}", id_of(r))))
        .route("POST", "/charge", move |r| ok_receipt(&format!("charge-{}", id_of(r))).delay(charge_delay))
        .route("POST", "/orders", move |_| Reply::json(order_status, json!({ "message": "orders are down" })))
        .route("POST", "/refund", move |_| refund(refunds.fetch_add(1, Ordering::SeqCst)))
        .route("POST", "/release", move |_| release(releases.fetch_add(1, Ordering::SeqCst)))
        .start()
}

fn id_of(request: &RecordedRequest) -> String {
    request.body_json().ok().and_then(|b| b["id"].as_str().map(str::to_string)).unwrap_or_default()
}

async fn envoy(shop: &Upstream, args: &[&str]) -> Envoy {
    let services = [
        ("checkout.Stock", shop.addr()),
        ("checkout.Payments", shop.addr()),
        ("checkout.Orders", shop.addr()),
    ];
    start_semaphore_with_args(CHECKOUT, &services, args).await.unwrap()
}

async fn checkout(envoy: &Envoy, id: &str) -> reqwest::Response {
    http_client()
        .post(envoy.url(&format!("/checkout/{id}")))
        .json(&json!({ "amount_cents": 4200 }))
        .send()
        .await
        .unwrap()
}

fn calls<'a>(requests: &'a [RecordedRequest], path: &str) -> Vec<&'a RecordedRequest> {
    requests.iter().filter(|r| r.path == path).collect()
}

async fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("wasmcustom.{name}")).await.unwrap_or(0)
}

#[tokio::test]
async fn a_charge_that_timed_out_is_refunded_with_its_execution_id() {
    let upstream = shop(Shop {
        charge_delay: Duration::from_millis(800),
        order_status: 200,
        refund: |_| ok_receipt("refund"),
        release: |_| ok_receipt("release"),
    });
    let envoy = envoy(&upstream, &[]).await;

    let response = checkout(&envoy, "7").await;
    assert_eq!(response.status(), 504, "the charge outlived its 300 ms");

    // The payments service performed the charge after all: it is refunded, and the hold released.
    let requests = upstream.wait_for_requests(4, Duration::from_secs(5)).await;
    let charge = calls(&requests, "/charge");
    let refund = calls(&requests, "/refund");
    let release = calls(&requests, "/release");
    assert_eq!((charge.len(), refund.len(), release.len()), (1, 1, 1), "{requests:#?}");
    assert_eq!(refund[0].body_json().unwrap(), json!({ "id": "7", "amount_cents": 4200 }));
    let id = charge[0].header(EXECUTION_ID).unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(refund[0].header(EXECUTION_ID), Some(id));
    assert_eq!(release[0].header(EXECUTION_ID), Some(id));
    assert!(calls(&requests, "/orders").is_empty());
    // Refund before release: reverse completion order.
    assert!(refund[0].received_at <= release[0].received_at);
}

#[tokio::test]
async fn a_failing_compensation_is_retried_until_it_succeeds_exactly_once() {
    let upstream = shop(Shop {
        charge_delay: Duration::ZERO,
        order_status: 500,
        refund: |n| {
            if n < 2 {
                Reply::json(500, json!({ "message": "refunds are down" }))
            } else {
                ok_receipt("refund")
            }
        },
        release: |_| ok_receipt("release"),
    });
    let envoy = envoy(&upstream, &[]).await;

    assert_eq!(checkout(&envoy, "8").await.status(), 500);
    // reserve, charge, order, three refunds, one release.
    let requests = upstream.wait_for_requests(7, Duration::from_secs(10)).await;
    let refunds = calls(&requests, "/refund");
    assert_eq!(refunds.len(), 3, "{requests:#?}");
    let id = calls(&requests, "/charge")[0].header(EXECUTION_ID).unwrap();
    assert!(refunds.iter().all(|r| r.header(EXECUTION_ID) == Some(id)), "one execution id on every attempt");
    assert_eq!(calls(&requests, "/release").len(), 1);
    // Backed off: the attempts are not back to back.
    assert!(refunds[2].received_at.duration_since(refunds[0].received_at) >= Duration::from_millis(1));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let prefix = "semaphore.flow.checkout.resource.charge.compensations";
    assert_eq!(stat(&envoy, &format!("{prefix}.retried")).await, 2);
    assert_eq!(stat(&envoy, &format!("{prefix}.succeeded")).await, 1);
    assert_eq!(stat(&envoy, &format!("{prefix}.given_up")).await, 0);
    assert_eq!(upstream.requests().len(), 7, "nothing more: compensated exactly once");
}

#[tokio::test]
async fn a_compensation_that_never_succeeds_is_given_up_with_a_replayable_log_line() {
    let upstream = shop(Shop {
        charge_delay: Duration::ZERO,
        order_status: 500,
        refund: |_| ok_receipt("refund"),
        release: |_| Reply::json(503, json!({ "message": "stock is down" })),
    });
    let envoy = envoy(&upstream, &[]).await;

    assert_eq!(checkout(&envoy, "9").await.status(), 500);
    // The release's `options { retries = 2 }`: three attempts.
    let requests = upstream.wait_for_requests(7, Duration::from_secs(10)).await;
    assert_eq!(calls(&requests, "/release").len(), 3, "{requests:#?}");
    let log = envoy.wait_for_log("gave up compensating `reserve`", Duration::from_secs(5)).await.unwrap();
    let line = log.lines().find(|l| l.contains("gave up compensating `reserve`")).unwrap();
    let replay: serde_json::Value =
        serde_json::from_str(line.split("replay: ").nth(1).unwrap().trim()).unwrap();
    assert_eq!(replay["method"], "POST");
    assert_eq!(replay["path"], "/release");
    assert_eq!(replay["body"], r#"{"id":"hold-9"}"#);
    assert_eq!(replay["headers"][EXECUTION_ID], calls(&requests, "/charge")[0].header(EXECUTION_ID).unwrap());
    let prefix = "semaphore.flow.checkout.resource.reserve.compensations";
    assert_eq!(stat(&envoy, &format!("{prefix}.given_up")).await, 1);
    assert_eq!(stat(&envoy, &format!("{prefix}.retried")).await, 2);
}

#[tokio::test]
async fn compensations_against_a_stalled_target_are_bounded_and_good_checkouts_go_on() {
    // Orders fail for ids starting with `f`; releases stall: they never answer within the test.
    let upstream = Upstream::builder()
        .route("POST", "/reserve", |r| ok_receipt(&format!("hold-{}", id_of(r))))
        .route("POST", "/charge", |r| ok_receipt(&format!("charge-{}", id_of(r))))
        .route("POST", "/orders", |r| {
            if id_of(r).starts_with("charge-f") {
                Reply::json(500, json!({ "message": "orders are down" }))
            } else {
                ok_receipt("order")
            }
        })
        .route("POST", "/refund", |_| ok_receipt("refund"))
        .route("POST", "/release", |_| ok_receipt("release").delay(Duration::from_secs(30)))
        .start();
    // One worker, one VM: its limit is the whole Envoy's.
    let envoy = envoy(&upstream, &["--concurrency", "1"]).await;

    let failing: Vec<_> = (0..60)
        .map(|n| {
            let url = envoy.url(&format!("/checkout/f{n}"));
            tokio::spawn(
                async move { http_client().post(url).json(&json!({})).send().await.unwrap().status() },
            )
        })
        .collect();
    for task in failing {
        assert_eq!(task.await.unwrap(), 500);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Each failed checkout compensates its charge (a quick refund), then its hold (a stalled
    // release): 32 sagas hold the 32 places, the 28 others wait with both compensations.
    let requests = upstream.requests();
    assert_eq!(calls(&requests, "/refund").len(), 32);
    assert_eq!(calls(&requests, "/release").len(), 32);
    assert_eq!(stat(&envoy, "semaphore.compensations.in_flight").await, 32);
    assert_eq!(stat(&envoy, "semaphore.compensations.pending").await, 56);

    // Good checkouts through the same services keep succeeding meanwhile.
    for n in 0..5 {
        let response = checkout(&envoy, &format!("g{n}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.text().await.unwrap(),
            format!(r#"{{"hold":"hold-g{n}","charge":"charge-g{n}","order":"order"}}"#)
        );
    }
}

#[tokio::test]
async fn clients_leaving_during_the_charge_still_get_it_refunded_exactly_once() {
    let upstream = shop(Shop {
        charge_delay: Duration::from_millis(250),
        order_status: 200,
        refund: |_| ok_receipt("refund"),
        release: |_| ok_receipt("release"),
    });
    let envoy = envoy(&upstream, &[]).await;

    // Twenty clients give up while their charge is in flight (it takes 250 ms; they wait 100).
    let impatient =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(100)).build().unwrap();
    let leaving: Vec<_> = (0..20)
        .map(|n| {
            let (client, url) = (impatient.clone(), envoy.url(&format!("/checkout/c{n}")));
            tokio::spawn(async move { client.post(url).json(&json!({ "amount_cents": 100 })).send().await })
        })
        .collect();
    for task in leaving {
        assert!(task.await.unwrap().is_err(), "the client gave up");
    }

    // Each charge completed after its client left: refunded, and its hold released, once.
    let requests = upstream.wait_for_requests(80, Duration::from_secs(10)).await;
    let executions = |path: &str| {
        let mut ids: Vec<String> = calls(&requests, path)
            .iter()
            .map(|r| r.header(EXECUTION_ID).unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids
    };
    let charged = executions("/charge");
    assert_eq!(charged.len(), 20);
    assert_eq!(executions("/refund"), charged, "every charge refunded, once, under its execution id");
    assert_eq!(executions("/release"), charged);
    assert!(calls(&requests, "/orders").is_empty(), "nothing new starts once the client has gone");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.requests().len(), 80);
}

#[tokio::test]
async fn compensations_pending_when_envoy_stops_are_on_record_for_replay() {
    let upstream = shop(Shop {
        charge_delay: Duration::ZERO,
        order_status: 500,
        refund: |_| Reply::json(500, json!({ "message": "refunds are down" })),
        release: |_| ok_receipt("release"),
    });
    let envoy = envoy(&upstream, &[]).await;
    assert_eq!(checkout(&envoy, "s1").await.status(), 500);
    // The refund failed once and waits for its backoff when Envoy is told to stop.
    upstream.wait_for_requests(4, Duration::from_secs(5)).await;
    let quit = http_client().post(envoy.admin_url("/quitquitquit")).send().await.unwrap();
    assert_eq!(quit.status(), 200);
    let log = envoy.wait_for_log("`charge` is not compensated yet", Duration::from_secs(5)).await.unwrap();
    let line = log.lines().find(|l| l.contains("`charge` is not compensated yet")).unwrap();
    let replay: serde_json::Value =
        serde_json::from_str(line.split("replay: ").nth(1).unwrap().trim()).unwrap();
    assert_eq!(replay["path"], "/refund");
    assert_eq!(replay["body"], r#"{"id":"s1","amount_cents":4200}"#);
    let charge = calls(&upstream.requests(), "/charge")[0].header(EXECUTION_ID).unwrap().to_string();
    assert_eq!(replay["execution"], charge);
    // The hold, not compensated either (it comes after the refund), is on record too.
    assert!(log.contains("`reserve` is not compensated yet"), "{log}");
}

#[tokio::test]
async fn compensations_pending_when_the_listener_drains_still_finish() {
    let upstream = shop(Shop {
        charge_delay: Duration::ZERO,
        order_status: 500,
        refund: |n| {
            if n < 1 {
                Reply::json(503, json!({ "message": "refunds are down" }))
            } else {
                ok_receipt("refund")
            }
        },
        release: |_| ok_receipt("release"),
    });
    let envoy = envoy(&upstream, &[]).await;
    assert_eq!(checkout(&envoy, "d1").await.status(), 500);
    upstream.wait_for_requests(4, Duration::from_secs(5)).await;
    // The refund waits for its retry while the listener drains: no new requests come in, the
    // compensations still finish.
    let drain = http_client().post(envoy.admin_url("/drain_listeners?graceful")).send().await.unwrap();
    assert_eq!(drain.status(), 200);
    let requests = upstream.wait_for_requests(6, Duration::from_secs(10)).await;
    assert_eq!(calls(&requests, "/refund").len(), 2, "{requests:#?}");
    assert_eq!(calls(&requests, "/release").len(), 1);
    envoy.wait_for_log("compensated `reserve`", Duration::from_secs(5)).await.unwrap();
}
