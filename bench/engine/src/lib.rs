//! The benchmark flow's plan, its input and its upstreams' answers, and a host that answers
//! calls the moment the engine makes them.

use std::path::Path;
use std::rc::Rc;

use semaphore_filter::engine::{
    Callout, Engine, Event, Execution, Host, Reply, Request, Route, UpstreamResponse,
};
use serde_json::json;

/// The plan of `bench/flow/checkout.hcl`, its hosts pointed anywhere (nothing is called).
pub fn engine() -> Rc<Engine> {
    for (name, port) in [("BENCH_A_HOST", 1), ("BENCH_B_HOST", 2), ("BENCH_C_HOST", 3)] {
        std::env::set_var(name, format!("http://127.0.0.1:{port}"));
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flow/checkout.hcl");
    let compiled = semaphore_compiler::compile_file(&config).unwrap_or_else(|d| panic!("{d}"));
    Engine::new(compiled.plan)
}

fn items() -> serde_json::Value {
    (0..8)
        .map(|i| json!({"sku": format!("sku-{i:04}"), "title": "A product with a plausible title", "quantity": i + 1, "price": 12.5}))
        .collect()
}

/// About 1 KB of JSON: what a client posts to `/checkout`.
pub fn input() -> Vec<u8> {
    json!({"id": "order-1", "name": "Ada", "status": "NEW", "total": 100, "items": items()})
        .to_string()
        .into_bytes()
}

/// About 1 KB of JSON: what each upstream answers.
pub fn answer(name: &str) -> Vec<u8> {
    json!({"id": "id-1", "name": name, "status": "ACTIVE", "total": 1234, "items": items()})
        .to_string()
        .into_bytes()
}

#[derive(Default)]
pub struct Recorder {
    pub calls: Vec<u32>,
    pub replies: Vec<Reply>,
}

impl Host for Recorder {
    fn dispatch(&mut self, _callout: &Callout) -> Result<u32, String> {
        let token = self.calls.len() as u32 + 1;
        self.calls.push(token);
        Ok(token)
    }

    fn respond(&mut self, reply: Reply) {
        self.replies.push(reply);
    }

    fn now_ms(&self) -> u64 {
        0
    }

    fn record(&mut self, _event: Event) {}
}

/// Starts the flow: decodes the input and builds the first two requests.
pub fn start(engine: &Rc<Engine>, input: &[u8], host: &mut Recorder) -> Execution {
    let Route::Endpoint(matched) = engine.route("POST", "/checkout", "application/json") else {
        panic!("the bench flow has /checkout")
    };
    let request = Request { headers: Vec::new(), body: input.to_vec(), now_unix_ms: 0, seed: 1 };
    Execution::start(Rc::clone(engine), matched, request, host)
}

/// Answers the three calls (the third is made when the first answers) and returns the reply.
pub fn finish(execution: &mut Execution, host: &mut Recorder, answers: &[Vec<u8>; 3]) -> Reply {
    for (token, body) in [(1, &answers[0]), (2, &answers[1]), (3, &answers[2])] {
        let response = UpstreamResponse {
            status: Some(200),
            headers: Vec::new(),
            body: body.clone(),
            outcome_unknown: false,
        };
        execution.on_response(token, response, host);
    }
    host.replies.pop().unwrap_or_else(|| panic!("the flow answered nothing"))
}
