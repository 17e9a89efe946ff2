//! Proxies in a real Envoy: the resources run first, then the original request goes on to the
//! forward service through Envoy's router, its body streamed and never decoded, its answer
//! returned to the client as it is.

use std::time::{Duration, Instant};

use semaphore_compiler::envoy::{append_routes, bootstrap, insert_before_router, EnvoyOptions};
use semaphore_e2e::{http_client, start_semaphore, wasm_path, workspace_root, Envoy, Reply, Upstream};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROXY: &str = "tests/fixtures/proxy/config.hcl";
const FORWARD_CLUSTER_HEADER: &str = "x-semaphore-forward-cluster";
/// The clusters the generated bootstrap names after the services' hosts.
const AUTH_CLUSTER: &str = "auth.files.svc:8080";
const BLOBS_CLUSTER: &str = "blobs.files.svc:8080";
/// How long the auth service takes to answer, so that the order of arrivals tells.
const AUTH_DELAY: Duration = Duration::from_millis(200);

/// `files.Auth`: `Bearer good` is ada with scope `write`, `Bearer read-only` is bob with no
/// scope, anything else is refused with 401.
fn auth() -> Upstream {
    Upstream::builder()
        .route("POST", "/check", |request| {
            let token = request.body_json().ok().and_then(|b| b["token"].as_str().map(str::to_string));
            let reply = match token.as_deref() {
                Some("Bearer good") => Reply::json(200, json!({"user": "ada", "scope": "write"})),
                Some("Bearer read-only") => Reply::json(200, json!({"user": "bob"})),
                _ => Reply::json(401, json!({"message": "bad token"})),
            };
            reply.delay(AUTH_DELAY)
        })
        .start()
}

/// `files.Blobs`: stores anything and says how much, in an answer of its own making.
fn blobs() -> Upstream {
    let stored = |request: &semaphore_e2e::RecordedRequest| {
        Reply::text(201, format!("stored {} bytes", request.body.len()))
            .header("x-blob-id", "b-1")
            .header("cache-control", "no-store")
    };
    Upstream::builder()
        .route("ANY", "/blobs/{*path}", stored)
        .route("ANY", "/public/{*path}", |_| {
            Reply::status(200).header("content-type", "image/png").body(b"\x89PNG...".to_vec())
        })
        .route("ANY", "/files", |_| Reply::text(200, "the file list"))
        .route("ANY", "/other", stored)
        .start()
}

async fn proxy(auth: &Upstream, blobs: &Upstream) -> Envoy {
    start_semaphore(PROXY, &[("files.Auth", auth.addr()), ("files.Blobs", blobs.addr())]).await.unwrap()
}

/// The bootstrap `semaphore envoy` writes for the proxy fixture, for a test to add to.
fn proxy_bootstrap(auth: &Upstream, blobs: &Upstream) -> String {
    let compiled = semaphore_compiler::compile_file(&workspace_root().join(PROXY)).unwrap();
    let options = EnvoyOptions {
        wasm: wasm_path(),
        listen: Some("127.0.0.1:0".into()),
        admin: "127.0.0.1:0".into(),
        upstream_overrides: [("files.Auth", auth.addr()), ("files.Blobs", blobs.addr())]
            .into_iter()
            .map(|(service, addr)| (service.to_string(), addr.to_string()))
            .collect(),
        ..Default::default()
    };
    bootstrap(&compiled, &options)
}

/// Bytes no codec would take for a message: every value, in an order of no pattern.
fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

async fn counter(envoy: &Envoy, name: &str) -> Option<u64> {
    envoy.stat(&format!("wasmcustom.{name}")).await
}

