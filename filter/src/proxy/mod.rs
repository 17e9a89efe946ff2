//! The proxy-wasm adapter: Envoy's callbacks in, engine calls out. It holds the contexts, the
//! map from each call in flight to the stream it belongs to, and the hostcalls (`abi.rs`,
//! `callouts.rs`, `host.rs`, `metrics.rs`); what a flow does is the engine's.

mod abi;
mod callouts;
mod grpc_hop;
mod host;
mod metrics;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use rustc_hash::FxHashMap;

use semaphore_plan::GRAPHQL_LISTENER_HEADER;

use crate::config::load_plan;
use crate::engine::saga::{Limits, DRAIN_LIMIT};
use crate::engine::{Callout, Engine, Host, Match, Request, Route, Run, Sagas, UpstreamResponse, Wire};
use callouts::{
    dispatch, now_ms, read_grpc_response, read_http_response, set_tick_period, take_outbox, ticking,
    DISPATCH_AS_ROOT,
};
use host::{remove_client_forward_cluster, EnvoyHost};
use metrics::{increment, Metrics};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| {
        Box::new(Root { context_id, shared: None, retired: Vec::new(), draining_since: None })
    });
}}

/// What the root context and every HTTP context of this VM share: the plan, the metrics, the
/// flows running, and the compensations of failed flows.
///
/// Every call a flow makes is the root context's: Envoy sends its answer to the root context
/// even after the client has gone, so a call in flight is never lost with its stream. The
/// root then runs the flow, answering the client through its stream while it is there.
struct Shared {
    root_id: u32,
    engine: Rc<Engine>,
    metrics: Metrics,
    sagas: RefCell<Sagas>,
    /// Each HTTP context's flow, by context id.
    streams: RefCell<FxHashMap<u32, Stream>>,
    /// Which HTTP context each call in flight belongs to, by token.
    owners: RefCell<FxHashMap<u32, u32>>,
    /// A call an HTTP context asks the root context to dispatch (see `dispatch_as_root`), and
    /// what came of it.
    outbox: std::cell::Cell<*const Callout>,
    dispatched: RefCell<Option<Result<u32, String>>>,
    /// The log has said once that bodies do not reach the filter.
    told_no_body: std::cell::Cell<bool>,
}

/// One HTTP context's flow.
struct Stream {
    stage: Stage,
    /// The client is there to answer; false once its stream has ended.
    attached: bool,
}

struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    /// The state of plans replaced by a new configuration, while their flows and compensations
    /// finish.
    retired: Vec<Rc<Shared>>,
    /// Envoy is stopping this VM: since when, in ms, while compensations still run.
    draining_since: Option<u64>,
}

impl Root {
    fn all_shared(&self) -> Vec<Rc<Shared>> {
        self.shared.iter().chain(self.retired.iter()).cloned().collect()
    }

    /// The state a call in flight belongs to, its plan's or a retired one's: a flow's call, by
    /// the stream it is for, or a compensation.
    fn owner_of(&self, token: u32) -> Option<(Rc<Shared>, Option<u32>)> {
        self.shared.iter().chain(&self.retired).find_map(|shared| {
            if let Some(context_id) = shared.owners.borrow_mut().remove(&token) {
                return Some((Rc::clone(shared), Some(context_id)));
            }
            shared.sagas.borrow().awaits(token).then(|| (Rc::clone(shared), None))
        })
    }

