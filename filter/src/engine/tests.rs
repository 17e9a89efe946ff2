//! Engine tests against a recording host. They run natively and, under wasm-bindgen-test, on
//! wasm32.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::engine::value::json;
use crate::engine::value::Value as Json;
use semaphore_plan::*;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{
    Callout, Engine, Event, Execution, Forwarding, Host, Reply, Request, Route, SagaEvent, UpstreamResponse,
    EXECUTION_ID_HEADER,
};

#[derive(Default)]
struct RecordingHost {
    next_token: u32,
    calls: Vec<(u32, Callout)>,
    replies: Vec<Reply>,
    forwarded: Vec<Forwarding>,
    refuse: bool,
    refuse_forward: bool,
    now_ms: u64,
    events: Vec<Event>,
}

impl Host for RecordingHost {
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String> {
        if self.refuse {
            return Err("no such cluster".into());
        }
        self.next_token += 1;
        self.calls.push((self.next_token, callout.clone()));
        Ok(self.next_token)
    }

    fn respond(&mut self, reply: Reply) {
        self.replies.push(reply);
    }

    fn forward(&mut self, forwarding: Forwarding) -> Result<(), String> {
        if self.refuse_forward {
            return Err("the request headers are gone".into());
        }
        self.forwarded.push(forwarding);
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn record(&mut self, event: Event) {
        self.events.push(event);
    }
}

impl RecordingHost {
    fn path_of(&self, token: u32) -> &str {
        self.calls.iter().find(|(t, _)| *t == token).and_then(|(_, c)| c.header(":path")).unwrap_or("")
    }

    fn token_for(&self, path: &str) -> u32 {
        self.calls.iter().find(|(_, c)| c.header(":path") == Some(path)).map(|(t, _)| *t).unwrap()
    }

    fn reply_json(&self) -> (u16, Json) {
        assert_eq!(self.replies.len(), 1, "exactly one reply");
        let reply = &self.replies[0];
        (reply.status, serde_json::from_slice(&reply.body).unwrap())
    }
}

fn field(name: &str, number: u32, kind: Kind) -> FieldLayout {
    FieldLayout { name: name.into(), json_name: name.into(), number, kind: kind as i32, ..Default::default() }
}

/// A string field whose JSON name differs from its proto name.
fn camel(name: &str, number: u32) -> FieldLayout {
    let json_name = name.split('_').enumerate().fold(String::new(), |mut out, (i, part)| {
        let mut chars = part.chars();
        if let (true, Some(first)) = (i > 0, chars.next()) {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        } else {
            out.push_str(part);
        }
        out
    });
    FieldLayout { json_name, ..field(name, number, Kind::String) }
}

fn reference(slot: u32, property: Property, path: &[&str]) -> Value {
    Value {
        kind: Some(ValueKind::Reference(Reference {
            slot,
            property: property as i32,
            path: path.iter().map(|s| s.to_string()).collect(),
            absent: None,
        })),
    }
}

fn segments(route: &str) -> Vec<PathSegment> {
    route
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| PathSegment {
            segment: Some(match (s.strip_prefix(':'), s.strip_prefix('*')) {
                (Some(name), _) => Segment::Param(name.into()),
                (_, Some(name)) => Segment::Wildcard(name.into()),
                _ => Segment::Literal(s.into()),
            }),
        })
        .collect()
}

const QUERY: u32 = 0;
const USER: u32 = 1;

/// Messages: 0 Query { id, limit: int32, tags: repeated, page_token }, 1 User { id, name, visits: int64,
/// display_name }.
fn messages() -> Vec<MessageLayout> {
    let mut tags = field("tags", 3, Kind::String);
    tags.repeated = true;
    vec![
        MessageLayout {
            name: "proto.Query".into(),
            fields: vec![
                field("id", 1, Kind::String),
                field("limit", 2, Kind::Int32),
                tags,
                camel("page_token", 4),
            ],
        },
        MessageLayout {
            name: "proto.User".into(),
            fields: vec![
                field("id", 1, Kind::String),
                field("name", 2, Kind::String),
                field("visits", 3, Kind::Int64),
                camel("display_name", 4),
            ],
        },
    ]
}

fn service() -> Service {
    Service {
        name: "proto.Users".into(),
        cluster: "users:9090".into(),
        authority: "users:9090".into(),
        transport: Transport::Http as i32,
        request_codec: Codec::Json as i32,
        response_codec: Codec::Json as i32,
        base_path: String::new(),
        tls: false,
        int64_as_string: false,
    }
}

/// A GET call to `route`, its request `{ id: <value> }`.
fn call(route: &str, http_method: &str, id: Value) -> Call {
    Call {
        service: 0,
        method: "Get".into(),
        http_method: http_method.into(),
        path: segments(route),
        request_message: QUERY,
        response_message: USER,
        request: Some(MessageTemplate {
            fields: vec![FieldTemplate { field: 0, value: Some(id), typed: false }],
        }),
        timeout_ms: 1000,
        ..Default::default()
    }
}

fn node(name: &str, depends_on: &[u32], call: Call) -> Node {
    Node { name: name.into(), depends_on: depends_on.to_vec(), call: Some(call), ..Default::default() }
}