#[tokio::test]
async fn the_original_request_goes_on_after_the_resources_with_the_proxys_headers_and_path() {
    let (auth, blobs) = (auth(), blobs());
    let envoy = proxy(&auth, &blobs).await;
    let body = payload(1_000_000);

    let response = http_client()
        .post(envoy.url("/files/reports/2024/q1.bin?version=3&mode=a%20b"))
        .header("authorization", "Bearer good")
        .header("content-type", "application/octet-stream")
        .header("x-client", "e2e")
        .header("x-user", "mallory")
        .body(body.clone())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 201, "the forward service's status");
    assert_eq!(response.headers()["x-blob-id"], "b-1");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(response.text().await.unwrap(), "stored 1000000 bytes");

    let forwarded = blobs.requests();
    assert_eq!(forwarded.len(), 1);
    let forwarded = &forwarded[0];
    assert_eq!(forwarded.method, "POST");
    assert_eq!(forwarded.path, "/blobs/reports/2024/q1.bin", "rewritten by the second rule");
    assert_eq!(forwarded.query.as_deref(), Some("version=3&mode=a%20b"));
    assert_eq!(forwarded.header("host"), Some(BLOBS_CLUSTER), "the service's authority");
    for (name, value) in [
        ("authorization", "Bearer good"),
        ("content-type", "application/octet-stream"),
        ("x-client", "e2e"),
        ("content-length", "1000000"),
        ("x-scope", "write"),
    ] {
        assert_eq!(forwarded.header(name), Some(value), "{name}");
    }
    let users: Vec<&str> =
        forwarded.headers.iter().filter(|(name, _)| name == "x-user").map(|(_, v)| v.as_str()).collect();
    assert_eq!(users, ["ada"], "the proxy's header replaces the client's");
    assert_eq!(forwarded.header(FORWARD_CLUSTER_HEADER), None, "the routing header stays in Envoy");
    assert!(forwarded.body == body, "the body arrives byte for byte");

    let checks = auth.requests();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].body_json().unwrap(), json!({"token": "Bearer good"}));
    assert!(
        forwarded.received_at >= checks[0].received_at + AUTH_DELAY,
        "the request went on only once the resource had answered"
    );

    assert_eq!(counter(&envoy, "semaphore.flow.files.requests").await, Some(1));
    assert_eq!(counter(&envoy, "semaphore.flow.files.failures").await, Some(0));
    assert_eq!(counter(&envoy, "semaphore.flow.files.resource.auth.calls").await, Some(1));
}

#[tokio::test]
async fn the_first_matching_rule_rewrites_and_no_match_keeps_the_path() {
    let (auth, blobs) = (auth(), blobs());
    let envoy = proxy(&auth, &blobs).await;

    let response = http_client()
        .get(envoy.url("/files/public/logo.png"))
        .header("authorization", "Bearer read-only")
        .header("x-scope", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"\x89PNG...");

    let response =
        http_client().get(envoy.url("/files")).header("authorization", "Bearer good").send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "the file list");

    let forwarded = blobs.requests();
    let paths: Vec<(&str, &str)> = forwarded.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(paths, [("GET", "/public/logo.png"), ("GET", "/files")]);
    assert_eq!(forwarded[0].header("x-user"), Some("bob"));
    assert_eq!(
        forwarded[0].header("x-scope"),
        None,
        "a proxy header whose value is absent is left out, and the client's is removed"
    );
}

#[tokio::test]
async fn a_failing_resource_answers_the_proxys_error_and_the_forward_service_sees_nothing() {
    let (auth, blobs) = (auth(), blobs());
    let envoy = proxy(&auth, &blobs).await;

    let response = http_client()
        .post(envoy.url("/files/secret.txt"))
        .header("authorization", "Bearer stolen")
        .body(payload(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the resource's status");
    assert_eq!(response.headers()["x-problem"], "denied");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "resource `auth`: upstream answered 401: bad token", "status": 401})
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(blobs.requests().is_empty(), "{:#?}", blobs.requests());
    assert_eq!(counter(&envoy, "semaphore.flow.files.failures").await, Some(1));

    // The VM is unharmed: the next request goes on.
    let response =
        http_client().get(envoy.url("/files/a")).header("authorization", "Bearer good").send().await.unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_client_cannot_pick_the_cluster_a_request_goes_to() {
    let (auth, blobs) = (auth(), blobs());
    let envoy = proxy(&auth, &blobs).await;

    // Matching no endpoint, the request would reach the auth service if the header stayed.
    let response = http_client()
        .post(envoy.url("/check"))
        .header(FORWARD_CLUSTER_HEADER, AUTH_CLUSTER)
        .json(&json!({"token": "Bearer good"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "the router has no route for it");
    assert_eq!(response.text().await.unwrap(), "");

    // A proxy's request goes to the proxy's service whatever the client named.
    let response = http_client()
        .get(envoy.url("/files/a"))
        .header("authorization", "Bearer good")
        .header(FORWARD_CLUSTER_HEADER, AUTH_CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let checks: Vec<String> = auth.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(checks, ["/check"], "only the proxy's own resource call");
    let forwarded = blobs.requests();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].header(FORWARD_CLUSTER_HEADER), None);
}

#[tokio::test]
async fn requests_no_endpoint_matches_reach_envoys_router_untouched() {
    let (auth, blobs) = (auth(), blobs());
    // An operator's own route, beside the generated one: `/other` goes to the blobs cluster.
    let other = format!("- match: {{ prefix: /other }}\n  route: {{ cluster: \"{BLOBS_CLUSTER}\" }}\n");
    let envoy = Envoy::start(&append_routes(&proxy_bootstrap(&auth, &blobs), &other).unwrap()).await.unwrap();

    let response = http_client()
        .put(envoy.url("/other?q=1"))
        .header("authorization", "Bearer stolen")
        .header("x-user", "mallory")
        .body("as sent")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), "stored 7 bytes");

    // Same path as a proxy endpoint, but a method none serves: 405, and nothing goes upstream.
    let response = http_client().put(envoy.url("/files/a")).body("x").send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST, GET");

    assert!(auth.requests().is_empty(), "no resource ran: {:#?}", auth.requests());
    let passed = blobs.requests();
    assert_eq!(passed.len(), 1);
    let passed = &passed[0];
    assert_eq!((passed.method.as_str(), passed.path.as_str()), ("PUT", "/other"));
    assert_eq!(passed.query.as_deref(), Some("q=1"));
    assert_eq!(passed.header("x-user"), Some("mallory"));
    assert_eq!(passed.header("authorization"), Some("Bearer stolen"));
    assert_ne!(passed.header("host"), Some(BLOBS_CLUSTER), "the client's authority stays");
    assert_eq!(passed.body, b"as sent");
}