    /// Dispatches the compensations that are due, and keeps the timer for the next.
    fn pump(&mut self, now: u64, on_tick: bool) {
        let mut next: Option<u64> = None;
        let mut idle = true;
        for shared in self.shared.iter().chain(&self.retired) {
            let mut sagas = shared.sagas.borrow_mut();
            let events = sagas.pump(now, &mut |callout| {
                increment(shared.metrics.rollbacks);
                dispatch(callout)
            });
            shared.metrics.record_sagas(&shared.engine, &sagas, &events);
            if let Some(since) = self.draining_since {
                if now.saturating_sub(since) >= DRAIN_LIMIT.as_millis() as u64 {
                    let events = sagas.abandon();
                    shared.metrics.record_sagas(&shared.engine, &sagas, &events);
                }
            }
            next = match (next, sagas.next_wakeup()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            idle &= sagas.is_idle() && shared.owners.borrow().is_empty();
        }
        self.retired.retain(|shared| !shared.sagas.borrow().is_idle() || !shared.owners.borrow().is_empty());
        // Tick when something is due; idle, no tick at all. The timer stops on a tick that
        // finds nothing to do, not on every answer: under load, requests would start and stop
        // it all the time.
        let mut period = match next {
            Some(due) => Duration::from_millis(due.saturating_sub(now).clamp(1, 1000)),
            None if self.draining_since.is_some() => Duration::from_millis(10),
            None => Duration::ZERO,
        };
        if self.bodies_awaited() && (period.is_zero() || period > Duration::from_millis(100)) {
            period = Duration::from_millis(100);
        }
        if !(period.is_zero() && ticking() && !on_tick) {
            set_tick_period(period);
        }
        if self.draining_since.is_some() && idle {
            info!("compensations done; the VM may stop");
            let _ = hostcalls::done();
        }
    }

    /// Whether a template of the flow that made call `token` reads its answer's headers. A
    /// compensation's answer is read for its status alone.
    fn reads_response_headers(&self, token: u32) -> bool {
        self.shared.iter().chain(&self.retired).any(|shared| {
            let Some(context_id) = shared.owners.borrow().get(&token).copied() else { return false };
            let streams = shared.streams.borrow();
            let stage = streams.get(&context_id).map(|stream| &stream.stage);
            matches!(stage, Some(Stage::Running(run)) if run.reads_response_headers(token))
        })
    }

    /// An answer to a root-owned call: a flow's, or a compensation's.
    fn answered(&mut self, token: u32, response: UpstreamResponse) {
        let now = now_ms();
        match self.owner_of(token) {
            Some((shared, Some(context_id))) => flow_answered(&shared, context_id, token, response, now),
            Some((shared, None)) => {
                let events = shared.sagas.borrow_mut().answered(token, response.status, now);
                if let Some(events) = events {
                    shared.metrics.record_sagas(&shared.engine, &shared.sagas.borrow(), &events);
                }
            }
            None => {
                debug!("answer to unknown call {token} ignored");
                return;
            }
        }
        self.pump(now, false);
    }
}

/// Runs a flow on its call's answer, through its stream while the client is there.
fn flow_answered(shared: &Rc<Shared>, context_id: u32, token: u32, response: UpstreamResponse, now_ms: u64) {
    let Some(mut stream) = shared.streams.borrow_mut().remove(&context_id) else { return };
    let Stage::Running(execution) = &mut stream.stage else {
        shared.streams.borrow_mut().insert(context_id, stream);
        return;
    };
    let mut host = EnvoyHost::new(shared, context_id, true, stream.attached, now_ms);
    execution.on_response(token, response, &mut host);
    let forwarded = host.forwarded;
    settle(shared, &mut stream, forwarded);
    if matches!(stream.stage, Stage::Forwarded) && host.enter_stream() {
        if let Err(status) = hostcalls::resume_http_request() {
            warn!("cannot resume the forwarded request ({status:?})");
        }
    }
    host.leave_stream();
    if stream.attached || matches!(stream.stage, Stage::Running(_)) {
        shared.streams.borrow_mut().insert(context_id, stream);
    }
}

/// Once the flow has answered or forwarded (or, its client gone, its calls have ended), hands
/// its compensations (if it failed) to the root context.
fn settle(shared: &Shared, stream: &mut Stream, forwarded: bool) {
    let Stage::Running(execution) = &mut stream.stage else { return };
    if !execution.is_finished() {
        return;
    }
    let (compensations, given_up) = execution.take_compensations();
    stream.stage = if forwarded { Stage::Forwarded } else { Stage::Done };
    if !given_up.is_empty() {
        shared.metrics.record_sagas(&shared.engine, &shared.sagas.borrow(), &given_up);
    }
    if compensations.is_empty() {
        return;
    }
    let events = shared.sagas.borrow_mut().admit(compensations);
    shared.metrics.record_sagas(&shared.engine, &shared.sagas.borrow(), &events);
    // Sets the tick of this VM's root context, which dispatches the compensations.
    set_tick_period(Duration::from_millis(1));
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        let response = read_http_response(headers, body_size, self.reads_response_headers(token));
        self.answered(token, response);
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let response = read_grpc_response(status_code, response_size);
        self.answered(token, response);
    }

