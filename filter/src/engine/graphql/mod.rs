//! GraphQL: one request runs the flows its operation selects, each a field of the plan's
//! schema (`Plan::graphql`). A query's flows run at once, a mutation's one after the other; each
//! field that fails is null with an error of its own, and the answer is sent once every flow
//! has answered.
//!
//! `parse.rs` reads the document, `prepare.rs` checks it against the schema and types the
//! flows' inputs, `respond.rs` projects the flows' outputs on the selection sets. Each flow runs
//! as an [`Execution`] of its own, answering into this operation instead of the client.

mod parse;
mod prepare;
mod respond;

use std::rc::Rc;

use crate::engine::value::{json, Map, Value};
use log::warn;

use super::endpoint::{graphql as http, Match};
use super::execution::Execution;
use super::host::{Callout, Event, Forwarding, Host, Reply, Request, UpstreamResponse};
use super::saga::{Compensation, SagaEvent};
use super::{codec, Engine};
pub use parse::Pos;
pub use prepare::Introspection;
use prepare::Prepared;

/// An error of the GraphQL response: where in the document, and for a field, where in the
/// response; `status` is the failed flow's.
#[derive(Debug)]
pub struct GraphqlError {
    pub message: String,
    pub pos: Option<Pos>,
    pub path: Vec<String>,
    pub status: Option<u16>,
}

impl GraphqlError {
    pub fn new(message: impl Into<String>) -> GraphqlError {
        GraphqlError { message: message.into(), pos: None, path: Vec::new(), status: None }
    }

    pub fn at(message: impl Into<String>, pos: Pos) -> GraphqlError {
        GraphqlError { pos: Some(pos), ..GraphqlError::new(message) }
    }

    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("message".into(), Value::String(self.message.clone()));
        if let Some(pos) = self.pos {
            error.insert("locations".into(), json!([{"line": pos.line, "column": pos.column}]));
        }
        if !self.path.is_empty() {
            error.insert("path".into(), json!(self.path));
        }
        if let Some(status) = self.status {
            error.insert("extensions".into(), json!({"status": status}));
        }
        Value::Object(error)
    }
}

/// One flow of the operation.
struct FieldRun {
    execution: Option<Execution>,
    /// Its output (as the JSON its endpoint writes), or its error; set once.
    result: Option<Result<Value, GraphqlError>>,
}

/// One GraphQL request's run of the flows it selects.
pub struct Operation {
    engine: Rc<Engine>,
    endpoint: usize,
    prepared: Prepared,
    runs: Vec<FieldRun>,
    headers: Vec<(String, String)>,
    now_unix_ms: u64,
    seed: u64,
    style: http::Style,
    answered: bool,
    /// The client went away: nothing more starts.
    abandoned: bool,
}

impl Operation {
    /// Reads and checks the request, then starts its flows (a mutation's first).
    pub fn start(engine: Rc<Engine>, matched: &Match, request: Request, host: &mut dyn Host) -> Operation {
        let style = http::Style::of(&request.headers);
        let prepared = Self::prepare(&engine, matched, &request, style);
        let mut operation = Operation {
            engine,
            endpoint: matched.endpoint,
            prepared: Prepared { mutation: false, selection: Vec::new(), runs: Vec::new() },
            runs: Vec::new(),
            headers: request.headers,
            now_unix_ms: request.now_unix_ms,
            seed: request.seed,
            style,
            answered: false,
            abandoned: false,
        };
        match prepared {
            Ok(prepared) => {
                operation.runs =
                    prepared.runs.iter().map(|_| FieldRun { execution: None, result: None }).collect();
                operation.prepared = prepared;
                operation.progress(host);
            }
            Err(refusal) => {
                operation.answered = true;
                host.respond(refusal);
            }
        }
        operation
    }

    // Apart from its one caller: see "Small functions" in the crate's documentation.
    #[inline(never)]
    fn prepare(
        engine: &Engine,
        matched: &Match,
        request: &Request,
        style: http::Style,
    ) -> Result<Prepared, Reply> {
        let method =
            request.headers.iter().find(|(n, _)| n == ":method").map(|(_, v)| v.as_str()).unwrap_or("");
        let read = http::read_request(method, &matched.query, &request.headers, &request.body)
            .map_err(|(status, message)| style.request_error(status, &GraphqlError::new(message), false))?;
        let Some(schema) = &engine.plan.graphql else {
            return Err(style.request_error(
                500,
                &GraphqlError::new("the plan has no GraphQL schema"),
                false,
            ));
        };
        let document = parse::parse(&read.query)
            .map_err(|e| style.request_error(400, &GraphqlError::at(e.to_string(), e.pos), true))?;
        let prepared = prepare::prepare(
            &engine.plan,
            schema,
            engine.graphql_introspection.as_ref(),
            &document,
            read.operation_name.as_deref(),
            read.variables,
        )
        .map_err(|e| style.request_error(400, &e, true))?;
        if prepared.mutation && method.eq_ignore_ascii_case("GET") {
            let error = GraphqlError::new("Mutations cannot run over GET: send them with POST.");
            let mut reply = style.request_error(405, &error, false);
            reply.headers.push(("allow".into(), "POST".into()));
            return Err(reply);
        }
        Ok(prepared)
    }

    pub fn is_finished(&self) -> bool {
        self.answered && self.runs.iter().all(|r| r.execution.as_ref().is_none_or(Execution::is_finished))
    }

    pub fn owns(&self, token: u32) -> bool {
        self.runs.iter().any(|r| r.execution.as_ref().is_some_and(|e| e.owns(token)))
    }

