//! The bundled getuser example, compiled from its own files, run by the real filter in a real
//! Envoy against an upstream serving the example's users.

use std::time::Duration;

use example_upstream::getuser;
use semaphore_e2e::{http_client, start_semaphore, Upstream};
use serde_json::{json, Value};

/// The example's own upstream (what `example-upstream getuser` serves), on a port of its own.
fn users_upstream() -> Upstream {
    let users = getuser::load_users(&getuser::default_data_path()).expect("the example's users");
    Upstream::serve(getuser::router(users))
}

#[tokio::test]
async fn answers_the_users_name_from_the_upstream() {
    let upstream = users_upstream();
    let envoy =
        start_semaphore("examples/getuser/config.hcl", &[("proto.Users", upstream.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/user/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"name":"Ada Lovelace"}"#);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/user/1");
    assert_eq!(requests[0].query, None, "the id went into the path, nothing is left for the query");
    assert_eq!(requests[0].header("host"), Some("127.0.0.1:9090"), "the service host is the authority");
    assert_eq!(requests[0].header("accept"), Some("application/json"));
}

#[tokio::test]
async fn an_unknown_user_is_the_upstreams_404() {
    let upstream = users_upstream();
    let envoy =
        start_semaphore("examples/getuser/config.hcl", &[("proto.Users", upstream.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/user/42")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "message": "resource `user`: upstream answered 404: user 42 not found", "status": 404 })
    );

    // The VM is unharmed: the next request is served.
    let response = http_client().get(envoy.url("/user/2")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"name":"Alan Turing"}"#);
}

#[tokio::test]
async fn requests_no_endpoint_matches_go_to_envoys_router() {
    let upstream = users_upstream();
    let envoy =
        start_semaphore("examples/getuser/config.hcl", &[("proto.Users", upstream.addr())]).await.unwrap();

    for (method, path) in
        [("GET", "/nothing"), ("GET", "/user"), ("GET", "/user/1/friends"), ("POST", "/users/1")]
    {
        let request = http_client().request(method.parse().unwrap(), envoy.url(path));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(response.headers().get("content-type"), None, "{method} {path}: the router's empty 404");
        assert_eq!(response.text().await.unwrap(), "", "{method} {path}");
    }
    // A path the endpoint serves, with a method it does not: 405, not the router's 404.
    let response = http_client().post(envoy.url("/user/1")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(envoy.stat("http.semaphore.downstream_rq_4xx").await, Some(5));
    assert!(upstream.requests().is_empty(), "{:#?}", upstream.requests());
}

#[tokio::test]
async fn path_parameters_stay_one_segment_upstream() {
    let upstream = users_upstream();
    let envoy =
        start_semaphore("examples/getuser/config.hcl", &[("proto.Users", upstream.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/user/..%2Fadmin%3Fx=1")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let requests = upstream.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(requests[0].path, "/user/..%2Fadmin%3Fx%3D1");
    assert_eq!(requests[0].query, None);
}