    /// Envoy stops this VM (a drain, a new configuration, shutdown): what waits is dispatched at
    /// once, and the VM lives on until it is answered or `DRAIN_LIMIT` passes.
    fn on_done(&mut self) -> bool {
        let busy: usize = self
            .all_shared()
            .iter()
            .map(|shared| {
                shared.sagas.borrow().pending()
                    + shared.sagas.borrow().in_flight()
                    + shared.owners.borrow().len()
            })
            .sum();
        if busy == 0 {
            return true;
        }
        warn!("the VM is stopping with {busy} call(s) and compensation(s) to finish; finishing them first");
        for shared in self.all_shared() {
            // Envoy may stop the process before they are answered (it does at shutdown): each
            // is on record first.
            for line in shared.sagas.borrow().unconfirmed() {
                warn!("{line}");
            }
            shared.sagas.borrow_mut().drain();
        }
        let now = now_ms();
        self.draining_since = Some(now);
        self.pump(now, false);
        false
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let configuration = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                error!("cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        match load_plan(&configuration) {
            Ok(plan) => {
                // The configuration's `log_level`; Envoy's own level for `wasm` still applies.
                log::set_max_level(match plan.log_level.as_str() {
                    "error" => log::LevelFilter::Error,
                    "warn" => log::LevelFilter::Warn,
                    "debug" => log::LevelFilter::Debug,
                    "trace" => log::LevelFilter::Trace,
                    _ => log::LevelFilter::Info,
                });
                info!(
                    "plan loaded: {} endpoint(s), {} flow(s), {} service(s)",
                    plan.endpoints.len(),
                    plan.flows.len(),
                    plan.services.len()
                );
                let engine = Engine::new(plan);
                LAST_GOOD_PLAN.with(|last| *last.borrow_mut() = Some(Rc::clone(&engine)));
                self.serve(engine);
                true
            }
            // A live update Envoy cannot take back once it sent it: the plan this VM ran last
            // goes on serving under the new configuration.
            Err(reason) if crate::config::rejects_invalid(&configuration) => {
                match LAST_GOOD_PLAN.with(|last| last.borrow().clone()) {
                    Some(engine) => {
                        error!("refusing the new plan, the previous one keeps serving: {reason}");
                        self.serve(engine);
                    }
                    None => error!("refusing the plugin configuration, no flow will run: {reason}"),
                }
                true
            }
            // Refused, but the filter stays in place and lets every request through, so that
            // Envoy goes on serving its other routes.
            Err(reason) => {
                error!("refusing the plugin configuration, no flow will run: {reason}");
                if let Some(previous) = self.shared.take() {
                    self.retired.push(previous);
                }
                true
            }
        }
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        self.answer_bodies_that_never_came(now);
        self.pump(now, true);
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if queue_id == DISPATCH_AS_ROOT {
            self.dispatch_from_outbox();
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter { shared: self.shared.clone(), context_id }))
    }
}

thread_local! {
    /// The last plan this VM loaded, for a configuration update whose plan it must refuse.
    static LAST_GOOD_PLAN: RefCell<Option<Rc<Engine>>> = const { RefCell::new(None) };
}

impl Root {
    /// Serves `engine`'s plan from now on; the state of the previous one stays until its flows
    /// and compensations finish.
    fn serve(&mut self, engine: Rc<Engine>) {
        let metrics = Metrics::define(&engine);
        let shared = Rc::new(Shared {
            root_id: self.context_id,
            engine,
            metrics,
            sagas: RefCell::new(Sagas::new(Limits::default(), now_ms())),
            streams: RefCell::default(),
            owners: RefCell::default(),
            outbox: std::cell::Cell::new(std::ptr::null()),
            dispatched: RefCell::new(None),
            told_no_body: std::cell::Cell::new(false),
        });
        if let Some(previous) = self.shared.replace(shared) {
            self.retired.push(previous);
        }
    }

    /// Requests held for a body no data of which arrived by their deadline: Envoy is not
    /// delivering bodies to the filter. Each is answered, with what to change, and the VM says
    /// so once in its log.
    fn answer_bodies_that_never_came(&mut self, now: u64) {
        let Some(shared) = self.shared.clone() else { return };
        let stuck: Vec<u32> = shared
            .streams
            .borrow()
            .iter()
            .filter_map(|(id, stream)| match &stream.stage {
                Stage::Buffering(b) if !b.data_seen && now >= b.deadline_ms => Some(*id),
                _ => None,
            })
            .collect();
        for context_id in stuck {
            let Some(Stream { stage: Stage::Buffering(buffering), .. }) =
                shared.streams.borrow_mut().remove(&context_id)
            else {
                continue;
            };
            if !shared.told_no_body.replace(true) {
                error!("{NO_BODY_MESSAGE}");
            }
            if hostcalls::set_effective_context(context_id).is_ok() {
                let reply = shared.engine.error_reply(&buffering.matched, 500, NO_BODY_MESSAGE);
                EnvoyHost::new(&shared, context_id, true, true, now).respond(reply);
            }
        }
        let _ = hostcalls::set_effective_context(self.context_id);
    }

