//! A real HTTP server standing in for an upstream service, recording what it receives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::{Extension, Router};
use example_upstream::grpc;
use tokio::runtime::Runtime;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string, as sent (not percent-decoded).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Every header in arrival order, names lower-cased; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Path parameters of the [`UpstreamBuilder::route`] that answered, percent-decoded; empty
    /// for requests no such route matched.
    pub params: BTreeMap<String, String>,
    /// When the upstream started reading it.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of a header; `name` is case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The first value of a query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn body_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }
}

/// What a [`UpstreamBuilder::route`] handler answers.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
}

impl Reply {
    /// An empty reply with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("an HTTP status code (100..=999)"),
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::status(status).header("content-type", "application/json").body(body.to_string())
    }

    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::status(status).header("content-type", "text/plain; charset=utf-8").body(body.into())
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// Answer only after this long, e.g. to make a caller time out.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        for (name, value) in self.headers {
            let name = HeaderName::try_from(name.as_str())
                .unwrap_or_else(|error| panic!("reply header name {name:?}: {error}"));
            let value = HeaderValue::try_from(value.as_str())
                .unwrap_or_else(|error| panic!("reply header {name} value {value:?}: {error}"));
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// A bare status, e.g. `|_| 204`.
impl From<u16> for Reply {
    fn from(status: u16) -> Reply {
        Reply::status(status)
    }
}

/// A JSON body with status 200, e.g. `|_| json!({"id": "1"})`.
impl From<serde_json::Value> for Reply {
    fn from(body: serde_json::Value) -> Reply {
        Reply::json(200, body)
    }
}

/// A status and a JSON body, e.g. `|_| (404, json!({"message": "no such user"}))`.
impl From<(u16, serde_json::Value)> for Reply {
    fn from((status, body): (u16, serde_json::Value)) -> Reply {
        Reply::json(status, body)
    }
}

type Recording = Arc<Mutex<Vec<RecordedRequest>>>;

fn lock(recording: &Recording) -> MutexGuard<'_, Vec<RecordedRequest>> {
    // A handler that panicked mid-test must not hide what was recorded before it.
    recording.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the recording middleware filed the current request, for the route handler.
#[derive(Clone)]
struct RecordedAt {
    index: usize,
    request: RecordedRequest,
    recording: Recording,
}

/// An HTTP/1.1 (and h2c) server on 127.0.0.1 with a port of its own, on a runtime of its own so
/// that blocking test code never starves it. It stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    recording: Recording,
    runtime: Option<Runtime>,
}

impl Upstream {
    /// Start describing the routes of an upstream.
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder::default()
    }

    /// Serve an axum router as it is (for streaming, extractors, anything routes can't express);
    /// requests are recorded all the same.
    pub fn serve(router: Router) -> Upstream {
        let recording = Recording::default();
        let app = router.layer(middleware::from_fn_with_state(recording.clone(), record));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("e2e-upstream")
            .enable_all()
            .build()
            .expect("starting the upstream's runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("the upstream's bound address");
        listener.set_nonblocking(true).expect("making the upstream's socket non-blocking");
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("registering the upstream's socket")
        };
        runtime.spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("upstream {addr} stopped: {error}");
            }
        });

        Upstream { addr, recording, runtime: Some(runtime) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.recording).clone()
    }

    /// Waits until at least `count` requests arrived, or `timeout` passed, and returns all of
    /// them: for calls made after the client already has its answer, such as rollbacks.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() >= deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Not a plain drop: dropping a runtime blocks, which panics inside an async test.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Upstream").field("addr", &self.addr).finish()
    }
}

/// Routes of an [`Upstream`]; requests that match none get an empty 404 (and are recorded).
#[derive(Default)]
pub struct UpstreamBuilder {
    routes: BTreeMap<String, MethodRouter>,
}

impl UpstreamBuilder {
    /// Answer `method` (e.g. "GET", or "ANY" for every method) on `path`, an axum path pattern
    /// such as `/user/{id}`, with `handler`, which sees the recorded request with its path
    /// parameters and returns a [`Reply`] or anything that converts into one.
    pub fn route<F, R>(mut self, method: &str, path: &str, handler: F) -> UpstreamBuilder
    where
        F: Fn(&RecordedRequest) -> R + Send + Sync + 'static,
        R: Into<Reply>,
    {
        let handler = Arc::new(handler);
        let endpoint =
            move |Extension(recorded): Extension<RecordedAt>,
                  params: Result<Path<BTreeMap<String, String>>, PathRejection>| {
                let handler = Arc::clone(&handler);
                async move {
                    let mut request = recorded.request;
                    // Routes without parameters have none to extract; that is no error.
                    request.params = params.map(|Path(params)| params).unwrap_or_default();
                    if let Some(entry) = lock(&recorded.recording).get_mut(recorded.index) {
                        entry.params = request.params.clone();
                    }
                    let reply: Reply = handler(&request).into();
                    if let Some(delay) = reply.delay {
                        tokio::time::sleep(delay).await;
                    }
                    reply.into_response()
                }
            };

        let methods = self.routes.remove(path).unwrap_or_default();
        let methods = if method.eq_ignore_ascii_case("ANY") {
            methods.fallback(endpoint)
        } else {
            let parsed = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .unwrap_or_else(|error| panic!("HTTP method {method:?}: {error}"));
            let filter = MethodFilter::try_from(parsed)
                .unwrap_or_else(|error| panic!("HTTP method {method:?}: {error}"));
            methods.on(filter, endpoint)
        };
        self.routes.insert(path.to_owned(), methods);
        self
    }

    /// Answer the gRPC method `/package.Service/Method` with `handler`, which gets the request
    /// message's bytes and returns the response message's bytes, or a gRPC status code and
    /// message. Served over HTTP/2 without TLS, as Envoy's gRPC clusters speak it; the framing is
    /// the examples' own ([`example_upstream::grpc`]).
    pub fn grpc<F>(mut self, service: &str, method: &str, handler: F) -> UpstreamBuilder
    where
        F: Fn(&[u8]) -> Result<Vec<u8>, (u32, String)> + Send + Sync + 'static,
    {
        let path = format!("/{service}/{method}");
        let endpoint = grpc::unary(move |message: &[u8]| handler(message).map_err(grpc::Status::from));
        let methods = self.routes.remove(&path).unwrap_or_default().merge(endpoint);
        self.routes.insert(path, methods);
        self
    }

    pub fn start(self) -> Upstream {
        let router = self
            .routes
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| router.route(&path, methods));
        Upstream::serve(router)
    }
}

async fn record(State(recording): State<Recording>, request: Request, next: Next) -> Response {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            let message = format!("upstream could not read the request body: {error}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        // HTTP/2 carries the host as `:authority`, which arrives in the URI: record it as `host`.
        headers: parts
            .uri
            .authority()
            .filter(|_| !parts.headers.contains_key("host"))
            .map(|authority| ("host".to_owned(), authority.to_string()))
            .into_iter()
            .chain(parts.headers.iter().map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            }))
            .collect(),
        body: body.to_vec(),
        params: BTreeMap::new(),
        received_at,
    };
    let index = {
        let mut requests = lock(&recording);
        requests.push(recorded.clone());
        requests.len() - 1
    };

    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(RecordedAt { index, request: recorded, recording });
    next.run(request).await
}
