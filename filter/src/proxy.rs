//! The proxy-wasm adapter: Envoy's callbacks in, engine calls out.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

use semaphore_plan::FORWARD_CLUSTER_HEADER;

use crate::config::load_plan;
use crate::engine::saga::{Limits, DRAIN_LIMIT};
use crate::engine::{
    http_status_of_grpc, Callout, Engine, Event, Execution, Forwarding, Host, Match, Reply, Request, Route,
    SagaEvent, Sagas, UpstreamResponse,
};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root { shared: None, draining_since: None }));
}}

/// What the root context and every HTTP context of this VM share: the plan, the metrics, and
/// the compensations of failed flows, which the root context dispatches.
struct Shared {
    engine: Rc<Engine>,
    metrics: Metrics,
    sagas: RefCell<Sagas>,
}

#[derive(Default)]
struct Metrics {
    flows: Vec<FlowMetrics>,
    /// Compensation attempts dispatched, and those that failed.
    rollbacks: Option<u32>,
    rollback_failures: Option<u32>,
    compensations_pending: Option<u32>,
    compensations_in_flight: Option<u32>,
}

struct FlowMetrics {
    requests: Option<u32>,
    failures: Option<u32>,
    duration: Option<u32>,
    nodes: Vec<NodeMetrics>,
}

struct NodeMetrics {
    calls: Option<u32>,
    failures: Option<u32>,
    duration: Option<u32>,
    compensations_succeeded: Option<u32>,
    compensations_retried: Option<u32>,
    compensations_given_up: Option<u32>,
}

/// Stat names hold letters, digits and `_`; other characters of a flow or resource name become
/// `_`.
fn stat_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