    /// Whether a request waits for its body: the timer must keep ticking.
    fn bodies_awaited(&self) -> bool {
        self.shared.as_ref().is_some_and(|shared| {
            shared.streams.borrow().values().any(|s| matches!(&s.stage, Stage::Buffering(b) if !b.data_seen))
        })
    }

    /// An HTTP context asks for a call to be the root's (see `DISPATCH_AS_ROOT`).
    fn dispatch_from_outbox(&self) {
        let Some(shared) = &self.shared else { return };
        let Some(callout) = take_outbox(shared) else { return };
        *shared.dispatched.borrow_mut() = Some(dispatch(callout));
    }
}

/// A flow endpoint matched and its body is arriving.
struct Buffering {
    matched: Match,
    /// The request's headers, as read when it arrived.
    headers: Vec<(String, String)>,
    /// Until then the body's first data must have reached the filter: without
    /// `allow_on_headers_stop_iteration`, Envoy holds it back for as long as the filter holds
    /// the headers, and the request would wait forever.
    deadline_ms: u64,
    /// Some data arrived: Envoy delivers the body, the setting is there.
    data_seen: bool,
}

/// Without `allow_on_headers_stop_iteration` a body never reaches the filter: what a request
/// waiting for one is told, once `Engine::body_wait_ms` has passed.
const NO_BODY_MESSAGE: &str =
    "the request body never reached the filter: the Wasm filter's configuration needs \
     `allow_on_headers_stop_iteration: true` (Envoy 1.35 and later) for endpoints that take a body";

enum Stage {
    /// A flow endpoint matched; its body is still arriving.
    Buffering(Buffering),
    /// The flow runs; the request is held. A proxy's body arriving meanwhile is buffered by
    /// Envoy.
    Running(Box<Run>),
    /// The flow answered the client.
    Done,
    /// The proxy's request went on to Envoy's router, which streams its body upstream.
    Forwarded,
    /// The gRPC request went on to the internal listener (`grpc_hop.rs`); the trailers of its
    /// answer wait for its last data.
    GrpcHop(Vec<(String, String)>),
}

/// An HTTP context: its flow lives in `Shared::streams`, where the root context finds it too.
struct Filter {
    shared: Option<Rc<Shared>>,
    context_id: u32,
}

impl Filter {
    fn stage_is(&self, test: impl Fn(&Stage) -> bool) -> bool {
        let Some(shared) = &self.shared else { return false };
        shared.streams.borrow().get(&self.context_id).is_some_and(|stream| test(&stream.stage))
    }

    fn set_stage(&self, stage: Stage) {
        let Some(shared) = &self.shared else { return };
        shared.streams.borrow_mut().insert(self.context_id, Stream { stage, attached: true });
    }

    fn start(&mut self, matched: Match, headers: Vec<(String, String)>, body: Vec<u8>) {
        let Some(shared) = self.shared.clone() else { return };
        let now_unix_ms = now_ms();
        if let Some(reply) = shared.engine.answer_without_flow(&matched, &body) {
            EnvoyHost::new(&shared, self.context_id, false, true, now_unix_ms).respond(reply);
            self.set_stage(Stage::Done);
            return;
        }
        let seed = now_unix_ms ^ u64::from(self.context_id).rotate_left(32);
        let request = Request { headers, body, now_unix_ms, seed };
        let mut host = EnvoyHost::new(&shared, self.context_id, false, true, now_unix_ms);
        let execution = Run::start(Rc::clone(&shared.engine), matched, request, &mut host);
        let forwarded = host.forwarded;
        let mut stream = Stream { stage: Stage::Running(Box::new(execution)), attached: true };
        settle(&shared, &mut stream, forwarded);
        shared.streams.borrow_mut().insert(self.context_id, stream);
    }
}

