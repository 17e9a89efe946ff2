//! The success path of the flow language, run by the real filter in a real Envoy against real
//! upstream servers: scheduling, input, templates, functions, conditions, resource kinds,
//! codecs, gRPC and trace context.

use std::time::Duration;

use base64::Engine as _;
use prost::Message;
use semaphore_e2e::{http_client, start_semaphore, Reply, Upstream};
use serde_json::{json, Value};

fn jwt(claims: Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{}.{}.signature", encode(br#"{"alg":"none"}"#), encode(claims.to_string().as_bytes()))
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_node_starts_the_moment_its_dependency_completes() {
    let a = Upstream::builder()
        .route("GET", "/users/{id}", |r| {
            Reply::json(200, json!({"id": r.param("id"), "name": "Ada"})).delay(Duration::from_millis(100))
        })
        .start();
    let b = Upstream::builder()
        .route("POST", "/audit", |_| Reply::json(200, json!({"id": "b-1"})).delay(Duration::from_millis(300)))
        .start();
    let c = Upstream::builder()
        .route("POST", "/echo", |r| {
            Reply::json(200, r.body_json().unwrap()).delay(Duration::from_millis(100))
        })
        .start();
    let envoy = start_semaphore(
        "tests/fixtures/runtime/schedule.hcl",
        &[("rt.Users", a.addr()), ("rt.Audit", b.addr()), ("rt.Echo", c.addr())],
    )
    .await
    .unwrap();

    let response = http_client().get(envoy.url("/schedule/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"id":"a-1","greeting":"Ada","audit":"b-1"}"#);

    let (a, b, c) = (&a.requests()[0], &b.requests()[0], &c.requests()[0]);
    assert_eq!(c.body_json().unwrap(), json!({"s": "Ada"}), "C is built from A's response");
    assert!(c.received_at >= a.received_at + Duration::from_millis(100), "C waits for A");
    // B answers 300 ms after it arrived; C must have started well before that, as soon as A
    // answered, not after the level of A and B was complete.
    let c_after_b = c.received_at.duration_since(b.received_at);
    assert!(c_after_b < Duration::from_millis(250), "C started {c_after_b:?} after B, before B completed");
}

#[tokio::test]
async fn every_template_function_condition_and_resource_kind() {
    let users = Upstream::builder()
        .route("GET", "/users/{id}", |_| {
            Reply::json(
                200,
                json!({
                    "id": "42", "name": "Ada", "visits": "12", "active": true, "tier": "GOLD",
                    "address": {"street": "1 Main", "city": "London"},
                    "orders": [{"sku": "x1", "quantity": 2, "price": 2.5}, {"sku": "x2", "quantity": 3, "price": 2.5}]
                }),
            )
            .header("etag", "v1")
        })
        .start();
    let echo =
        Upstream::builder().route("POST", "/echo", |r| Reply::json(200, r.body_json().unwrap())).start();
    let audit = Upstream::builder().route("POST", "/audit", |_| json!({"id": "audit-1"})).start();
    let envoy = start_semaphore(
        "tests/fixtures/runtime/features.hcl",
        &[("rt.Users", users.addr()), ("rt.Echo", echo.addr()), ("rt.Audit", audit.addr())],
    )
    .await
    .unwrap();

    let response = http_client()
        .post(envoy.url("/views/42/a/b/c?limit=5&tags=a&tags=b"))
        .header("Authorization", format!("Bearer {}", jwt(json!({"sub": "ada"}))))
        .header("x-TENANT", "ACME")
        .header("traceparent", TRACEPARENT)
        .json(&json!({"kind": "none", "unknown": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "the endpoint's status");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-user"], "Ada");
    assert_eq!(response.headers()["x-etag"], "v1", "a response header of a resource");
    let literals = json!({
        "s": "text", "i32": -7, "i64": 9007199254740993i64, "u32": 7, "u64": 18446744073709551615u64,
        "d": 2.5, "f": 1.25, "b": true, "tier": "GOLD", "raw": "aGk=", "s32": -3, "f64": 42
    });
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "id": "42",
            "greeting": "Hello ADA from London",
            "visits": 12,
            "path": "a/b/c",
            "lines": [{"sku": "x1", "total": 5.0}, {"sku": "x2", "total": 7.5}],
            "profile": {"name": "Ada", "visits": 13},
            "address": {"street": "1 Main", "city": "London"},
            "requested": "42",
            "param": "42-acme",
            "audit": "audit-1",
            "sub": "ada",
            "literals": literals,
            "tenant": "acme",
            "tags": ["a", "b"],
            "limit": 5
        }),
        "`skipped` is absent: its condition was false"
    );

    let user_calls = users.requests();
    assert_eq!(user_calls.len(), 1);
    let user = &user_calls[0];
    assert_eq!((user.method.as_str(), user.path.as_str()), ("GET", "/users/42-acme"), "params fill the path");
    assert_eq!(
        user.query.as_deref(),
        Some("limit=5&tags=a&tags=b"),
        "the rest of a GET's request is its query"
    );
    assert_eq!(user.header("authorization"), Some("Bearer ada"));
    assert_eq!(user.header("x-tenant"), Some("acme"));
    assert_eq!(user.header("host"), Some("users.rt.svc:8080"));
    assert_eq!(user.header("traceparent"), Some(TRACEPARENT));

    let echo_calls = echo.requests();
    assert_eq!(echo_calls.len(), 1);
    assert_eq!(echo_calls[0].body_json().unwrap(), literals, "a literal of every scalar type");
    assert_eq!(echo_calls[0].header("traceparent"), Some(TRACEPARENT));

    let audit_calls = audit.requests();
    assert_eq!(audit_calls.len(), 1, "the false condition skipped the second audit: {audit_calls:#?}");
    assert_eq!(audit_calls[0].body_json().unwrap(), json!({"user": "42", "note": "Ada has 2 orders"}));
    assert!(audit_calls[0].received_at >= echo_calls[0].received_at, "depends_on waits for echo");
}

#[tokio::test]
async fn input_that_does_not_fit_the_schema_is_a_400_naming_the_field() {
    let users = Upstream::builder().start();
    let envoy =
        start_semaphore("tests/fixtures/runtime/features.hcl", &[("rt.Users", users.addr())]).await.unwrap();

    let response =
        http_client().post(envoy.url("/views/42/x?limit=5.5")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "invalid request: field `limit`: expected an integer (int32), found \"5.5\"", "status": 400})
    );
    let response = http_client()
        .post(envoy.url("/views/42/x"))
        .json(&json!({"tags": "not a list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["message"],
        json!("invalid request body: field `tags`: expected a list, found \"not a list\"")
    );
    assert!(users.requests().is_empty());
}

#[derive(Clone, PartialEq, Message)]
struct Lookup {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(int32, tag = "2")]
    limit: i32,
    #[prost(string, repeated, tag = "3")]
    tags: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct User {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(int64, tag = "3")]
    visits: i64,
}

#[derive(Clone, PartialEq, Message)]
struct View {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    greeting: String,
    #[prost(int64, tag = "3")]
    visits: i64,
    #[prost(string, tag = "10")]
    audit: String,
    #[prost(string, repeated, tag = "15")]
    tags: Vec<String>,
}

#[tokio::test]
async fn protobuf_and_form_codecs_both_ways() {
    let users = Upstream::builder()
        .route("GET", "/users/{id}", |r| {
            let user = User {
                id: r.param("id").unwrap_or_default().into(),
                name: "Ada".into(),
                visits: 9_000_000_000,
            };
            Reply::status(200).header("content-type", "application/protobuf").body(user.encode_to_vec())
        })
        .start();
    let audit = Upstream::builder()
        .route("POST", "/audit", |_| {
            Reply::text(200, "id=audit-7&ignored=1")
                .header("content-type", "application/x-www-form-urlencoded")
        })
        .start();
    let envoy = start_semaphore(
        "tests/fixtures/runtime/codecs.hcl",
        &[("rt.Users", users.addr()), ("rt.Audit", audit.addr())],
    )
    .await
    .unwrap();

    let lookup = Lookup { id: "7".into(), limit: 3, tags: vec!["p".into(), "q".into()] };
    let response = http_client()
        .post(envoy.url("/codecs"))
        .header("content-type", "application/protobuf")
        .body(lookup.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/protobuf");
    let view = View::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        view,
        View {
            id: "7".into(),
            greeting: String::new(),
            visits: 9_000_000_000,
            audit: "audit-7".into(),
            tags: vec!["p".into(), "q".into()]
        }
    );

    let user = &users.requests()[0];
    assert_eq!((user.path.as_str(), user.query.as_deref()), ("/users/7", Some("limit=3")));
    assert_eq!(user.header("accept"), Some("application/protobuf"));
    let audit = &audit.requests()[0];
    assert_eq!(audit.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(audit.body_text(), "user=Ada&note=9000000000+visits");
}

#[tokio::test]
async fn grpc_upstreams_are_called_through_envoys_grpc_client() {
    let greeter = Upstream::builder()
        .grpc("rt.Greeter", "Hello", |message| {
            let lookup = Lookup::decode(message).map_err(|e| (3, e.to_string()))?;
            if lookup.id == "missing" {
                return Err((5, "no such user".into()));
            }
            Ok(User { id: lookup.id, name: format!("Ada ({})", lookup.limit), visits: 3 }.encode_to_vec())
        })
        .start();
    let envoy =
        start_semaphore("tests/fixtures/runtime/grpc.hcl", &[("rt.Greeter", greeter.addr())]).await.unwrap();

    let response = http_client()
        .get(envoy.url("/greet/7"))
        .header("X-Tenant", "acme")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"id":"7","greeting":"Hello Ada (3)","visits":3}"#);

    let calls = greeter.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].method.as_str(), calls[0].path.as_str()), ("POST", "/rt.Greeter/Hello"));
    assert_eq!(calls[0].header("content-type"), Some("application/grpc"));
    assert_eq!(calls[0].header("host"), Some("greeter.rt.svc:50051"), "the service host is the authority");
    assert_eq!(calls[0].header("x-tenant"), Some("acme"));
    assert_eq!(calls[0].header("traceparent"), Some(TRACEPARENT));

    let response = http_client().get(envoy.url("/greet/missing")).send().await.unwrap();
    assert_eq!(response.status(), 404, "NOT_FOUND maps to 404");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "resource `hello`: upstream answered 404: no such user", "status": 404})
    );
}