fn plan(route: &str, method: &str, nodes: Vec<Node>, output: Vec<FieldTemplate>) -> Rc<Engine> {
    Engine::new(Plan {
        services: vec![service()],
        messages: messages(),
        endpoints: vec![Endpoint {
            method: method.into(),
            path: segments(route),
            flow: 0,
            status: 200,
            route: route.into(),
            ..Default::default()
        }],
        flows: vec![Flow {
            name: "GetUser".into(),
            input: QUERY,
            input_headers: vec![],
            nodes,
            output: Some(Output {
                message: USER,
                body: Some(MessageTemplate { fields: output }),
                headers: vec![],
            }),
            ..Default::default()
        }],
        log_level: String::new(),
        reflection: None,
        graphql: None,
    })
}

fn get_user() -> Rc<Engine> {
    plan(
        "/user/:id",
        "GET",
        vec![node("user", &[], call("/user/:id", "GET", reference(INPUT_SLOT, Property::Request, &["id"])))],
        vec![FieldTemplate {
            field: 1,
            value: Some(reference(1, Property::Response, &["name"])),
            typed: false,
        }],
    )
}

fn run(engine: &Rc<Engine>, method: &str, path: &str, body: &[u8], host: &mut RecordingHost) -> Execution {
    let Route::Endpoint(matched) = engine.route(method, path, "") else {
        panic!("{method} {path} matches no endpoint")
    };
    Execution::start(
        Rc::clone(engine),
        matched,
        Request { headers: vec![], body: body.to_vec(), now_unix_ms: 0, seed: 1 },
        host,
    )
}

fn ok(body: Json) -> UpstreamResponse {
    UpstreamResponse {
        status: Some(200),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
        ..Default::default()
    }
}

#[test]
fn answers_from_the_upstream_response() {
    let engine = get_user();
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    assert_eq!(host.calls.len(), 1);
    let (token, callout) = &host.calls[0];
    assert_eq!(callout.cluster, "users:9090");
    assert_eq!(callout.header(":method"), Some("GET"));
    assert_eq!(callout.header(":path"), Some("/user/1"));
    assert_eq!(callout.header(":authority"), Some("users:9090"));
    assert_eq!(callout.body, None);
    assert!(host.replies.is_empty());

    execution.on_response(*token, ok(json!({"id": "1", "name": "Ada", "visits": 3})), &mut host);
    assert!(execution.is_finished());
    let (status, body) = host.reply_json();
    assert_eq!(status, 200);
    assert_eq!(body, json!({"name": "Ada"}));
    assert_eq!(host.replies[0].headers, vec![("content-type".to_string(), "application/json".to_string())]);
}

#[test]
fn routes_only_matching_method_and_path() {
    let engine = get_user();
    assert!(matches!(engine.route("GET", "/user/1", ""), Route::Endpoint(_)));
    assert!(matches!(engine.route("GET", "/user/1?x=2", ""), Route::Endpoint(_)));
    assert_eq!(engine.route("POST", "/user/1", ""), Route::MethodNotAllowed(vec!["GET".to_string()]));
    assert_eq!(engine.route("GET", "/user", ""), Route::NoEndpoint);
    let reply = Engine::method_not_allowed("POST", "/user/1?x=2", &["GET".to_string()]);
    assert_eq!(reply.status, 405);
    assert!(reply.headers.contains(&("allow".to_string(), "GET".to_string())));
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        r#"{"message":"POST is not allowed on /user/1; allowed: GET","status":405}"#
    );
    assert_eq!(engine.route("GET", "/user/1/extra", ""), Route::NoEndpoint);
    assert_eq!(engine.route("GET", "/users/1", ""), Route::NoEndpoint);
}

#[test]
fn path_parameters_cannot_change_the_upstream_path() {
    let engine = get_user();
    let mut host = RecordingHost::default();
    run(&engine, "GET", "/user/..%2F..%2Fadmin%3Fx=1%23y", b"", &mut host);
    assert_eq!(host.calls[0].1.header(":path"), Some("/user/..%2F..%2Fadmin%3Fx%3D1%23y"));
}

#[test]
fn a_wildcard_in_the_upstream_path_keeps_its_slashes_and_escapes_each_part() {
    let engine = plan(
        "/files/*id",
        "GET",
        vec![node("file", &[], call("/store/*id", "GET", reference(INPUT_SLOT, Property::Request, &["id"])))],
        vec![],
    );
    let mut host = RecordingHost::default();
    run(&engine, "GET", "/files/a%20b/c%3Fd/%C3%A9", b"", &mut host);
    assert_eq!(host.calls[0].1.header(":path"), Some("/store/a%20b/c%3Fd/%C3%A9"));
}

#[test]
fn remaining_fields_go_to_the_query_string_of_a_get() {
    let mut get = call("/users", "GET", reference(INPUT_SLOT, Property::Request, &["id"]));
    get.request.as_mut().unwrap().fields.push(FieldTemplate {
        field: 1,
        value: Some(reference(INPUT_SLOT, Property::Request, &["limit"])),
        typed: false,
    });
    get.request.as_mut().unwrap().fields.push(FieldTemplate {
        field: 2,
        value: Some(reference(INPUT_SLOT, Property::Request, &["tags"])),
        typed: false,
    });
    let engine = plan("/search", "GET", vec![node("users", &[], get)], vec![]);
    let mut host = RecordingHost::default();
    run(&engine, "GET", "/search?id=a%20b&limit=5&tags=x&tags=y", b"", &mut host);
    assert_eq!(host.calls[0].1.header(":path"), Some("/users?id=a+b&limit=5&tags=x&tags=y"));
}

