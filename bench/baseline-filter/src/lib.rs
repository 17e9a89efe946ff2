//! The floor any filter of Semaphore's shape pays: on every request, once its body is in, calls
//! `a` and `b` in parallel (GET) and `c` after `a` (POST, the request's body as its body), then
//! answers with the bodies concatenated. The same callouts the flow makes, with no plan, no
//! templates, no codec: only the proxy-wasm calls. The configuration names the clusters:
//! `{"a": "...", "b": "...", "c": "..."}`; without `c`, it makes the two parallel calls only.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(Root { clusters: Rc::new(Clusters::default()) }));
}}

#[derive(Default)]
struct Clusters {
    a: String,
    b: String,
    c: String,
}

struct Root {
    clusters: Rc<Clusters>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Ok(Some(bytes)) = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) else {
            return false;
        };
        let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
        let name = |key: &str| config.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        self.clusters = Rc::new(Clusters { a: name("a"), b: name("b"), c: name("c") });
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Calls {
            clusters: Rc::clone(&self.clusters),
            tokens: [0; 3],
            request: Vec::new(),
            bodies: Default::default(),
            done: 0,
        }))
    }
}

struct Calls {
    clusters: Rc<Clusters>,
    tokens: [u32; 3],
    /// The request's body, which `c` sends on.
    request: Vec<u8>,
    bodies: [Vec<u8>; 3],
    done: usize,
}

impl Calls {
    fn get(&self, cluster: &str) -> u32 {
        let headers = vec![(":method", "GET"), (":path", "/"), (":authority", cluster)];
        hostcalls::dispatch_http_call(cluster, headers, None, vec![], Duration::from_secs(5)).unwrap_or(0)
    }

    fn post(&self, cluster: &str, body: &[u8]) -> u32 {
        let headers = vec![
            (":method", "POST"),
            (":path", "/"),
            (":authority", cluster),
            ("content-type", "application/json"),
        ];
        hostcalls::dispatch_http_call(cluster, headers, Some(body), vec![], Duration::from_secs(5))
            .unwrap_or(0)
    }

    fn start(&mut self) {
        self.tokens[0] = self.get(&self.clusters.a.clone());
        self.tokens[1] = self.get(&self.clusters.b.clone());
    }
}

impl Context for Calls {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(index) = self.tokens.iter().position(|t| *t == token) else { return };
        self.bodies[index] = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.done += 1;
        let calls = if self.clusters.c.is_empty() { 2 } else { 3 };
        if index == 0 && calls == 3 {
            self.tokens[2] = self.post(&self.clusters.c.clone(), &self.request);
        }
        if self.done == calls {
            let body = self.bodies.concat();
            let _ =
                hostcalls::send_http_response(200, vec![("content-type", "application/json")], Some(&body));
        }
    }
}

impl HttpContext for Calls {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.start();
        }
        Action::Pause
    }

    /// The body is held too: the answer is local, nothing goes on to the router.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
            self.request = body.ok().flatten().unwrap_or_default();
            self.start();
        }
        Action::Pause
    }
}
