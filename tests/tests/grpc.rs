//! gRPC endpoints, called by a real gRPC client (tonic) through the real filter in a real Envoy:
//! the answer's message, status and trailers, failures as gRPC codes, deadlines, unknown
//! methods, and the same flow over HTTP.

use std::time::{Duration, Instant};

use semaphore_e2e::users::{Role, User, UserQuery};
use semaphore_e2e::{http_client, start_semaphore, Envoy, Reply, Upstream};
use serde_json::json;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const CONFIG: &str = "tests/fixtures/grpc/config.hcl";
const GET_USER: &str = "/users.v1.Directory/GetUser";

/// The profiles upstream: user 7 exists, user `s<status>` answers that status.
fn profiles() -> Upstream {
    Upstream::builder()
        .route("GET", "/profiles/{id}", |request| {
            let id = request.param("id").unwrap_or_default().to_string();
            if id == "7" {
                return Reply::json(
                    200,
                    json!({
                        "id": "7", "name": "Ada", "visits": 9007199254740993u64,
                        "roles": ["author", "editor"], "role": "ADMIN", "email": "ada@example.com"
                    }),
                );
            }
            if let Some(status) = id.strip_prefix('s').and_then(|s| s.parse().ok()) {
                return Reply::json(status, json!({ "message": format!("status {status} for you") }));
            }
            if let Some(ms) = id.strip_prefix("slow").and_then(|s| s.parse().ok()) {
                return Reply::json(200, json!({ "id": id })).delay(Duration::from_millis(ms));
            }
            Reply::json(404, json!({ "message": format!("no user {id}") }))
        })
        .start()
}

async fn start(upstream: &Upstream) -> Envoy {
    start_semaphore(CONFIG, &[("users.v1.Profiles", upstream.addr())]).await.unwrap()
}

async fn client(envoy: &Envoy) -> tonic::client::Grpc<Channel> {
    let channel = Channel::from_shared(envoy.url("")).unwrap().connect().await.unwrap();
    tonic::client::Grpc::new(channel)
}

/// Calls `path` with `request`; the answer's message, or its status.
async fn call(
    grpc: &mut tonic::client::Grpc<Channel>,
    path: &'static str,
    request: Request<UserQuery>,
) -> Result<tonic::Response<User>, Status> {
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<UserQuery, User>::default();
    grpc.unary(request, PathAndQuery::from_static(path), codec).await
}

fn query(id: &str) -> Request<UserQuery> {
    Request::new(UserQuery { id: id.to_string() })
}

#[tokio::test]
async fn a_grpc_call_runs_the_flow_and_answers_its_message() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let mut grpc = client(&envoy).await;

    let response = call(&mut grpc, GET_USER, query("7")).await.unwrap();
    assert_eq!(
        response.get_ref(),
        &User {
            id: "7".into(),
            name: "Ada".into(),
            visits: 9007199254740993,
            roles: vec!["author".into(), "editor".into()],
            role: Role::Admin as i32,
        }
    );
    assert_eq!(response.metadata().get("content-type").unwrap(), "application/grpc");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("GET", "/profiles/7"));

    // The same flow over HTTP answers the same, in JSON.
    let response = http_client().get(envoy.url("/user/7")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":"7","name":"Ada","visits":9007199254740993,"roles":["author","editor"],"role":"ADMIN"}"#
    );
}

/// The answer on the wire, as a gRPC client reads it: HTTP/2, one message, then trailers with
/// the status and the output's headers as metadata.
#[tokio::test]
async fn the_answer_is_one_message_then_trailers() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let mut grpc = client(&envoy).await;

    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<UserQuery, User>::default();
    let response =
        grpc.server_streaming(query("7"), PathAndQuery::from_static(GET_USER), codec).await.unwrap();
    assert_eq!(response.metadata().get("content-length"), None, "a gRPC answer is framed, not sized");
    let mut stream = response.into_inner();
    let user = stream.message().await.unwrap().expect("one message");
    assert_eq!(user.name, "Ada");
    assert_eq!(stream.message().await.unwrap(), None, "only one message");
    let trailers = stream.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("x-served-by").unwrap(), "semaphore");
    assert_eq!(trailers.get("x-semaphore-grpc-trailer-grpc-status"), None);
}

