//! Any bytes as a GraphQL request: a JSON body, a document sent as `application/graphql`, and a
//! GET query string, against the schema of `tests/fixtures/graphql` (its plan compiled by
//! `cargo xtask fuzz`, named in `SEMAPHORE_FUZZ_GRAPHQL_PLAN`). Whatever the document, one
//! answer, with a status the GraphQL-over-HTTP specification allows, and no panic; every flow
//! it starts answered by an upstream that says the same thing to all.
#![no_main]

mod common;

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use semaphore_filter::engine::{Engine, Request, Route, Run, UpstreamResponse};
use semaphore_plan::Plan;

thread_local! {
    static ENGINE: Rc<Engine> = {
        let path = std::env::var("SEMAPHORE_FUZZ_GRAPHQL_PLAN")
            .expect("SEMAPHORE_FUZZ_GRAPHQL_PLAN names the plan of tests/fixtures/graphql (cargo xtask fuzz sets it)");
        let bytes = std::fs::read(&path).expect("the GraphQL plan is readable");
        Engine::new(Plan::decode_from_bytes(&bytes).expect("the GraphQL plan decodes"))
    };
}

const USER: &[u8] = br#"{"id":"7","name":"Ada","visits":"9007199254740993","tags":["a"],"role":"ADMIN",
"address":{"city":"London"},"labels":{"team":"core"},"previous":[{"city":"Paris"}],"position":3}"#;

fn run(engine: &Rc<Engine>, method: &str, path: &str, content_type: &str, body: &[u8]) {
    let Route::Endpoint(matched) = engine.route(method, path, content_type) else { return };
    let mut host = common::Host0::default();
    let request = Request {
        headers: vec![
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            ("content-type".into(), content_type.into()),
        ],
        body: body.to_vec(),
        now_unix_ms: 0,
        seed: 1,
    };
    let mut run = Run::start(Rc::clone(engine), matched, request, &mut host);
    let mut answered = 0;
    // Bounded: the schema's field limit bounds the flows a document starts.
    while !run.is_finished() && answered < host.calls.len() && answered < 1_000 {
        let (token, _) = host.calls[answered].clone();
        answered += 1;
        let response = UpstreamResponse { status: Some(200), headers: vec![], body: USER.to_vec(), outcome_unknown: false };
        run.on_response(token, response, &mut host);
    }
    assert!(run.is_finished(), "the operation did not finish");
    assert_eq!(host.replies.len(), 1, "{:?}", host.replies);
    let reply = &host.replies[0];
    assert!(matches!(reply.status, 200 | 400 | 405 | 415), "{reply:?}");
    let _ = run.take_compensations();
}

fuzz_target!(|data: &[u8]| {
    ENGINE.with(|engine| {
        run(engine, "POST", "/graphql", "application/json", data);
        run(engine, "POST", "/graphql", "application/graphql", data);
        if let Ok(text) = std::str::from_utf8(data) {
            run(engine, "GET", &format!("/graphql?query={}", text.replace(['#', '&'], "")), "", b"");
        }
    });
});