impl Metrics {
    fn define(engine: &Engine) -> Metrics {
        let define = |kind: MetricType, name: String| match hostcalls::define_metric(kind, &name) {
            Ok(id) => Some(id),
            Err(status) => {
                warn!("cannot define the metric {name}: {status:?}");
                None
            }
        };
        let flows = engine
            .plan
            .flows
            .iter()
            .map(|flow| {
                let prefix = format!("semaphore.flow.{}", stat_name(&flow.name));
                FlowMetrics {
                    requests: define(MetricType::Counter, format!("{prefix}.requests")),
                    failures: define(MetricType::Counter, format!("{prefix}.failures")),
                    duration: define(MetricType::Histogram, format!("{prefix}.duration_ms")),
                    nodes: flow
                        .nodes
                        .iter()
                        .filter(|node| node.call.is_some())
                        .map(|node| {
                            let prefix = format!("{prefix}.resource.{}", stat_name(&node.name));
                            let compensation = |what: &str| match node.rollback {
                                Some(_) => {
                                    define(MetricType::Counter, format!("{prefix}.compensations.{what}"))
                                }
                                None => None,
                            };
                            NodeMetrics {
                                calls: define(MetricType::Counter, format!("{prefix}.calls")),
                                failures: define(MetricType::Counter, format!("{prefix}.failures")),
                                duration: define(MetricType::Histogram, format!("{prefix}.duration_ms")),
                                compensations_succeeded: compensation("succeeded"),
                                compensations_retried: compensation("retried"),
                                compensations_given_up: compensation("given_up"),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        Metrics {
            flows,
            rollbacks: define(MetricType::Counter, "semaphore.rollbacks".into()),
            rollback_failures: define(MetricType::Counter, "semaphore.rollback_failures".into()),
            compensations_pending: define(MetricType::Gauge, "semaphore.compensations.pending".into()),
            compensations_in_flight: define(MetricType::Gauge, "semaphore.compensations.in_flight".into()),
        }
    }

    fn record_sagas(&self, engine: &Engine, sagas: &Sagas, events: &[SagaEvent]) {
        for event in events {
            let (flow, node) = match event {
                SagaEvent::Succeeded { flow, node }
                | SagaEvent::Retried { flow, node }
                | SagaEvent::GivenUp { flow, node } => (*flow, *node),
            };
            let Some(metrics) = self.node(engine, flow, node) else { continue };
            match event {
                SagaEvent::Succeeded { .. } => increment(metrics.compensations_succeeded),
                SagaEvent::Retried { .. } => {
                    increment(metrics.compensations_retried);
                    increment(self.rollback_failures);
                }
                SagaEvent::GivenUp { .. } => {
                    increment(metrics.compensations_given_up);
                    increment(self.rollback_failures);
                }
            }
        }
        observe(self.compensations_pending, sagas.pending() as u64);
        observe(self.compensations_in_flight, sagas.in_flight() as u64);
    }

    fn node(&self, engine: &Engine, flow: usize, node: usize) -> Option<&NodeMetrics> {
        // Metrics exist for nodes with calls only; find this node's place among them.
        let nodes = &engine.plan.flows.get(flow)?.nodes;
        let position = nodes.get(..node)?.iter().filter(|n| n.call.is_some()).count();
        self.flows.get(flow)?.nodes.get(position)
    }

    fn record(&self, engine: &Engine, event: Event) {
        match event {
            Event::Flow { flow, failed, duration_ms } => {
                let Some(metrics) = self.flows.get(flow) else { return };
                increment(metrics.requests);
                if failed {
                    increment(metrics.failures);
                }
                observe(metrics.duration, duration_ms);
            }
            Event::Call { flow, node, failed, duration_ms } => {
                let Some(metrics) = self.node(engine, flow, node) else { return };
                increment(metrics.calls);
                if failed {
                    increment(metrics.failures);
                }
                observe(metrics.duration, duration_ms);
            }
        }
    }
}

fn increment(metric: Option<u32>) {
    if let Some(id) = metric {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

fn observe(metric: Option<u32>, value: u64) {
    if let Some(id) = metric {
        let _ = hostcalls::record_metric(id, value);
    }
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

struct Root {
    shared: Option<Rc<Shared>>,
    /// Envoy is stopping this VM: since when, in ms, while compensations still run.
    draining_since: Option<u64>,
}

impl Root {
    /// Dispatches the compensations that are due. Runs in the root context, so their answers
    /// come back here even when the request is long gone.
    fn pump(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        let now = now_ms();
        let mut sagas = shared.sagas.borrow_mut();
        let events = sagas.pump(now, &mut |callout| {
            increment(shared.metrics.rollbacks);
            dispatch(callout)
        });
        shared.metrics.record_sagas(&shared.engine, &sagas, &events);
        // Tick when something is due; idle, no tick at all.
        let period = match sagas.next_wakeup() {
            Some(due) => Duration::from_millis(due.saturating_sub(now).clamp(1, 1000)),
            None if self.draining_since.is_some() => Duration::from_millis(10),
            None => Duration::ZERO,
        };
        let _ = hostcalls::set_tick_period(period);
        if let Some(since) = self.draining_since {
            let out_of_time = now.saturating_sub(since) >= DRAIN_LIMIT.as_millis() as u64;
            if out_of_time {
                let events = sagas.abandon();
                shared.metrics.record_sagas(&shared.engine, &sagas, &events);
            }
            if sagas.is_idle() {
                info!("compensations done; the VM may stop");
                let _ = hostcalls::done();
            }
        }
    }

    fn rollback_answered(&mut self, token: u32, status: Option<u16>) {
        let Some(shared) = self.shared.clone() else { return };
        let events = shared.sagas.borrow_mut().answered(token, status, now_ms());
        if let Some(events) = events {
            shared.metrics.record_sagas(&shared.engine, &shared.sagas.borrow(), &events);
        }
        self.pump();
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let status = read_http_response(body_size).status;
        self.rollback_answered(token, status);
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, _response_size: usize) {
        let status = if status_code == 0 { Some(200) } else { Some(http_status_of_grpc(status_code)) };
        self.rollback_answered(token, status);
    }

    /// Envoy stops this VM (a drain, a new configuration, shutdown): what waits is dispatched at
    /// once, and the VM lives on until it is answered or `DRAIN_LIMIT` passes.
    fn on_done(&mut self) -> bool {
        let Some(shared) = self.shared.clone() else { return true };
        if shared.sagas.borrow().is_idle() {
            return true;
        }
        let waiting = shared.sagas.borrow().pending() + shared.sagas.borrow().in_flight();
        warn!("the VM is stopping with {waiting} compensation(s) to finish; finishing them first");
        shared.sagas.borrow_mut().drain();
        self.draining_since = Some(now_ms());
        self.pump();
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
                let metrics = Metrics::define(&engine);
                let seed = now_ms();
                self.shared = Some(Rc::new(Shared {
                    engine,
                    metrics,
                    sagas: RefCell::new(Sagas::new(Limits::default(), seed)),
                }));
                true
            }
            // Refused, but the filter stays in place and lets every request through, so that
            // Envoy goes on serving its other routes.
            Err(reason) => {
                error!("refusing the plugin configuration, no flow will run: {reason}");
                self.shared = None;
                true
            }
        }
    }

    fn on_tick(&mut self) {
        self.pump();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter { shared: self.shared.clone(), stage: Stage::Idle, context_id }))
    }
}

enum Stage {
    Idle,
    /// A flow endpoint matched; its body is still arriving.
    Buffering(Match),
    /// The flow runs; the request is held. A proxy's body arriving meanwhile is buffered by
    /// Envoy.
    Running(Box<Execution>),
    /// The flow answered the client.
    Done,
    /// The proxy's request went on to Envoy's router, which streams its body upstream.
    Forwarded,
}

struct Filter {
    shared: Option<Rc<Shared>>,
    stage: Stage,
    context_id: u32,
}

fn dispatch(callout: &Callout) -> Result<u32, String> {
    let refused = |status| format!("Envoy refused the call to cluster `{}` ({status:?})", callout.cluster);
    if let Some(grpc) = &callout.grpc {
        let metadata: Vec<(&str, &[u8])> =
            callout.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        return hostcalls::dispatch_grpc_call(
            &grpc_service(&callout.cluster, &callout.authority),
            &grpc.service,
            &grpc.method,
            metadata,
            callout.body.as_deref(),
            callout.timeout,
        )
        .map_err(refused);
    }
    let headers: Vec<(&str, &str)> = callout.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    hostcalls::dispatch_http_call(&callout.cluster, headers, callout.body.as_deref(), vec![], callout.timeout)
        .map_err(refused)
}

/// The engine's view of Envoy for one HTTP context.
struct EnvoyHost<'a> {
    shared: &'a Shared,
    /// The engine forwarded the request: the filter lets it go on instead of holding it.
    forwarded: bool,
}

impl<'a> EnvoyHost<'a> {
    fn new(shared: &'a Shared) -> Self {
        EnvoyHost { shared, forwarded: false }
    }
}

/// Changes a request header while the request is held (`None` removes it). The SDK traps on a
/// refusal, which Envoy gives only when the request headers are gone; the filter never changes
/// them after it let the request go on.
fn set_request_header(name: &str, value: Option<&str>) -> Result<(), String> {
    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
        .map_err(|status| format!("Envoy refused to set the request header `{name}` ({status:?})"))
}

/// Envoy picked the route before the filter ran; a router using that stale pick would ignore
/// the changed headers. Whether a wasm filter's header changes alone make Envoy pick again has
/// changed between releases; the `clear_route_cache` foreign function makes it so in those that
/// have it (1.40 does), and older ones, which lack it, re-pick on every header change.
fn refresh_route() {
    if let Err(status) = hostcalls::call_foreign_function("clear_route_cache", None) {
        debug!("Envoy has no clear_route_cache ({status:?}); it re-picks routes on header changes");
    }
}

/// A client naming the forward cluster itself would pick any cluster Envoy knows: the header is
/// the filter's alone.
fn remove_client_forward_cluster() {
    let sent = hostcalls::get_map_value(MapType::HttpRequestHeaders, FORWARD_CLUSTER_HEADER);
    if matches!(sent, Ok(Some(_))) {
        warn!("removed the `{FORWARD_CLUSTER_HEADER}` header a client sent");
        if set_request_header(FORWARD_CLUSTER_HEADER, None).is_ok() {
            refresh_route();
        }
    }
}

impl Host for EnvoyHost<'_> {
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String> {
        dispatch(callout)
    }

    fn respond(&mut self, reply: Reply) {
        let headers: Vec<(&str, &str)> =
            reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        if let Err(status) =
            hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
        {
            warn!("cannot send the response ({status:?})");
        }
    }

    fn forward(&mut self, forwarding: Forwarding) -> Result<(), String> {
        for (name, value) in &forwarding.headers {
            set_request_header(name, value.as_deref())?;
        }
        // After the proxy's own headers, so that none of them can change where the request goes.
        set_request_header(":authority", Some(&forwarding.authority))?;
        set_request_header(":path", Some(&forwarding.path))?;
        set_request_header(FORWARD_CLUSTER_HEADER, Some(&forwarding.cluster))?;
        refresh_route();
        self.forwarded = true;
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn record(&mut self, event: Event) {
        self.shared.metrics.record(&self.shared.engine, event);
    }
}

/// The `envoy.config.core.v3.GrpcService` Envoy reads a gRPC callout's target from: the
/// cluster, and the `:authority` to send. Envoy takes a plain cluster name too, which is the
/// fallback should the message not be text.
fn grpc_service(cluster: &str, authority: &str) -> String {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let mut envoy_grpc = Vec::new();
    for (number, text) in [(1, cluster), (2, authority)] {
        encode_key(number, WireType::LengthDelimited, &mut envoy_grpc);
        encode_varint(text.len() as u64, &mut envoy_grpc);
        envoy_grpc.extend_from_slice(text.as_bytes());
    }
    let mut service = Vec::new();
    encode_key(1, WireType::LengthDelimited, &mut service);
    encode_varint(envoy_grpc.len() as u64, &mut service);
    service.extend_from_slice(&envoy_grpc);
    String::from_utf8(service).unwrap_or_else(|_| cluster.to_string())
}

/// An HTTP callout's answer. Envoy answers for an upstream it could not reach with a 503 of its
/// own; that is no answer from the upstream, which the engine reports as 502. Whether the
/// upstream may have performed a call that got no answer is read from Envoy's words: a timeout
/// or a reset after connecting may have; a connection that never opened has not.
fn read_http_response(body_size: usize) -> UpstreamResponse {
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status =
        headers.iter().find(|(name, _)| name == ":status").and_then(|(_, value)| value.parse::<u16>().ok());
    let body = match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
        Ok(body) => body.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let envoys_own = status == Some(503)
        && (body.starts_with(b"upstream connect error") || body.starts_with(b"no healthy upstream"));
    let never_sent =
        envoys_own && (contains(&body, b"connection failure") || body.starts_with(b"no healthy upstream"));
    let timed_out = status == Some(504) && body.starts_with(b"upstream request timeout");
    let outcome_unknown = status.is_none() || timed_out || (envoys_own && !never_sent);
    UpstreamResponse { status: if envoys_own { None } else { status }, headers, body, outcome_unknown }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

impl Filter {
    fn start(&mut self, matched: Match, body: Vec<u8>) {
        let Some(shared) = self.shared.clone() else { return };
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let now_unix_ms = now_ms();
        let seed = now_unix_ms ^ u64::from(self.context_id).rotate_left(32);
        let request = Request { headers, body, now_unix_ms, seed };
        let mut host = EnvoyHost::new(&shared);
        let execution = Execution::start(Rc::clone(&shared.engine), matched, request, &mut host);
        self.stage = Stage::Running(Box::new(execution));
        self.settle(host.forwarded);
    }

    /// Once the flow has answered or forwarded, hands its compensations (if it failed) to the
    /// root context.
    fn settle(&mut self, forwarded: bool) {
        let Stage::Running(execution) = &mut self.stage else { return };
        if !execution.is_finished() {
            return;
        }
        let compensations = execution.take_rollbacks();
        self.stage = if forwarded { Stage::Forwarded } else { Stage::Done };
        if compensations.is_empty() {
            return;
        }
        if let Some(shared) = &self.shared {
            let events = shared.sagas.borrow_mut().admit(compensations);
            shared.metrics.record_sagas(&shared.engine, &shared.sagas.borrow(), &events);
            // Sets the tick of this VM's root context, which dispatches the compensations.
            let _ = hostcalls::set_tick_period(Duration::from_millis(1));
        }
    }

    fn answer(&mut self, token: u32, response: UpstreamResponse) {
        let Some(shared) = self.shared.clone() else { return };
        let Stage::Running(execution) = &mut self.stage else { return };
        let mut host = EnvoyHost::new(&shared);
        execution.on_response(token, response, &mut host);
        self.settle(host.forwarded);
        if matches!(self.stage, Stage::Forwarded) {
            if let Err(status) = hostcalls::resume_http_request() {
                warn!("cannot resume the forwarded request ({status:?})");
            }
        }
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let response = read_http_response(body_size);
        self.answer(token, response);
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let message = hostcalls::get_grpc_status().ok().and_then(|(_, message)| message).unwrap_or_default();
        // Envoy appends where the status came from; the client wants the upstream's words.
        let message = message.strip_suffix("{via_upstream}").unwrap_or(&message).to_string();
        let body = match hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        // DEADLINE_EXCEEDED: the upstream may have done it, and its answer came too late.
        let outcome_unknown = status_code == 4;
        let response = UpstreamResponse {
            status: Some(http_status_of_grpc(status_code)),
            headers: vec![("grpc-status".into(), status_code.to_string()), ("grpc-message".into(), message)],
            body,
            outcome_unknown,
        };
        self.answer(token, response);
    }

    fn on_done(&mut self) -> bool {
        // The stream ended before the flow answered: the client went away.
        if let (Stage::Running(execution), Some(shared)) = (&mut self.stage, self.shared.clone()) {
            execution.abandon(&mut EnvoyHost::new(&shared));
            self.settle(false);
        }
        true
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        // Every request, even with no plan loaded: the forward route must stay out of reach.
        remove_client_forward_cluster();
        let Some(shared) = &self.shared else { return Action::Continue };
        let method = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":method").ok().flatten();
        let path = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path").ok().flatten();
        let (Some(method), Some(path)) = (method, path) else { return Action::Continue };
        let matched = match shared.engine.route(&method, &path) {
            Route::Endpoint(matched) => matched,
            Route::NoEndpoint => return Action::Continue,
            Route::MethodNotAllowed(allowed) => {
                EnvoyHost::new(shared).respond(Engine::method_not_allowed(&method, &path, &allowed));
                return Action::Pause;
            }
        };
        if shared.engine.forwards(&matched) {
            // A proxy's resources cannot read the body: run them now, and hold the request
            // until they settle.
            self.start(matched, Vec::new());
            return match self.stage {
                Stage::Forwarded => Action::Continue,
                _ => Action::Pause,
            };
        }
        if end_of_stream {
            self.start(matched, Vec::new());
        } else {
            self.stage = Stage::Buffering(matched);
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &self.stage {
            Stage::Idle | Stage::Forwarded => return Action::Continue,
            Stage::Buffering(_) if end_of_stream => {}
            // Envoy buffers the body (up to its buffer limit, past which it answers 413): until
            // the end of the stream for a flow, until the resources settle for a proxy.
            _ => return Action::Pause,
        }
        let Stage::Buffering(matched) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return Action::Pause;
        };
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        self.start(matched, body);
        Action::Pause
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        match self.stage {
            // Going on here would let the held request go on to the router before the flow
            // settled.
            Stage::Running(_) => Action::Pause,
            _ => Action::Continue,
        }
    }
}
