//! The benchmark's two flows as one would write them by hand for this one job: Rust structs
//! that serde reads and writes, the calls made as soon as their inputs are there, the answer
//! built from the fields it needs. It makes the calls the Semaphore filter makes and answers
//! what it answers, byte for byte (`cargo xtask bench` checks), with none of its generality: no
//! plan, no templates, no schema walked at run time. Against it, the bench tells what the flow's
//! own JSON work costs from what running it from a plan adds.
//!
//! The configuration names the workload and the clusters: `{"workload": "checkout" | "profile",
//! "a": "...", "b": "...", "c": "..."}`.
//! - checkout (`POST /checkout`): `GET /a/{id}` and `GET /b/{id}` at once, `POST /c` once `a`
//!   has answered; the answer takes the input's `id`, b's `name`, a's `status`, and c's `total`
//!   and `items`.
//! - profile (`GET /profile/{id}`): `GET /users/{id}` from `a` and `GET /accounts/{id}` from `b`
//!   at once; the answer takes six fields of each.

use std::rc::Rc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};
use serde::{Deserialize, Serialize};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(Root { config: Rc::new(Config::default()) }));
}}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Config {
    workload: String,
    a: String,
    b: String,
    c: String,
}

struct Root {
    config: Rc<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Ok(Some(bytes)) = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) else {
            return false;
        };
        match serde_json::from_slice(&bytes) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(_) => false,
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let flow = match self.config.workload.as_str() {
            "profile" => Flow::Profile(Profile::default()),
            _ => Flow::Checkout(Checkout::default()),
        };
        Some(Box::new(Request { config: Rc::clone(&self.config), tokens: [0; 3], flow }))
    }
}

// --- The checkout's messages: only the fields the flow reads or writes. ---------------------

#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
struct Item {
    sku: String,
    title: String,
    quantity: i32,
    price: f64,
}

#[derive(Deserialize)]
struct Order {
    #[serde(default)]
    id: String,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct A {
    id: String,
    name: String,
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named {
    name: String,
}

#[derive(Serialize)]
struct PriceRequest<'a> {
    id: &'a str,
    name: &'a str,
    items: &'a [Item],
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Priced {
    total: i64,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct CheckoutAnswer<'a> {
    id: &'a str,
    customer: &'a str,
    status: &'a str,
    total: i64,
    items: &'a [Item],
}

#[derive(Default)]
struct Checkout {
    order: Option<Order>,
    a: Option<A>,
    b: Option<Named>,
    c: Option<Priced>,
}

// --- The profile's. -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct User {
    id: String,
    name: String,
    email: String,
    country: String,
    age: i32,
    active: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Account {
    id: String,
    plan: String,
    balance: i64,
    currency: String,
    since: String,
    limit: i64,
}

#[derive(Serialize)]
struct ProfileAnswer<'a> {
    id: &'a str,
    name: &'a str,
    email: &'a str,
    country: &'a str,
    age: i32,
    active: bool,
    plan: &'a str,
    balance: i64,
    currency: &'a str,
    since: &'a str,
    limit: i64,
    account: &'a str,
}

#[derive(Default)]
struct Profile {
    user: Option<User>,
    account: Option<Account>,
}

enum Flow {
    Checkout(Checkout),
    Profile(Profile),
}

struct Request {
    config: Rc<Config>,
    /// The calls in flight: a, b, c.
    tokens: [u32; 3],
    flow: Flow,
}

/// What a path segment escapes: all but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl Request {
    fn call(cluster: &str, method: &str, path: &str, body: Option<&[u8]>) -> u32 {
        let mut headers = vec![(":method", method), (":path", path), (":authority", cluster)];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        match hostcalls::dispatch_http_call(cluster, headers, body, vec![], Duration::from_secs(5)) {
            Ok(token) => token,
            // No answer would ever come for it: the client is answered now.
            Err(_) => {
                let body =
                    serde_json::json!({ "message": "an upstream call could not be made", "status": 502 });
                Request::answer(502, body.to_string().as_bytes());
                0
            }
        }
    }

    fn get(cluster: &str, prefix: &str, id: &str) -> u32 {
        let path = format!("{prefix}{}", utf8_percent_encode(id, SEGMENT));
        Request::call(cluster, "GET", &path, None)
    }

    fn answer(status: u32, body: &[u8]) {
        let _ = hostcalls::send_http_response(status, vec![("content-type", "application/json")], Some(body));
    }

