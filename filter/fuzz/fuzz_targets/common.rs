//! A host that answers every call at once, and the requests the targets send.

use std::rc::Rc;

use semaphore_filter::engine::{Callout, Engine, Event, Execution, Host, Reply, Request, Route, UpstreamResponse};

#[derive(Default)]
pub struct Host0 {
    pub calls: Vec<(u32, Callout)>,
    pub replies: Vec<Reply>,
}

impl Host for Host0 {
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String> {
        let token = self.calls.len() as u32 + 1;
        self.calls.push((token, callout.clone()));
        Ok(token)
    }

    fn respond(&mut self, reply: Reply) {
        self.replies.push(reply);
    }

    fn now_ms(&self) -> u64 {
        1_000
    }

    fn record(&mut self, _event: Event) {}
}

/// Runs `method path` with `body` through the engine, answering every upstream call with
/// `answer`, until the flow has answered; then hands over its rollbacks.
#[allow(dead_code)] // Each target is a crate of its own: one that only decodes leaves it unused.
pub fn run(engine: &Rc<Engine>, method: &str, path: &str, body: &[u8], answer: &[u8]) {
    let Route::Endpoint(matched) = engine.route(method, path, "application/json") else { return };
    let mut host = Host0::default();
    let request = Request {
        headers: vec![("authorization".into(), "Bearer a.eyJzdWIiOiJ4In0.c".into())],
        body: body.to_vec(),
        now_unix_ms: 0,
        seed: 1,
    };
    let mut execution = Execution::start(Rc::clone(engine), matched, request, &mut host);
    let mut answered = 0;
    // Bounded: every answered call may dispatch others, never more than the plan has nodes.
    while !execution.is_finished() && answered < host.calls.len() && answered < 64 {
        let (token, _) = host.calls[answered].clone();
        answered += 1;
        let response =
            UpstreamResponse { status: Some(200), headers: vec![], body: answer.to_vec(), outcome_unknown: false };
        execution.on_response(token, response, &mut host);
    }
    let _ = execution.take_rollbacks();
}