#[tokio::test]
async fn failures_are_answered_with_their_grpc_code_and_message() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let mut grpc = client(&envoy).await;

    let status = call(&mut grpc, GET_USER, query("42")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "resource `profile`: upstream answered 404: no user 42");

    // Each HTTP status the flow fails with, as the gRPC code it stands for.
    for (http, code) in [
        (400, Code::InvalidArgument),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (409, Code::AlreadyExists),
        (429, Code::ResourceExhausted),
        (500, Code::Internal),
        (501, Code::Unimplemented),
        (503, Code::Unavailable),
        (504, Code::DeadlineExceeded),
        (418, Code::Unknown),
    ] {
        let status = call(&mut grpc, GET_USER, query(&format!("s{http}"))).await.unwrap_err();
        assert_eq!(status.code(), code, "{http}: {status:?}");
        assert_eq!(
            status.message(),
            format!("resource `profile`: upstream answered {http}: status {http} for you"),
            "{http}"
        );
    }
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let mut grpc = client(&envoy).await;

    grpc.ready().await.unwrap();
    // The string field `id` sent as a varint: its wire type is not the field's.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Varint {
        #[prost(int64, tag = "1")]
        id: i64,
    }
    let codec = tonic_prost::ProstCodec::<Varint, User>::default();
    let status = grpc
        .unary(Request::new(Varint { id: 3 }), PathAndQuery::from_static(GET_USER), codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("invalid request message"), "{status:?}");
    assert!(upstream.requests().is_empty(), "{:#?}", upstream.requests());
}

/// `grpc-timeout` is the flow's deadline. Sent by a plain HTTP/2 client: a gRPC client would
/// give up at the same moment, and this checks the server's answer.
#[tokio::test]
async fn grpc_timeout_bounds_the_flow() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let client = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();

    let message = prost::Message::encode_to_vec(&UserQuery { id: "slow3000".into() });
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let started = Instant::now();
    let response = client
        .post(envoy.url(GET_USER))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(body)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    // Trailers-only: the status is in the headers, and there is no message.
    assert_eq!(response.headers()["grpc-status"], "4", "{:?}", response.headers());
    // The call was cut at the deadline, and Envoy answered it 504.
    assert_eq!(response.headers()["grpc-message"], "resource `profile`: upstream answered 504");
    assert!(response.bytes().await.unwrap().is_empty());
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn unknown_methods_of_a_served_service_are_unimplemented() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let mut grpc = client(&envoy).await;

    let status = call(&mut grpc, "/users.v1.Directory/DeleteUser", query("7")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(status.message(), "unknown method /users.v1.Directory/DeleteUser");

    // A service no endpoint serves is Envoy's router's: no route, so Envoy's own answer.
    let status = call(&mut grpc, "/other.Service/GetUser", query("7")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(upstream.requests().is_empty(), "{:#?}", upstream.requests());

    // The VM lives on.
    assert_eq!(call(&mut grpc, GET_USER, query("7")).await.unwrap().get_ref().name, "Ada");
}

#[tokio::test]
async fn the_method_refuses_what_no_grpc_client_sends() {
    let upstream = profiles();
    let envoy = start(&upstream).await;

    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "text/plain")
        .body("7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.text().await.unwrap(),
        json!({
            "message": "/users.v1.Directory/GetUser is a gRPC method: it takes gRPC, gRPC-Web and Connect \
                        requests (`application/grpc`, `application/grpc-web`, `application/grpc-web-text`, \
                        `application/proto`, `application/json`)",
            "status": 415
        })
        .to_string()
    );
    // Nor can a client pass for the filter's own hop.
    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "application/x-semaphore-grpc")
        .body(vec![0, 0, 0, 0, 3, 10, 1, b'7'])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert!(upstream.requests().is_empty(), "{:#?}", upstream.requests());
}