    fn refuse(message: &str) {
        let body = serde_json::json!({ "message": message, "status": 400 }).to_string();
        Request::answer(400, body.as_bytes());
    }

    /// The checkout, once its input is read: a and b at once.
    fn start_checkout(&mut self, body: &[u8]) {
        let Flow::Checkout(checkout) = &mut self.flow else { return };
        match serde_json::from_slice::<Order>(body) {
            Ok(order) => {
                self.tokens[0] = Request::get(&self.config.a, "/a/", &order.id);
                self.tokens[1] = Request::get(&self.config.b, "/b/", &order.id);
                checkout.order = Some(order);
            }
            Err(error) => Request::refuse(&error.to_string()),
        }
    }

    fn start_profile(&mut self, id: &str) {
        self.tokens[0] = Request::get(&self.config.a, "/users/", id);
        self.tokens[1] = Request::get(&self.config.b, "/accounts/", id);
    }

    fn on_checkout_answer(&mut self, call: usize, body: &[u8]) -> Result<(), serde_json::Error> {
        let Flow::Checkout(checkout) = &mut self.flow else { return Ok(()) };
        match call {
            0 => {
                let a: A = serde_json::from_slice(body)?;
                let items = checkout.order.as_ref().map(|order| &order.items[..]).unwrap_or_default();
                let request = serde_json::to_vec(&PriceRequest { id: &a.id, name: &a.name, items })?;
                self.tokens[2] = Request::call(&self.config.c, "POST", "/c", Some(&request));
                checkout.a = Some(a);
            }
            1 => checkout.b = Some(serde_json::from_slice(body)?),
            _ => checkout.c = Some(serde_json::from_slice(body)?),
        }
        if let (Some(order), Some(a), Some(b), Some(c)) =
            (&checkout.order, &checkout.a, &checkout.b, &checkout.c)
        {
            let answer = CheckoutAnswer {
                id: &order.id,
                customer: &b.name,
                status: &a.status,
                total: c.total,
                items: &c.items,
            };
            Request::answer(200, &serde_json::to_vec(&answer)?);
        }
        Ok(())
    }

    fn on_profile_answer(&mut self, call: usize, body: &[u8]) -> Result<(), serde_json::Error> {
        let Flow::Profile(profile) = &mut self.flow else { return Ok(()) };
        match call {
            0 => profile.user = Some(serde_json::from_slice(body)?),
            _ => profile.account = Some(serde_json::from_slice(body)?),
        }
        if let (Some(user), Some(account)) = (&profile.user, &profile.account) {
            let answer = ProfileAnswer {
                id: &user.id,
                name: &user.name,
                email: &user.email,
                country: &user.country,
                age: user.age,
                active: user.active,
                plan: &account.plan,
                balance: account.balance,
                currency: &account.currency,
                since: &account.since,
                limit: account.limit,
                account: &account.id,
            };
            Request::answer(200, &serde_json::to_vec(&answer)?);
        }
        Ok(())
    }
}

impl Context for Request {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(call) = self.tokens.iter().position(|t| *t == token) else { return };
        let status = hostcalls::get_map_value(proxy_wasm::types::MapType::HttpCallResponseHeaders, ":status");
        if !matches!(status, Ok(Some(ref status)) if status == "200") {
            let body = serde_json::json!({ "message": "an upstream call failed", "status": 502 }).to_string();
            return Request::answer(502, body.as_bytes());
        }
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let answered = match self.flow {
            Flow::Checkout(_) => self.on_checkout_answer(call, &body),
            Flow::Profile(_) => self.on_profile_answer(call, &body),
        };
        if let Err(error) = answered {
            let body = serde_json::json!({ "message": error.to_string(), "status": 502 }).to_string();
            Request::answer(502, body.as_bytes());
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if let Flow::Profile(_) = self.flow {
            let path = hostcalls::get_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, ":path");
            match path.ok().flatten().as_deref().and_then(|path| path.strip_prefix("/profile/")) {
                Some(id) => self.start_profile(&percent_encoding::percent_decode_str(id).decode_utf8_lossy()),
                None => Request::refuse("no such route"),
            }
        } else if end_of_stream {
            Request::refuse("the checkout takes a body");
        }
        Action::Pause
    }

    /// The body is held too: the answer is local, nothing goes on to the router.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if end_of_stream && matches!(self.flow, Flow::Checkout(_)) {
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
            self.start_checkout(&body.ok().flatten().unwrap_or_default());
        }
        Action::Pause
    }
}