#[test]
fn query_values_are_typed_by_the_schema() {
    let engine = plan("/search", "GET", vec![], vec![]);
    let mut host = RecordingHost::default();
    run(&engine, "GET", "/search?limit=five", b"", &mut host);
    let (status, body) = host.reply_json();
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        json!("invalid request: field `limit`: expected an integer (int32), found \"five\"")
    );
}

#[test]
fn post_sends_the_request_as_json() {
    let post = call("/user/:id", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    let mut post = post;
    post.request.as_mut().unwrap().fields.push(FieldTemplate {
        field: 1,
        value: Some(reference(INPUT_SLOT, Property::Request, &["limit"])),
        typed: false,
    });
    let engine = plan("/user", "POST", vec![node("user", &[], post)], vec![]);
    let mut host = RecordingHost::default();
    run(&engine, "POST", "/user", br#"{"id": "7", "limit": 2, "unknown": true}"#, &mut host);
    let callout = &host.calls[0].1;
    assert_eq!(callout.header(":path"), Some("/user/7"));
    assert_eq!(callout.header("content-type"), Some("application/json"));
    assert_eq!(callout.body.as_deref(), Some(br#"{"limit":2}"#.as_slice()));
}

#[test]
fn malformed_json_is_a_400() {
    let engine = plan("/user", "POST", vec![], vec![]);
    let mut host = RecordingHost::default();
    run(&engine, "POST", "/user", b"{\"id\": ", &mut host);
    let (status, body) = host.reply_json();
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("invalid request body: invalid JSON"), "{body}");
}

#[test]
fn an_xml_endpoint_reads_its_body_and_answers_in_xml() {
    let input = |name: &str| Some(reference(INPUT_SLOT, Property::Request, &[name]));
    let output = vec![
        FieldTemplate { field: 1, value: input("id"), typed: false },
        FieldTemplate { field: 2, value: input("limit"), typed: false },
    ];
    let mut xml = plan("/user", "POST", vec![], output).plan.clone();
    xml.endpoints[0].request_codec = Codec::Xml as i32;
    xml.endpoints[0].response_codec = Codec::Xml as i32;
    let engine = Engine::new(xml);

    let mut host = RecordingHost::default();
    run(&engine, "POST", "/user", b"<Query><id>Ada &amp; co</id><limit> 3 </limit></Query>", &mut host);
    let reply = &host.replies[0];
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers, vec![("content-type".to_string(), "application/xml".to_string())]);
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        "<User><name>Ada &amp; co</name><visits>3</visits></User>"
    );

    let mut host = RecordingHost::default();
    run(&engine, "POST", "/user", b"<Query><limit>three</limit></Query>", &mut host);
    let (status, body) = host.reply_json();
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        json!("invalid request body: field `limit`: expected an integer (int32), found \"three\"")
    );
}

#[test]
fn an_xml_upstream_is_sent_and_answers_xml() {
    let mut post = call("/user/:id", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    if let Some(request) = post.request.as_mut() {
        request.fields.push(FieldTemplate {
            field: 1,
            value: Some(reference(INPUT_SLOT, Property::Request, &["limit"])),
            typed: false,
        });
    }
    let output = vec![FieldTemplate {
        field: 1,
        value: Some(reference(1, Property::Response, &["name"])),
        typed: false,
    }];
    let mut xml = plan("/user", "POST", vec![node("user", &[], post)], output).plan.clone();
    xml.services[0].request_codec = Codec::Xml as i32;
    xml.services[0].response_codec = Codec::Xml as i32;
    let engine = Engine::new(xml);

    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "POST", "/user", br#"{"id": "7", "limit": 2}"#, &mut host);
    let (token, callout) = &host.calls[0];
    assert_eq!(callout.header(":path"), Some("/user/7"));
    assert_eq!(callout.header("content-type"), Some("application/xml"));
    assert_eq!(callout.header("accept"), Some("application/xml"));
    assert_eq!(callout.body.as_deref(), Some(b"<Query><limit>2</limit></Query>".as_slice()));

    let answer = b"<wb:user xmlns:wb=\"urn:users\" id=\"7\"><wb:name>Ada</wb:name><wb:extra/></wb:user>";
    let response = UpstreamResponse {
        status: Some(200),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: answer.to_vec(),
        ..Default::default()
    };
    execution.on_response(*token, response, &mut host);
    assert_eq!(host.reply_json(), (200, json!({"name": "Ada"})));
}

#[test]
fn upstream_errors_reach_the_client_with_their_status() {
    let engine = get_user();
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/9", b"", &mut host);
    let token = host.calls[0].0;
    let response = UpstreamResponse {
        status: Some(404),
        headers: vec![],
        body: br#"{"message":"user 9 not found"}"#.to_vec(),
        ..Default::default()
    };
    execution.on_response(token, response, &mut host);
    let (status, body) = host.reply_json();
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"message": "resource `user`: upstream answered 404: user 9 not found", "status": 404})
    );
}