/// gRPC-Web, binary: tonic's gRPC-Web client over HTTP/1.1, as a browser calls without a
/// proxy in between.
#[tokio::test]
async fn grpc_web_clients_call_the_method() {
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let origin = envoy.url("").parse().unwrap();
    let mut grpc = tonic::client::Grpc::with_origin(tonic_web::GrpcWebClientService::new(http), origin);

    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<UserQuery, User>::default();
    let response = grpc.unary(query("7"), PathAndQuery::from_static(GET_USER), codec).await.unwrap();
    assert_eq!(response.get_ref().name, "Ada");
    assert_eq!(response.get_ref().visits, 9007199254740993);
    assert_eq!(response.metadata().get("content-type").unwrap(), "application/grpc-web+proto");

    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<UserQuery, User>::default();
    let status = grpc.unary(query("42"), PathAndQuery::from_static(GET_USER), codec).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "resource `profile`: upstream answered 404: no user 42");

    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<UserQuery, User>::default();
    let status = grpc
        .unary(query("7"), PathAndQuery::from_static("/users.v1.Directory/Nope"), codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

fn framed(message: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// gRPC-Web's text form, as a browser client in `grpcwebtext` mode sends it: the whole body in
/// base64, the trailers as its last frame.
#[tokio::test]
async fn grpc_web_text_is_base64_both_ways() {
    use base64::Engine as _;
    let upstream = profiles();
    let envoy = start(&upstream).await;
    let base64 = base64::engine::general_purpose::STANDARD;

    let request = framed(&prost::Message::encode_to_vec(&UserQuery { id: "7".into() }));
    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .body(base64.encode(request))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc-web-text+proto");
    let body = base64.decode(response.bytes().await.unwrap()).unwrap();
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(body[0], 0, "a message first");
    let user: User = prost::Message::decode(&body[5..5 + length]).unwrap();
    assert_eq!(user.name, "Ada");
    let trailers = &body[5 + length..];
    assert_eq!(trailers[0], 0x80, "then the trailers");
    assert_eq!(&trailers[5..], b"grpc-status:0\r\nx-served-by:semaphore\r\n");
}

/// Connect unary: the bare message in JSON or protobuf, failures as JSON with an HTTP status.
#[tokio::test]
async fn connect_clients_call_the_method_in_json_and_protobuf() {
    let upstream = profiles();
    let envoy = start(&upstream).await;

    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(r#"{"id":"7"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["trailer-x-served-by"], "semaphore");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":"7","name":"Ada","visits":"9007199254740993","roles":["author","editor"],"role":"ADMIN"}"#
    );

    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(prost::Message::encode_to_vec(&UserQuery { id: "7".into() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let user: User = prost::Message::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(user.roles, ["author", "editor"]);

    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "application/json")
        .body(r#"{"id":"s429"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.text().await.unwrap(),
        json!({ "code": "resource_exhausted", "message": "resource `profile`: upstream answered 429: status 429 for you" })
            .to_string()
    );

    let response = http_client()
        .post(envoy.url(GET_USER))
        .header("content-type", "application/json")
        .header("connect-timeout-ms", "200")
        .body(r#"{"id":"slow3000"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "deadline_exceeded");
}

/// Server reflection, v1 and v1alpha, from what the compiler embedded: a reflection client
/// lists the services and fetches the files describing the method, from which a descriptor
/// pool resolves its messages. The first request's answer comes while the client keeps its
/// request stream open, as reflection clients do.
#[tokio::test]
async fn server_reflection_describes_the_served_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let upstream = profiles();
    let envoy = start(&upstream).await;
    let channel = Channel::from_shared(envoy.url("")).unwrap().connect().await.unwrap();
    let mut client = ServerReflectionClient::new(channel.clone());

    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender.send(ask(MessageRequest::ListServices(String::new()))).await.unwrap();
    let mut answers = client
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    let answer =
        tokio::time::timeout(Duration::from_secs(5), answers.message()).await.unwrap().unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "users.v1.Directory",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );
    drop(sender);

    let mut answers = client
        .server_reflection_info(tokio_stream::once(ask(MessageRequest::FileContainingSymbol(
            "users.v1.Directory".into(),
        ))))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("not files: {answer:?}")
    };
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost::Message::decode(bytes.as_slice()).unwrap())
        .collect();
    assert_eq!(files[0].name(), "users.v1.Directory.proto", "the method's file first, then its imports");
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(prost_types::FileDescriptorSet {
        file: files,
    })
    .unwrap();
    let method = pool.get_service_by_name("users.v1.Directory").unwrap().methods().next().unwrap();
    assert_eq!(method.name(), "GetUser");
    assert_eq!(method.input().full_name(), "users.v1.UserQuery");
    let output = method.output();
    let fields: Vec<String> = output.fields().map(|f| f.name().to_string()).collect();
    assert_eq!(fields, ["id", "name", "visits", "roles", "role"]);

    // An unknown symbol is the reflection service's NOT_FOUND, in its answer.
    let mut answers = client
        .server_reflection_info(tokio_stream::once(ask(MessageRequest::FileContainingSymbol(
            "users.v1.Nope".into(),
        ))))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ErrorResponse(error)) = answer.message_response else { panic!("{answer:?}") };
    assert_eq!((error.error_code, error.error_message.as_str()), (5, "no symbol users.v1.Nope"));

    // v1alpha, which older clients ask first, answers the same.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::FileByFilename("users.proto".into())),
    };
    let mut answers = AlphaClient::new(channel)
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(AlphaResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("{answer:?}")
    };
    let first: prost_types::FileDescriptorProto =
        prost::Message::decode(files.file_descriptor_proto[0].as_slice()).unwrap();
    assert_eq!(first.name(), "users.proto");
    assert!(upstream.requests().is_empty());
}
