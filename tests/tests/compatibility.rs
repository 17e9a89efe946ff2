//! Configurations as Semaphore users bring them (`tests/fixtures/compat`), compiled unchanged and
//! run by the real filter in a real Envoy, answering as Semaphore answered.

use semaphore_e2e::{http_client, start_semaphore, Reply, Upstream};
use serde_json::{json, Value};

#[tokio::test]
async fn the_introductions_getuser_runs_on_its_maestro_proto() {
    let users = Upstream::builder()
        .route("GET", "/user/{id}", |r| {
            Reply::json(200, json!({"name": format!("user {}", r.param("id").unwrap_or(""))}))
        })
        .start();
    let envoy = start_semaphore("tests/fixtures/compat/seed000/config.hcl", &[("proto.Users", users.addr())])
        .await
        .unwrap();

    let response = http_client().get(envoy.url("/user/7")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"name":"user 7"}"#);
    let requests = users.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("GET", "/user/7"));
}

/// Both services of the todo configuration, as `jsonplaceholder` answers them.
fn todos() -> Upstream {
    Upstream::builder()
        .route("GET", "/todos/1", |_| {
            Reply::json(
                200,
                json!({"userId": 1, "id": 1, "title": "delectus aut autem", "completed": false, "views": "9007199254740993"}),
            )
        })
        .route("GET", "/users/1", |_| Reply::json(200, json!({"id": 1, "name": "Leanne Graham", "username": "Bret"})))
        .start()
}

#[tokio::test]
async fn scoped_option_names_and_a_message_defined_twice_compile_and_answer() {
    let upstream = todos();
    let services = [("com.semaphore.Todos", upstream.addr()), ("com.semaphore.People", upstream.addr())];
    let envoy = start_semaphore("tests/fixtures/compat/todo/config.hcl", &services).await.unwrap();

    let response = http_client().get(envoy.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["owner"], "Bret");
    // 64-bit integers are JSON numbers, exact beyond 2^53.
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":1,"title":"delectus aut autem","completed":false,"views":9007199254740993}"#
    );
    let mut paths: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, ["/todos/1", "/users/1"]);
}