#[test]
fn unreachable_upstream_is_a_502() {
    let engine = get_user();
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    execution.on_response(host.calls[0].0, UpstreamResponse::default(), &mut host);
    assert_eq!(host.reply_json().0, 502);
}

#[test]
fn refused_dispatch_is_a_502() {
    let engine = get_user();
    let mut host = RecordingHost { refuse: true, ..Default::default() };
    run(&engine, "GET", "/user/1", b"", &mut host);
    let (status, body) = host.reply_json();
    assert_eq!(status, 502);
    assert!(body["message"].as_str().unwrap().contains("no such cluster"));
}

#[test]
fn garbage_from_the_upstream_is_a_502() {
    let engine = get_user();
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let response = UpstreamResponse {
        status: Some(200),
        headers: vec![],
        body: b"<html>".to_vec(),
        ..Default::default()
    };
    execution.on_response(host.calls[0].0, response, &mut host);
    assert_eq!(host.reply_json().0, 502);
}

/// The user's visits, an int64 beyond 2^53, as the answer's bytes; the endpoint writes 64-bit
/// integers as strings when asked to.
fn visits_answer(int64_as_string: bool) -> String {
    let engine = plan(
        "/user/:id",
        "GET",
        vec![node("user", &[], call("/user/:id", "GET", reference(INPUT_SLOT, Property::Request, &["id"])))],
        vec![FieldTemplate {
            field: 2,
            value: Some(reference(1, Property::Response, &["visits"])),
            typed: false,
        }],
    );
    let mut plan = engine.plan.clone();
    plan.endpoints[0].int64_as_string = int64_as_string;
    let engine = Engine::new(plan);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let upstream = UpstreamResponse {
        status: Some(200),
        headers: vec![],
        body: br#"{"visits": "9007199254740993", "name": null}"#.to_vec(),
        ..Default::default()
    };
    execution.on_response(host.calls[0].0, upstream, &mut host);
    String::from_utf8(host.replies[0].body.clone()).unwrap()
}

