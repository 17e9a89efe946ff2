//! The proxy-wasm adapter: Envoy's callbacks in, engine calls out.

use std::rc::Rc;

use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::config::load_plan;
use crate::engine::{
    http_status_of_grpc, Callout, Engine, Execution, Host, Match, Reply, Request, UpstreamResponse,
};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root { engine: None }));
}}

struct Root {
    engine: Option<Rc<Engine>>,
}

impl Context for Root {}

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
                info!(
                    "plan loaded: {} endpoint(s), {} flow(s), {} service(s)",
                    plan.endpoints.len(),
                    plan.flows.len(),
                    plan.services.len()
                );
                self.engine = Some(Engine::new(plan));
                true
            }
            Err(reason) => {
                error!("refusing the plugin configuration: {reason}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter { engine: self.engine.clone(), stage: Stage::Idle, context_id }))
    }
}

enum Stage {
    Idle,
    /// A flow endpoint matched; its body is still arriving.
    Buffering(Match),
    Running(Execution),
    Done,
}

struct Filter {
    engine: Option<Rc<Engine>>,
    stage: Stage,
    context_id: u32,
}

/// The engine's view of Envoy for one HTTP context.
struct EnvoyHost;

impl Host for EnvoyHost {
    fn dispatch(&mut self, callout: &Callout) -> Result<u32, String> {
        let refused =
            |status| format!("Envoy refused the call to cluster `{}` ({status:?})", callout.cluster);
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
        let headers: Vec<(&str, &str)> =
            callout.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        hostcalls::dispatch_http_call(
            &callout.cluster,
            headers,
            callout.body.as_deref(),
            vec![],
            callout.timeout,
        )
        .map_err(refused)
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

impl Filter {
    fn start(&mut self, matched: Match, body: Vec<u8>) {
        let Some(engine) = self.engine.clone() else { return };
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let now_unix_ms = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let seed = now_unix_ms ^ u64::from(self.context_id).rotate_left(32);
        let request = Request { headers, body, now_unix_ms, seed };
        let execution = Execution::start(engine, matched, request, &mut EnvoyHost);
        self.stage = if execution.is_finished() { Stage::Done } else { Stage::Running(execution) };
    }
}

impl Context for Filter {
    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let Stage::Running(execution) = &mut self.stage else { return };
        let message = hostcalls::get_grpc_status().ok().and_then(|(_, message)| message).unwrap_or_default();
        // Envoy appends where the status came from; the client wants the upstream's words.
        let message = message.strip_suffix("{via_upstream}").unwrap_or(&message).to_string();
        let body = match hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let response = UpstreamResponse {
            status: Some(http_status_of_grpc(status_code)),
            headers: vec![("grpc-status".into(), status_code.to_string()), ("grpc-message".into(), message)],
            body,
        };
        execution.on_response(token, response, &mut EnvoyHost);
        if execution.is_finished() {
            self.stage = Stage::Done;
        }
    }

    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Stage::Running(execution) = &mut self.stage else { return };
        let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse::<u16>().ok());
        let body = match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let response = UpstreamResponse { status, headers, body };
        execution.on_response(token, response, &mut EnvoyHost);
        if execution.is_finished() {
            self.stage = Stage::Done;
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let Some(engine) = &self.engine else { return Action::Continue };
        let method = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":method").ok().flatten();
        let path = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path").ok().flatten();
        let (Some(method), Some(path)) = (method, path) else { return Action::Continue };
        let Some(matched) = engine.route(&method, &path) else { return Action::Continue };
        if end_of_stream {
            self.start(matched, Vec::new());
        } else {
            self.stage = Stage::Buffering(matched);
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &self.stage {
            Stage::Idle => return Action::Continue,
            Stage::Buffering(_) if end_of_stream => {}
            // Envoy buffers the body until the end of the stream (up to its buffer limit).
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
}