#[tokio::test]
async fn a_method_an_endpoint_does_not_serve_is_405_with_allow() {
    let upstream = todos();
    let services = [("com.semaphore.Todos", upstream.addr()), ("com.semaphore.People", upstream.addr())];
    let envoy = start_semaphore("tests/fixtures/compat/todo/config.hcl", &services).await.unwrap();

    let response = http_client().post(envoy.url("/?page=2")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"POST is not allowed on /; allowed: GET","status":405}"#
    );
    assert!(upstream.requests().is_empty(), "no flow ran");

    // Paths no endpoint serves still go on to Envoy's router (which has no route: 404).
    let response = http_client().post(envoy.url("/elsewhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn sprintf_formats_every_verb_and_absent_values_as_their_defaults() {
    let envoy = start_semaphore("tests/fixtures/compat/functions/config.hcl", &[]).await.unwrap();
    let post = |path: &str, body: Value| http_client().post(envoy.url(path)).json(&body).send();

    let response = post("/greet", json!({"name": "Ada", "topic": "engines"})).await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Hello Ada, about engines?"}"#);

    let response = post("/age", json!({"name": "Ada", "years": 36, "share": 36.0})).await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Ada is 36 years old, 36.0% of a century"}"#);
    // Absent, the integer and the number are their proto3 default, 0, and the text is empty.
    let response = post("/age", json!({})).await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":" is 0 years old, 0.0% of a century"}"#);

    let details = json!({"city": "London", "visits": 12, "verified": true, "scores": [3, 1]});
    let response = post("/profile", json!({"name": "Ada", "details": details})).await.unwrap();
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    let json_part = message.strip_prefix("Ada sent ").unwrap();
    assert_eq!(serde_json::from_str::<Value>(json_part).unwrap(), details, "{message}");
    // An absent message is `{}`.
    let response = post("/profile", json!({"name": "Ada"})).await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Ada sent {}"}"#);
}

#[tokio::test]
async fn error_objects_carry_their_int64_status_as_a_number() {
    let upstream = Upstream::builder()
        .route("GET", "/404", |_| Reply::json(404, json!({"message": "nothing here"})))
        .start();
    let envoy =
        start_semaphore("tests/fixtures/compat/errors/config.hcl", &[("proto.Service", upstream.addr())])
            .await
            .unwrap();

    for (path, status, message) in [
        ("/", 401, "global error message"),
        ("/flow", 403, "flow error message"),
        ("/flow/node", 409, "node error message"),
    ] {
        let response = http_client().get(envoy.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.text().await.unwrap(),
            format!(r#"{{"message":"{message}","status":{status}}}"#),
            "{path}"
        );
    }
    assert_eq!(upstream.requests().len(), 3);
}

/// Semaphore's gRPC example (`examples/grpc/gateway`): one flow as `POST /` in JSON and as the
/// gRPC method `semaphore.greeter.Say/Hello`, which it serves under the name of the upstream
/// service it calls, also on the listener of its `grpc { address }`. A gRPC client calls it
/// through Envoy; the upstream is a gRPC server.
#[tokio::test]
async fn semaphores_grpc_example_answers_over_http_and_grpc() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Request {
        #[prost(string, tag = "1")]
        name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Meta {
        #[prost(int64, tag = "1")]
        session: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Response {
        #[prost(string, tag = "1")]
        msg: String,
        #[prost(message, optional, tag = "4")]
        meta: Option<Meta>,
    }
    let say = Upstream::builder()
        .grpc("semaphore.greeter.Say", "Hello", |message| {
            let request = <Request as prost::Message>::decode(message).map_err(|e| (3, e.to_string()))?;
            let response = Response {
                msg: format!("Hello {}", request.name),
                meta: Some(Meta { session: 1_700_000_000 }),
            };
            Ok(prost::Message::encode_to_vec(&response))
        })
        .start();
    let envoy =
        start_semaphore("tests/fixtures/compat/grpc/config.hcl", &[("semaphore.greeter.Say", say.addr())])
            .await
            .unwrap();

    let response = http_client().post(envoy.url("/")).json(&json!({ "name": "world" })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"msg":"Hello world","meta":{"session":1700000000}}"#);

    // On the first listener, and on the one of `grpc { address }`, where the daemon served gRPC.
    let hello = |base: String, name: &'static str| async move {
        let channel = tonic::transport::Channel::from_shared(base).unwrap().connect().await.unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<Request, Response>::default();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/semaphore.greeter.Say/Hello");
        grpc.unary(tonic::Request::new(Request { name: name.into() }), path, codec)
            .await
            .unwrap()
            .into_inner()
    };
    let expected = |msg: &str| Response { msg: msg.into(), meta: Some(Meta { session: 1_700_000_000 }) };
    assert_eq!(hello(envoy.url(""), "Ada").await, expected("Hello Ada"));
    assert_eq!(hello(envoy.listener_url("grpc", ""), "Alan").await, expected("Hello Alan"));

    let calls: Vec<String> = say.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(calls, ["POST /semaphore.greeter.Say/Hello"; 3]);
}

#[tokio::test]
async fn semaphores_graphql_example_answers_on_any_path_of_its_listener() {
    let todos = Upstream::builder()
        .route("GET", "/todos/{id}", |request| {
            let id: i64 = request.param("id").unwrap_or_default().parse().unwrap_or_default();
            let title = if id == 1 { "delectus aut autem" } else { "quis ut nam facilis et officia qui" };
            Reply::json(200, json!({"userId": 1, "id": id, "title": title, "completed": false}))
        })
        .start();
    let envoy =
        start_semaphore("tests/fixtures/compat/graphql/config.hcl", &[("com.semaphore.Todo", todos.addr())])
            .await
            .unwrap();
    // The query of the example's README.
    let query = json!({"query": "{latest{todo{id title completed}}todo(id:\"2\"){title}}"});
    let expected = r#"{"data":{"latest":{"todo":{"id":1,"title":"delectus aut autem","completed":false}},"todo":{"title":"quis ut nam facilis et officia qui"}}}"#;

    for url in [
        envoy.listener_url("graphql", "/"),
        envoy.listener_url("graphql", "/any/path"),
        envoy.url("/graphql"),
    ] {
        let response = http_client().post(&url).json(&query).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.text().await.unwrap(), expected, "{url}");
    }
    // Elsewhere on the first listener, paths are Envoy's router's, even for a client that
    // marks its request as the GraphQL listener does.
    let response = http_client().post(envoy.url("/")).json(&query).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = http_client()
        .post(envoy.url("/"))
        .header("x-semaphore-graphql-listener", "true")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // The GraphQL listener takes GET and POST.
    let response = http_client().delete(envoy.listener_url("graphql", "/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST, GET");
    assert_eq!(todos.requests().len(), 6);
}