    pub fn reads_response_headers(&self, token: u32) -> bool {
        self.runs.iter().filter_map(|r| r.execution.as_ref()).any(|e| e.reads_response_headers(token))
    }

    pub fn on_response(&mut self, token: u32, response: UpstreamResponse, host: &mut dyn Host) {
        let Some(index) = self.runs.iter().position(|r| r.execution.as_ref().is_some_and(|e| e.owns(token)))
        else {
            return;
        };
        let mut field_host = FieldHost { host, reply: None };
        if let Some(execution) = self.runs.get_mut(index).and_then(|r| r.execution.as_mut()) {
            execution.on_response(token, response, &mut field_host);
        }
        let reply = field_host.reply;
        self.record(index, reply);
        self.progress(host);
    }

    /// The client went away: the flows running fail as their own clients' would, and no more
    /// start.
    pub fn abandon(&mut self, host: &mut dyn Host) {
        self.abandoned = true;
        self.answered = true;
        for run in &mut self.runs {
            if let Some(execution) = &mut run.execution {
                execution.abandon(&mut FieldHost { host, reply: None });
            }
        }
    }

    /// The compensations of every flow that failed, once it has finished.
    pub fn take_compensations(&mut self) -> (Vec<Compensation>, Vec<SagaEvent>) {
        let (mut compensations, mut given_up) = (Vec::new(), Vec::new());
        for execution in self.runs.iter_mut().filter_map(|r| r.execution.as_mut()) {
            let (more, gave_up) = execution.take_compensations();
            compensations.extend(more);
            given_up.extend(gave_up);
        }
        (compensations, given_up)
    }

    fn record(&mut self, index: usize, reply: Option<Reply>) {
        let Some(reply) = reply else { return };
        let Some(run) = self.runs.get_mut(index) else { return };
        let spec = self.prepared.runs.get(index);
        run.result = Some(if (200..300).contains(&reply.status) {
            serde_json::from_slice::<Value>(&reply.body)
                .map_err(|e| GraphqlError::new(format!("the flow's output does not read back: {e}")))
        } else {
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let message =
                body.get("message").and_then(Value::as_str).unwrap_or("the flow failed").to_string();
            Err(GraphqlError {
                message,
                pos: spec.map(|s| s.pos),
                path: spec.map(|s| s.path.clone()).unwrap_or_default(),
                status: Some(reply.status),
            })
        });
    }

    /// Starts what may start (every flow of a query; a mutation's next once the one before has
    /// answered), and answers once every flow has.
    fn progress(&mut self, host: &mut dyn Host) {
        if self.answered {
            return;
        }
        let mut index = 0;
        while index < self.runs.len() {
            let started = self.runs.get(index).is_some_and(|r| r.execution.is_some());
            let done = self.runs.get(index).is_some_and(|r| r.result.is_some());
            if !started && !self.abandoned {
                self.start_run(index, host);
            }
            let done_now = done || self.runs.get(index).is_some_and(|r| r.result.is_some());
            if self.prepared.mutation && !done_now {
                break;
            }
            index += 1;
        }
        if self.runs.iter().all(|r| r.result.is_some()) {
            self.answered = true;
            let reply = self.answer();
            host.respond(reply);
        }
    }

    fn start_run(&mut self, index: usize, host: &mut dyn Host) {
        let Some(spec) = self.prepared.runs.get_mut(index) else { return };
        let input = std::mem::take(&mut spec.input);
        let request = Request {
            headers: self.headers.clone(),
            body: Vec::new(),
            now_unix_ms: self.now_unix_ms,
            seed: self.seed.wrapping_add(index as u64).rotate_left(17),
        };
        let mut field_host = FieldHost { host, reply: None };
        let execution = Execution::start_with_input(
            Rc::clone(&self.engine),
            self.endpoint,
            spec.flow,
            input,
            request,
            &mut field_host,
        );
        let reply = field_host.reply;
        if let Some(run) = self.runs.get_mut(index) {
            run.execution = Some(execution);
        }
        self.record(index, reply);
    }

    fn answer(&self) -> Reply {
        let mut errors = Vec::new();
        let results: Vec<Option<&Value>> = self
            .runs
            .iter()
            .map(|run| match &run.result {
                Some(Ok(value)) => Some(value),
                Some(Err(error)) => {
                    errors.push(error.to_json());
                    None
                }
                None => None,
            })
            .collect();
        // Errors first, as the specification suggests, then `data` in the query's order.
        let mut body = String::from("{");
        if !errors.is_empty() {
            body.push_str("\"errors\":");
            body.push_str(&codec::json_text(&Value::Array(errors)));
            body.push(',');
        }
        body.push_str("\"data\":");
        respond::object(&self.prepared.selection, &results, &mut body);
        body.push('}');
        self.style.reply_text(200, body)
    }
}

/// The host a field's flow sees: its calls are the operation's, its answer is kept for the
/// operation's.
struct FieldHost<'a> {
    host: &'a mut dyn Host,
    reply: Option<Reply>,
}

impl Host for FieldHost<'_> {
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String> {
        self.host.dispatch(callout)
    }

    fn respond(&mut self, reply: Reply) {
        self.reply = Some(reply);
    }

    fn forward(&mut self, forwarding: Forwarding) -> Result<(), String> {
        warn!("a GraphQL field cannot forward to `{}`", forwarding.cluster);
        Err("a GraphQL field cannot forward a request".into())
    }

    fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }

    fn record(&mut self, event: Event) {
        self.host.record(event);
    }
}