#[test]
fn int64_is_an_exact_json_number_unless_the_endpoint_asks_for_strings() {
    assert_eq!(visits_answer(false), r#"{"visits":9007199254740993}"#);
    assert_eq!(visits_answer(true), r#"{"visits":"9007199254740993"}"#);
}

#[test]
fn json_names_are_read_and_proto_names_written() {
    let engine = plan(
        "/user",
        "POST",
        vec![],
        vec![FieldTemplate {
            field: 3,
            value: Some(reference(INPUT_SLOT, Property::Request, &["page_token"])),
            typed: false,
        }],
    );
    let mut host = RecordingHost::default();
    run(&engine, "POST", "/user", br#"{"pageToken": "p1"}"#, &mut host);
    assert_eq!(host.reply_json(), (200, json!({"display_name": "p1"})));
}

/// A (GET /a) and B (GET /b) independent, C (GET /c) after A.
fn diamond() -> Rc<Engine> {
    let input_id = || reference(INPUT_SLOT, Property::Request, &["id"]);
    plan(
        "/user/:id",
        "GET",
        vec![
            node("a", &[], call("/a", "GET", input_id())),
            node("b", &[], call("/b", "GET", input_id())),
            node("c", &[0], call("/c/:id", "GET", reference(1, Property::Response, &["id"]))),
        ],
        vec![
            FieldTemplate { field: 0, value: Some(reference(3, Property::Response, &["id"])), typed: false },
            FieldTemplate {
                field: 1,
                value: Some(reference(2, Property::Response, &["name"])),
                typed: false,
            },
        ],
    )
}

#[test]
fn dispatches_a_node_the_moment_its_dependencies_complete() {
    let engine = diamond();
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let started: Vec<&str> = host.calls.iter().map(|(t, _)| host.path_of(*t)).collect();
    assert_eq!(started, vec!["/a?id=1", "/b?id=1"]);

    execution.on_response(host.token_for("/a?id=1"), ok(json!({"id": "from-a"})), &mut host);
    assert_eq!(host.calls.len(), 3, "C starts while B is still running");
    assert_eq!(host.calls[2].1.header(":path"), Some("/c/from-a"));

    execution.on_response(host.token_for("/c/from-a"), ok(json!({"id": "from-c"})), &mut host);
    assert!(host.replies.is_empty(), "B is still running");
    execution.on_response(host.token_for("/b?id=1"), ok(json!({"name": "from-b"})), &mut host);
    assert_eq!(host.reply_json(), (200, json!({"id": "from-c", "name": "from-b"})));
}

#[test]
fn late_and_unknown_responses_are_ignored() {
    let engine = diamond();
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    execution.on_response(999, ok(json!({})), &mut host);
    assert!(host.replies.is_empty());
    let b = host.token_for("/b?id=1");
    execution.on_response(
        host.token_for("/a?id=1"),
        UpstreamResponse { status: Some(500), ..Default::default() },
        &mut host,
    );
    assert!(host.replies.is_empty(), "B is still in flight: the answer waits for it");
    execution.on_response(b, ok(json!({})), &mut host);
    assert_eq!(host.replies.len(), 1, "answered once B ended");
    assert_eq!(host.replies[0].status, 500);
    execution.on_response(b, ok(json!({})), &mut host);
    assert_eq!(host.replies.len(), 1, "no second reply");
    assert_eq!(host.calls.len(), 2, "nothing dispatched after the failure");
}

/// Every DAG over up to five nodes (edges only from lower to higher index, which covers every
/// DAG up to relabelling), with completions in many orders: each node is dispatched exactly
/// once, only after all its dependencies completed, and the flow answers exactly once.
#[test]
fn scheduler_dispatches_each_node_once_after_its_dependencies() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for size in 1..=5usize {
        let pairs: Vec<(usize, usize)> = (0..size).flat_map(|j| (0..j).map(move |i| (i, j))).collect();
        for mask in 0..(1u32 << pairs.len()) {
            let deps: Vec<Vec<u32>> = (0..size)
                .map(|j| {
                    pairs
                        .iter()
                        .enumerate()
                        .filter(|(bit, (_, to))| mask & (1 << bit) != 0 && *to == j)
                        .map(|(_, (from, _))| *from as u32)
                        .collect()
                })
                .collect();
            let nodes = (0..size)
                .map(|i| {
                    node(
                        &format!("n{i}"),
                        &deps[i],
                        call(&format!("/n{i}"), "GET", reference(INPUT_SLOT, Property::Request, &["id"])),
                    )
                })
                .collect();
            let engine = plan("/run/:id", "GET", nodes, vec![]);
            for _ in 0..4 {
                let mut host = RecordingHost::default();
                let mut execution = run(&engine, "GET", "/run/1", b"", &mut host);
                let mut completed: Vec<usize> = Vec::new();
                let mut pending: VecDeque<u32> = host.calls.iter().map(|(t, _)| *t).collect();
                while !pending.is_empty() {
                    let pick = (random() % pending.len() as u64) as usize;
                    let token = pending.remove(pick).unwrap();
                    let path = host.path_of(token).to_string();
                    let index: usize =
                        path.trim_start_matches("/n").split('?').next().unwrap().parse().unwrap();
                    completed.push(index);
                    let before = host.calls.len();
                    execution.on_response(token, ok(json!({})), &mut host);
                    for (token, callout) in &host.calls[before..] {
                        let path = callout.header(":path").unwrap();
                        let started: usize =
                            path.trim_start_matches("/n").split('?').next().unwrap().parse().unwrap();
                        for dep in &deps[started] {
                            assert!(
                                completed.contains(&(*dep as usize)),
                                "n{started} dispatched before n{dep} completed (mask {mask})"
                            );
                        }
                        pending.push_back(*token);
                    }
                }
                let mut dispatched: Vec<String> =
                    host.calls.iter().map(|(_, c)| c.header(":path").unwrap().to_string()).collect();
                dispatched.sort();
                dispatched.dedup();
                assert_eq!(dispatched.len(), size, "each node exactly once (mask {mask})");
                assert_eq!(host.calls.len(), size);
                assert_eq!(host.replies.len(), 1);
                assert_eq!(host.replies[0].status, 200);
            }
        }
    }
}

/// `proxy "files"` on GET /files/*path: resource `auth` (GET /auth, its id from the
/// Authorization header), then forward to the `blobs` service (plan service 1) with
/// `X-Item = "{{ auth:id }}"` and the given rewrite rules.
fn files_proxy(rewrites: &[(&str, &str)], nodes: Vec<Node>) -> Rc<Engine> {
    let mut plan = plan("/files/*path", "GET", nodes, vec![]).plan.clone();
    plan.services.push(Service {
        name: "blobs.Blobs".into(),
        cluster: "blobs:8080".into(),
        authority: "blobs.svc:8080".into(),
        base_path: "/v1".into(),
        ..service()
    });
    let flow = &mut plan.flows[0];
    flow.output = None;
    flow.forward = Some(Forward {
        service: 1,
        headers: vec![HeaderTemplate {
            name: "x-item".into(),
            value: Some(reference(1, Property::Response, &["id"])),
        }],
        rewrites: rewrites
            .iter()
            .map(|(pattern, template)| Rewrite {
                pattern: pattern.to_string(),
                template: template.to_string(),
            })
            .collect(),
    });
    Engine::new(plan)
}

fn auth() -> Node {
    node("auth", &[], call("/auth", "GET", reference(INPUT_SLOT, Property::Header, &["authorization"])))
}

fn request_to(path_and_query: &str) -> Request {
    Request {
        headers: vec![
            (":method".into(), "GET".into()),
            (":path".into(), path_and_query.into()),
            ("authorization".into(), "token-1".into()),
        ],
        body: vec![],
        now_unix_ms: 0,
        seed: 1,
    }
}

fn run_proxy(engine: &Rc<Engine>, path_and_query: &str, host: &mut RecordingHost) -> Execution {
    let Route::Endpoint(matched) = engine.route("GET", path_and_query, "") else {
        panic!("no endpoint matches")
    };
    assert!(engine.forwards(&matched));
    Execution::start(Rc::clone(engine), matched, request_to(path_and_query), host)
}

#[test]
fn only_a_proxys_endpoints_forward() {
    let proxy = files_proxy(&[], vec![]);
    let Route::Endpoint(file) = proxy.route("GET", "/files/a", "") else { panic!("no endpoint matches") };
    assert!(proxy.forwards(&file));
    let flow = get_user();
    let Route::Endpoint(user) = flow.route("GET", "/user/1", "") else { panic!("no endpoint matches") };
    assert!(!flow.forwards(&user));
}

#[test]
fn a_proxy_forwards_once_its_resources_settle() {
    let engine = files_proxy(&[("/files/(?P<path>.*)", "/blobs/<path>")], vec![auth()]);
    let mut host = RecordingHost { now_ms: 100, ..Default::default() };
    let mut execution = run_proxy(&engine, "/files/a/b.txt?size=2&x=%20", &mut host);
    assert_eq!(host.calls.len(), 1);
    assert_eq!(host.calls[0].1.header(":path"), Some("/auth?id=token-1"));
    assert!(host.forwarded.is_empty(), "the resource has not answered yet");
    assert!(!execution.is_finished());

    host.now_ms = 130;
    execution.on_response(host.calls[0].0, ok(json!({"id": "item-7"})), &mut host);
    assert!(execution.is_finished());
    assert!(host.replies.is_empty(), "the forward service answers the client");
    assert_eq!(
        host.forwarded,
        vec![Forwarding {
            cluster: "blobs:8080".into(),
            authority: "blobs.svc:8080".into(),
            path: "/v1/blobs/a/b.txt?size=2&x=%20".into(),
            headers: vec![("x-item".into(), Some("item-7".into()))],
        }]
    );
    assert!(host.events.contains(&Event::Flow { flow: 0, failed: false, duration_ms: 30 }));
    assert!(execution.take_rollbacks().is_empty());
}

#[test]
fn a_proxy_without_resources_forwards_at_once() {
    let engine = files_proxy(&[], vec![]);
    let mut host = RecordingHost::default();
    let execution = run_proxy(&engine, "/files/a", &mut host);
    assert!(execution.is_finished());
    assert_eq!(host.forwarded.len(), 1);
    assert_eq!(host.forwarded[0].path, "/v1/files/a", "no rule: the path is kept");
    assert_eq!(
        host.forwarded[0].headers,
        vec![("x-item".to_string(), None)],
        "an absent value removes the client's header of that name"
    );
}

#[test]
fn the_first_rule_matching_the_whole_path_rewrites_it() {
    let engine = files_proxy(
        &[
            ("/files", "/never"),
            ("/files/(?P<kind>img|doc)/(?P<name>[^/]+)", "/<kind>s/<name>$1<open"),
            ("/files/(?P<rest>.*)", "/all/<rest>"),
        ],
        vec![],
    );
    for (path, expected) in [
        ("/files/img/cat.png", "/v1/imgs/cat.png$1<open"),
        ("/files/doc/a?q=1", "/v1/docs/a$1<open?q=1"),
        ("/files/img/a/b", "/v1/all/img/a/b"),
        ("/files/other", "/v1/all/other"),
    ] {
        let mut host = RecordingHost::default();
        run_proxy(&engine, path, &mut host);
        assert_eq!(host.forwarded[0].path, expected, "{path}");
    }
}

#[test]
fn a_rule_matching_only_part_of_the_path_leaves_it_alone() {
    let engine = files_proxy(&[("/img/(?P<name>.*)", "/images/<name>")], vec![]);
    let mut host = RecordingHost::default();
    run_proxy(&engine, "/files/img/cat.png", &mut host);
    assert_eq!(host.forwarded[0].path, "/v1/files/img/cat.png");
}

#[test]
fn a_group_that_took_no_part_in_the_match_is_empty() {
    let engine = files_proxy(&[("/files/(?P<a>x)?(?P<b>.*)", "/<a>-<b>")], vec![]);
    let mut host = RecordingHost::default();
    run_proxy(&engine, "/files/yz", &mut host);
    assert_eq!(host.forwarded[0].path, "/v1/-yz");
}

#[test]
fn a_failing_resource_answers_the_proxys_error_and_nothing_is_forwarded() {
    let mut rolled_back = auth();
    rolled_back.rollback = Some(call("/auth/undo", "POST", reference(1, Property::Response, &["id"])));
    let second = node("check", &[0], call("/check", "GET", reference(1, Property::Response, &["id"])));
    let engine = files_proxy(&[], vec![rolled_back, second]);
    let mut host = RecordingHost::default();
    let mut execution = run_proxy(&engine, "/files/a", &mut host);
    execution.on_response(host.token_for("/auth?id=token-1"), ok(json!({"id": "item-7"})), &mut host);
    let refused = UpstreamResponse {
        status: Some(403),
        body: br#"{"message":"not yours"}"#.to_vec(),
        ..Default::default()
    };
    execution.on_response(host.token_for("/check?id=item-7"), refused, &mut host);

    assert!(host.forwarded.is_empty());
    assert_eq!(
        host.reply_json(),
        (403, json!({"message": "resource `check`: upstream answered 403: not yours", "status": 403}))
    );
    let rollbacks = execution.take_rollbacks();
    assert_eq!(rollbacks.len(), 1, "the completed resource is compensated");
    assert_eq!(rollbacks[0].callout.header(":path"), Some("/auth/undo"));
}

#[test]
fn a_header_value_with_a_line_break_is_refused_before_forwarding() {
    let engine = files_proxy(&[], vec![auth()]);
    let mut host = RecordingHost::default();
    let mut execution = run_proxy(&engine, "/files/a", &mut host);
    execution.on_response(host.calls[0].0, ok(json!({"id": "a\r\nx-admin: 1"})), &mut host);
    assert!(host.forwarded.is_empty());
    assert_eq!(host.reply_json().0, 400);
}

#[test]
fn a_host_that_cannot_forward_fails_the_proxy_with_502() {
    let engine = files_proxy(&[], vec![]);
    let mut host = RecordingHost { refuse_forward: true, ..Default::default() };
    let execution = run_proxy(&engine, "/files/a", &mut host);
    assert!(execution.is_finished());
    assert_eq!(
        host.reply_json(),
        (502, json!({"message": "cannot forward the request: the request headers are gone", "status": 502}))
    );
    assert!(host.events.contains(&Event::Flow { flow: 0, failed: true, duration_ms: 0 }));
}

#[test]
fn rewrite_rules_the_compiler_would_refuse_fail_their_proxy_before_any_call() {
    for (rule, reason) in [
        (("/files/(?P<path>", "/<path>"), "the rewrite pattern `/files/(?P<path>` is invalid"),
        (("/files/(?P<path>.*)", "/<file>"), "uses `<file>`, which its pattern does not capture"),
    ] {
        let engine = files_proxy(&[rule], vec![auth()]);
        let mut host = RecordingHost::default();
        run_proxy(&engine, "/files/a", &mut host);
        assert!(host.calls.is_empty() && host.forwarded.is_empty());
        let (status, body) = host.reply_json();
        assert_eq!(status, 500);
        assert!(body["message"].as_str().unwrap().contains(reason), "{body}");
    }
}

/// A and B in parallel, B fails while A is still in flight: the answer waits for A, so that
/// A, having completed, is compensated.
#[test]
fn a_failure_waits_for_calls_in_flight_and_compensates_those_that_complete() {
    let mut a = call("/a", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    a.http_method = "POST".into();
    let mut undo = call("/a/undo", "POST", reference(1, Property::Response, &["id"]));
    undo.http_method = "POST".into();
    let mut node_a = node("a", &[], a);
    node_a.rollback = Some(undo);
    let b = call("/b", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    let engine = plan("/user/:id", "GET", vec![node_a, node("b", &[], b)], vec![]);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let (token_a, token_b) = (host.token_for("/a"), host.token_for("/b"));

    execution.on_response(token_b, UpstreamResponse { status: Some(500), ..Default::default() }, &mut host);
    assert!(host.replies.is_empty(), "the answer waits for A");
    assert!(!execution.is_finished());
    execution.on_response(token_a, ok(json!({"id": "a-1"})), &mut host);
    assert_eq!(host.reply_json().0, 500);
    assert!(execution.is_finished());
    let rollbacks = execution.take_rollbacks();
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(rollbacks[0].node_name, "a");
    assert_eq!(rollbacks[0].callout.body.as_deref(), Some(br#"{"id":"a-1"}"#.as_slice()));
}

#[test]
fn a_client_leaving_a_failing_flow_keeps_its_error_for_the_rollbacks() {
    let mut a = call("/a", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    a.http_method = "POST".into();
    let mut undo = call("/a/undo", "POST", reference(ERROR_SLOT, Property::Error, &["message"]));
    undo.http_method = "POST".into();
    let mut node_a = node("a", &[], a);
    node_a.rollback = Some(undo);
    let b = call("/b", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    let engine = plan("/user/:id", "GET", vec![node_a, node("b", &[], b)], vec![]);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let (token_a, token_b) = (host.token_for("/a"), host.token_for("/b"));
    execution.on_response(token_a, ok(json!({"id": "a-1"})), &mut host);
    execution.on_response(token_b, UpstreamResponse { status: Some(503), ..Default::default() }, &mut host);
    assert!(execution.is_finished(), "nothing in flight: answered at once");
    let rollbacks = execution.take_rollbacks();
    assert_eq!(
        rollbacks[0].callout.body.as_deref(),
        Some(br#"{"id":"resource `b`: upstream answered 503"}"#.as_slice())
    );

    // B fails while A is in flight, then the client goes: the flow counts one failure, answers
    // nobody, waits for A, and compensates it with B's error.
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let (token_a, token_b) = (host.token_for("/a"), host.token_for("/b"));
    execution.on_response(token_b, UpstreamResponse { status: Some(503), ..Default::default() }, &mut host);
    execution.abandon(&mut host);
    assert!(!execution.is_finished(), "A is still in flight");
    execution.on_response(token_a, ok(json!({"id": "a-1"})), &mut host);
    assert!(execution.is_finished());
    assert!(host.replies.is_empty());
    assert_eq!(host.events.iter().filter(|e| matches!(e, Event::Flow { failed: true, .. })).count(), 1);
    let rollbacks = execution.take_rollbacks();
    assert_eq!(
        rollbacks[0].callout.body.as_deref(),
        Some(br#"{"id":"resource `b`: upstream answered 503"}"#.as_slice())
    );
}

/// The client leaves while a call is in flight: the call goes on, and once it completes it is
/// compensated; nobody is answered.
#[test]
fn a_call_outlives_the_client_and_is_compensated_once_it_completes() {
    let mut a = call("/a", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    a.http_method = "POST".into();
    let mut undo = call("/a/undo", "POST", reference(1, Property::Response, &["id"]));
    undo.http_method = "POST".into();
    let mut node_a = node("a", &[], a);
    node_a.rollback = Some(undo);
    let engine = plan("/user/:id", "GET", vec![node_a], vec![]);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    execution.abandon(&mut host);
    assert!(!execution.is_finished());
    execution.on_response(host.token_for("/a"), ok(json!({"id": "a-1"})), &mut host);
    assert!(execution.is_finished());
    assert!(host.replies.is_empty());
    let rollbacks = execution.take_rollbacks();
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(rollbacks[0].callout.body.as_deref(), Some(br#"{"id":"a-1"}"#.as_slice()));

    // Left with nothing in flight: finished at once, nothing to compensate.
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/1", b"", &mut host);
    execution.on_response(
        host.token_for("/a"),
        UpstreamResponse { status: Some(500), ..Default::default() },
        &mut host,
    );
    assert!(execution.is_finished());
    execution.abandon(&mut host);
    assert!(execution.take_rollbacks().is_empty());
}

/// The rule for lists: one a template names is written, `[]` when its source is absent, so an
/// upstream (or a client) finds an empty list rather than no field.
#[test]
fn a_list_a_template_names_is_written_empty_when_its_source_is_absent() {
    let mut post = call("/users", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
    if let Some(request) = post.request.as_mut() {
        request.fields.push(FieldTemplate {
            field: 2,
            value: Some(reference(INPUT_SLOT, Property::Request, &["tags"])),
            typed: false,
        });
    }
    let engine = plan("/user/:id", "GET", vec![node("user", &[], post)], vec![]);
    let mut host = RecordingHost::default();
    let _execution = run(&engine, "GET", "/user/1", b"", &mut host);
    let body = host.calls[0].1.body.clone().unwrap_or_default();
    assert_eq!(String::from_utf8(body).unwrap(), r#"{"id":"1","tags":[]}"#);
}

/// A call that timed out may have been performed: its rollback runs when it can be built from
/// what was sent, and every call and compensation carries the execution's id.
#[test]
fn a_timed_out_call_is_compensated_when_its_rollback_needs_no_answer() {
    let charge = || {
        let mut charge = call("/charge", "POST", reference(INPUT_SLOT, Property::Request, &["id"]));
        charge.http_method = "POST".into();
        charge
    };
    let refund = |reads: Value| {
        let mut refund = call("/refund", "POST", reads);
        refund.http_method = "POST".into();
        refund
    };
    let timed_out = || UpstreamResponse {
        status: Some(504),
        body: b"upstream request timeout".to_vec(),
        outcome_unknown: true,
        ..Default::default()
    };

    // The refund names what the charge was sent: it runs.
    let mut node_charge = node("charge", &[], charge());
    node_charge.rollback = Some(refund(reference(1, Property::Request, &["id"])));
    let engine = plan("/user/:id", "GET", vec![node_charge], vec![]);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/7", b"", &mut host);
    let id = host.calls[0].1.header(EXECUTION_ID_HEADER).unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    execution.on_response(host.calls[0].0, timed_out(), &mut host);
    assert_eq!(host.reply_json().0, 504);
    let compensations = execution.take_rollbacks();
    assert_eq!(compensations.len(), 1);
    assert_eq!(compensations[0].callout.body.as_deref(), Some(br#"{"id":"7"}"#.as_slice()));
    assert_eq!(compensations[0].callout.header(EXECUTION_ID_HEADER), Some(id.as_str()));
    assert_eq!(compensations[0].execution_id, id);

    // The refund needs the charge's answer, which never came: nothing to send, it is logged.
    let mut node_charge = node("charge", &[], charge());
    node_charge.rollback = Some(refund(reference(1, Property::Response, &["id"])));
    node_charge.rollback_reads_response = true;
    let engine = plan("/user/:id", "GET", vec![node_charge], vec![]);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/7", b"", &mut host);
    execution.on_response(host.calls[0].0, timed_out(), &mut host);
    let (compensations, given_up) = execution.take_compensations();
    assert!(compensations.is_empty());
    assert_eq!(given_up, [SagaEvent::GivenUp { flow: 0, node: 0 }], "counted as given up");

    // A refusal that never reached the upstream is no unknown outcome: nothing to compensate.
    let mut node_charge = node("charge", &[], charge());
    node_charge.rollback = Some(refund(reference(1, Property::Request, &["id"])));
    let engine = plan("/user/:id", "GET", vec![node_charge], vec![]);
    let mut host = RecordingHost::default();
    let mut execution = run(&engine, "GET", "/user/7", b"", &mut host);
    execution.on_response(host.calls[0].0, UpstreamResponse::default(), &mut host);
    assert_eq!(host.reply_json().0, 502);
    assert!(execution.take_rollbacks().is_empty());
}