#[tokio::test]
async fn the_remaining_functions() {
    let envoy = start_semaphore("tests/fixtures/runtime/functions.hcl", &[]).await.unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let input = json!({
        "id": "7", "name": "Ada", "visits": 3, "active": true, "tier": "GOLD",
        "address": {"street": "Main St", "city": "LONDON"}, "orders": [{}, {}]
    });
    let first: Value =
        http_client().post(envoy.url("/functions")).json(&input).send().await.unwrap().json().await.unwrap();
    let second: Value =
        http_client().post(envoy.url("/functions")).json(&input).send().await.unwrap().json().await.unwrap();

    let uuid = first["id"].as_str().unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(&uuid[14..15], "4", "a version 4 UUID: {uuid}");
    assert_ne!(first["id"], second["id"], "a new UUID per call");
    let now = first["visits"].as_u64().unwrap();
    assert!((before..before + 60).contains(&now), "now() is the Unix time in seconds: {now}");

    let mut fixed = first.as_object().unwrap().clone();
    fixed.remove("id");
    fixed.remove("visits");
    assert_eq!(
        Value::Object(fixed),
        json!({
            "greeting": "Ada-7-true",
            "path": "QWRh",
            "audit": "semaphore",
            "param": "{\"city\":\"LONDON\",\"street\":\"Main St\"}",
            "sub": "london-MAIN ST",
            "limit": 21,
            "tenant": "Ada/3/\"GOLD\""
        })
    );
}