/// Envoy holds at most its buffer limit (1 MiB per connection by default) of a body while a
/// proxy's resources run, and answers 413 past it; once the request goes on, the body streams.
/// This request sends a little first, and three times the limit only after the resource has
/// answered: all of it arrives.
#[tokio::test]
async fn once_forwarded_the_body_streams_past_envoys_buffer_limit() {
    // Envoy 1.36 forwards what arrived before the resources settled, not what comes after
    // (envoy/README.md, "Envoy versions").
    if semaphore_e2e::envoy_version() < (1, 37) {
        eprintln!("skipped on Envoy {:?}", semaphore_e2e::envoy_version());
        return;
    }
    let (auth, blobs) = (auth(), blobs());
    let envoy = proxy(&auth, &blobs).await;
    assert!(
        went_on_past_the_buffer_limit(&envoy, &auth, &blobs).await,
        "it went on before the rest of the body was sent"
    );
}

/// Sends a little of a 3 MiB body, and the rest only after the proxy's resource has answered:
/// all of it arrives at the forward service, in order. Whether the request went on before the
/// rest of the body was sent.
async fn went_on_past_the_buffer_limit(envoy: &Envoy, auth: &Upstream, blobs: &Upstream) -> bool {
    let body = payload(3 * 1024 * 1024);
    let (first, rest) = body.split_at(16 * 1024);

    let address = envoy.url("").trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /files/big.bin HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer good\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();

    let checked = auth.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(checked.len(), 1, "the resource runs before the body is in");
    while Instant::now() < checked[0].received_at + AUTH_DELAY + Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(blobs.requests().is_empty(), "the forward service has not had all of the body yet");
    let rest_sent_at = Instant::now();
    stream.write_all(rest).await.unwrap();

    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.ends_with(&format!("stored {} bytes", body.len())), "{answer}");
    let forwarded = blobs.requests();
    assert!(forwarded[0].body == body, "every byte, in order");
    forwarded[0].received_at < rest_sent_at
}

/// A filter of the operator's after ours, here one that reads the whole body (Envoy's buffer
/// filter, up to 8 MiB): the proxy's body of many chunks, over 1 MiB, still reaches the forward
/// service byte for byte, once that filter has all of it.
#[tokio::test]
async fn the_body_arrives_whole_with_another_filter_after_ours() {
    if semaphore_e2e::envoy_version() < (1, 37) {
        eprintln!("skipped on Envoy {:?}", semaphore_e2e::envoy_version());
        return;
    }
    let (auth, blobs) = (auth(), blobs());
    let buffer = "
- name: envoy.filters.http.buffer
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
    max_request_bytes: 8388608
";
    let envoy =
        Envoy::start(&insert_before_router(&proxy_bootstrap(&auth, &blobs), buffer).unwrap()).await.unwrap();
    assert!(
        !went_on_past_the_buffer_limit(&envoy, &auth, &blobs).await,
        "the buffer filter holds the request until the whole body is in"
    );
}