impl Context for Filter {
    fn on_done(&mut self) -> bool {
        let Some(shared) = self.shared.clone() else { return true };
        let Some(mut stream) = shared.streams.borrow_mut().remove(&self.context_id) else { return true };
        stream.attached = false;
        if let Stage::Running(execution) = &mut stream.stage {
            // The stream ended before the flow answered: the client went away. Its calls in
            // flight go on, answered to the root context.
            execution.abandon(&mut EnvoyHost::new(&shared, self.context_id, false, false, now_ms()));
            settle(&shared, &mut stream, false);
        }
        if matches!(stream.stage, Stage::Running(_)) {
            shared.streams.borrow_mut().insert(self.context_id, stream);
        }
        true
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        // Read once: the route, the flow's headers and the forward cluster's check all come
        // from this one copy.
        let mut headers = abi::header_map(MapType::HttpRequestHeaders);
        // Every request, even with no plan loaded: the forward route must stay out of reach.
        remove_client_forward_cluster(&mut headers);
        let Some(shared) = self.shared.clone() else { return Action::Continue };
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let (Some(method), Some(path)) = (header(":method"), header(":path")) else {
            return Action::Continue;
        };
        // A gRPC call's hop arrives at the internal listener's filter as gRPC (`grpc_hop.rs`).
        let mut content_type = header("content-type").unwrap_or_default();
        let hopped = content_type == grpc_hop::HOP_CONTENT_TYPE && grpc_hop::from_internal_listener();
        if hopped {
            content_type = grpc_hop::CONTENT_TYPE.to_string();
        }
        // The GraphQL listener marks its requests; elsewhere a client's mark means nothing.
        let route = if header(GRAPHQL_LISTENER_HEADER).is_some() && shared.engine.graphql_has_own_listener() {
            shared.engine.route_graphql(&method, &path)
        } else {
            shared.engine.route(&method, &path, &content_type)
        };
        let matched = match route {
            Route::Endpoint(matched) => matched,
            Route::NoEndpoint => return Action::Continue,
            Route::Refused(reply) => {
                EnvoyHost::new(&shared, self.context_id, false, true, now_ms()).respond(reply);
                return Action::Pause;
            }
            Route::MethodNotAllowed(allowed) => {
                EnvoyHost::new(&shared, self.context_id, false, true, now_ms())
                    .respond(Engine::method_not_allowed(&method, &path, &allowed));
                return Action::Pause;
            }
        };
        if matched.wire == Wire::Grpc && !hopped {
            if let Err(reason) = grpc_hop::send_on() {
                warn!("{reason}");
                EnvoyHost::new(&shared, self.context_id, false, true, now_ms())
                    .respond(shared.engine.error_reply(&matched, 500, &reason));
                return Action::Pause;
            }
            self.set_stage(Stage::GrpcHop(Vec::new()));
            return Action::Continue;
        }
        if shared.engine.forwards(&matched) {
            // A proxy's resources cannot read the body: run them now, and hold the request
            // until they settle.
            self.start(matched, headers, Vec::new());
            return if self.stage_is(|stage| matches!(stage, Stage::Forwarded)) {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        if end_of_stream {
            self.start(matched, headers, Vec::new());
        } else {
            let timeout = shared.engine.body_wait_ms(&matched);
            self.set_stage(Stage::Buffering(Buffering {
                matched,
                headers,
                deadline_ms: now_ms() + timeout,
                data_seen: false,
            }));
            // The root context's timer watches for a body that never comes.
            set_tick_period(Duration::from_millis(100));
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else { return Action::Continue };
        let read = |size| match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let buffering = {
            let mut streams = shared.streams.borrow_mut();
            match streams.get_mut(&self.context_id).map(|stream| &mut stream.stage) {
                None | Some(Stage::Forwarded | Stage::GrpcHop(_)) => return Action::Continue,
                Some(Stage::Buffering(buffering)) => {
                    buffering.data_seen = true;
                    let matched = &buffering.matched;
                    end_of_stream
                        || shared.engine.streams(matched)
                            && shared.engine.first_message_arrived(matched, &read(body_size))
                }
                // Envoy buffers the body (up to its buffer limit, past which it answers 413):
                // until the end of the stream for a flow, until the resources settle for a proxy.
                _ => false,
            }
        };
        if !buffering {
            return Action::Pause;
        }
        let stream = shared.streams.borrow_mut().remove(&self.context_id);
        let Some(Stream { stage: Stage::Buffering(Buffering { matched, headers, .. }), .. }) = stream else {
            return Action::Pause;
        };
        self.start(matched, headers, read(body_size));
        Action::Pause
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if !self.stage_is(|stage| matches!(stage, Stage::GrpcHop(_))) {
            return Action::Continue;
        }
        let trailers = grpc_hop::answer_headers(end_of_stream).unwrap_or_default();
        self.set_stage(Stage::GrpcHop(trailers));
        Action::Continue
    }

    fn on_http_response_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            let Some(shared) = &self.shared else { return Action::Continue };
            if let Some(Stage::GrpcHop(trailers)) =
                shared.streams.borrow_mut().get_mut(&self.context_id).map(|stream| &mut stream.stage)
            {
                grpc_hop::add_trailers(&std::mem::take(trailers));
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        // Going on here would let the held request go on to the router before the flow settled.
        if self.stage_is(|stage| matches!(stage, Stage::Running(_))) {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
