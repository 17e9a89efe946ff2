//! The bundled examples, each compiled from its own files and run by the real filter in a real
//! Envoy against the example's own upstream (the routers `example-upstream` serves), answering
//! what the examples' READMEs show.

use std::net::SocketAddr;
use std::time::Duration;

use example_upstream::greeter::{HelloRequest, SAY_HELLO};
use example_upstream::{checkout, getuser, greeter, grpc};
use prost::Message;
use semaphore_e2e::{http_client, start_semaphore, Envoy, RecordedRequest, Upstream};
use serde_json::{json, Value};

// getuser

#[tokio::test]
async fn getuser_answers_the_users_name_or_the_upstreams_404() {
    let users = getuser::load_users(&getuser::default_data_path()).unwrap();
    let upstream = Upstream::serve(getuser::router(users));
    let envoy =
        start_semaphore("examples/getuser/config.hcl", &[("proto.Users", upstream.addr())]).await.unwrap();

    let response = http_client().get(envoy.url("/user/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"name":"Ada Lovelace"}"#);

    let response = http_client().get(envoy.url("/user/42")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"resource `user`: upstream answered 404: user 42 not found","status":404}"#
    );
    let paths: Vec<_> = upstream.requests().into_iter().map(|request| request.path).collect();
    assert_eq!(paths, ["/user/1", "/user/42"]);
}

// checkout

const CHECKOUT_SERVICES: [&str; 4] =
    ["checkout.Carts", "checkout.Customers", "checkout.Shipping", "checkout.Discounts"];

/// The shop's upstream, and Envoy with the checkout example sending all four services to it.
async fn checkout() -> (Upstream, Envoy) {
    let shop = Upstream::serve(checkout::router());
    let services: Vec<(&str, SocketAddr)> =
        CHECKOUT_SERVICES.iter().map(|service| (*service, shop.addr())).collect();
    let envoy = start_semaphore("examples/checkout/config.hcl", &services).await.unwrap();
    (shop, envoy)
}

async fn post_checkout(envoy: &Envoy, authorization: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = http_client().post(envoy.url("/checkout")).json(&body);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    request.send().await.unwrap()
}

fn call(request: &RecordedRequest) -> String {
    format!("{} {}", request.method, request.path)
}

fn find<'a>(requests: &'a [RecordedRequest], method_and_path: &str) -> &'a RecordedRequest {
    requests
        .iter()
        .find(|request| call(request) == method_and_path)
        .unwrap_or_else(|| panic!("no {method_and_path} among {requests:#?}"))
}

fn position(requests: &[RecordedRequest], method_and_path: &str) -> usize {
    requests
        .iter()
        .position(|request| call(request) == method_and_path)
        .unwrap_or_else(|| panic!("no {method_and_path} among {requests:#?}"))
}

/// What every checkout of cart c-1001 by customer u-7 answers, without the discount.
fn ada_checkout() -> Value {
    json!({
        "cart_id": "c-1001",
        "customer": {
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "address": {
                "street": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB"
            }
        },
        "items": [
            {"sku": "BK-042", "name": "Sketch of the Analytical Engine (hardcover)", "quantity": 1, "total_cents": 3450},
            {"sku": "MG-007", "name": "Enamel mug", "quantity": 2, "total_cents": 2400}
        ],
        "currency": "EUR",
        "subtotal_cents": 5850,
        "shipping": {"carrier": "PostNL", "service": "standard", "price_cents": 495, "estimated_days": 2}
    })
}

#[tokio::test]
async fn checkout_without_a_coupon_calls_cart_and_user_then_shipping() {
    let (shop, envoy) = checkout().await;

    let response =
        post_checkout(&envoy, Some("Bearer demo-token"), json!({"cart_id": "c-1001", "user_id": "u-7"}))
            .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-carrier"], "PostNL", "the output's header");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, ada_checkout(), "no discount without a coupon");

    let requests = shop.requests();
    let mut calls: Vec<String> = requests.iter().map(call).collect();
    calls.sort();
    assert_eq!(calls, ["GET /carts/c-1001", "GET /users/u-7", "POST /shipping/quotes"], "no discount call");
    let cart = position(&requests, "GET /carts/c-1001");
    assert!(
        position(&requests, "POST /shipping/quotes") > cart,
        "shipping waits for the cart: {requests:#?}"
    );

    let (cart, user) = (&requests[cart], find(&requests, "GET /users/u-7"));
    for request in [cart, user] {
        assert_eq!(request.header("authorization"), Some("Bearer demo-token"), "{request:#?}");
        assert_eq!(request.header("host"), Some("127.0.0.1:9091"), "the configured service host");
        assert_eq!(request.query, None);
    }
    let shipping = find(&requests, "POST /shipping/quotes");
    assert_eq!(
        shipping.body_json().unwrap(),
        json!({"cart_id": "c-1001", "weight_grams": 1520, "subtotal_cents": 5850}),
        "the quote is built from the cart's answer"
    );
    assert!(shipping.received_at >= cart.received_at);
    assert_eq!(shipping.header("content-type"), Some("application/json"));
    assert_eq!(shipping.header("authorization"), None, "only cart and user get the credentials");
}

#[tokio::test]
async fn a_coupon_adds_the_discount_call() {
    let (shop, envoy) = checkout().await;

    let response = post_checkout(
        &envoy,
        Some("Bearer demo-token"),
        json!({"cart_id": "c-1001", "user_id": "u-7", "coupon": "WELCOME10"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-carrier"], "PostNL");
    let mut expected = ada_checkout();
    expected["discount"] =
        json!({"code": "WELCOME10", "description": "10% off your first order", "amount_cents": 585});
    assert_eq!(response.json::<Value>().await.unwrap(), expected);

    let requests = shop.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    let cart = position(&requests, "GET /carts/c-1001");
    assert!(position(&requests, "POST /shipping/quotes") > cart, "shipping after the cart: {requests:#?}");
    assert!(position(&requests, "POST /discounts") > cart, "the discount after the cart: {requests:#?}");
    let discount = find(&requests, "POST /discounts");
    assert_eq!(
        discount.body_json().unwrap(),
        json!({"code": "WELCOME10", "cart_id": "c-1001", "subtotal_cents": 5850})
    );
    assert_eq!(discount.header("x-customer"), Some("customer u-7"), "the interpolated header");
}

#[tokio::test]
async fn an_empty_coupon_is_no_coupon() {
    let (shop, envoy) = checkout().await;

    let response = post_checkout(
        &envoy,
        Some("Bearer demo-token"),
        json!({"cart_id": "c-1001", "user_id": "u-7", "coupon": ""}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), ada_checkout());
    let calls: Vec<String> = shop.requests().iter().map(call).collect();
    assert!(!calls.contains(&"POST /discounts".to_owned()), "{calls:?}");
    assert_eq!(calls.len(), 3, "{calls:?}");
}

#[tokio::test]
async fn a_second_cart_ships_heavier_and_free_with_an_amount_off() {
    let (_shop, envoy) = checkout().await;

    let response = post_checkout(
        &envoy,
        Some("Bearer demo-token"),
        json!({"cart_id": "c-1002", "user_id": "u-9", "coupon": "SPRING5"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-carrier"], "DHL");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["customer"]["name"], "Grace Hopper");
    assert_eq!(body["subtotal_cents"], 17100);
    assert_eq!(
        body["items"],
        json!([
            {"sku": "KB-310", "name": "Mechanical keyboard", "quantity": 1, "total_cents": 11900},
            {"sku": "DM-120", "name": "Felt desk mat", "quantity": 1, "total_cents": 2500},
            {"sku": "CB-002", "name": "USB-C cable, 2 m", "quantity": 3, "total_cents": 2700}
        ])
    );
    assert_eq!(
        body["shipping"],
        json!({"carrier": "DHL", "service": "parcel", "price_cents": 0, "estimated_days": 3})
    );
    assert_eq!(
        body["discount"],
        json!({"code": "SPRING5", "description": "5.00 off orders over 25.00", "amount_cents": 500})
    );
}

#[tokio::test]
async fn checkout_errors_are_the_failing_services_answers() {
    let (shop, envoy) = checkout().await;

    let response = post_checkout(
        &envoy,
        Some("Bearer demo-token"),
        json!({"cart_id": "c-1001", "user_id": "u-7", "coupon": "BOGUS"}),
    )
    .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"resource `discount`: upstream answered 422: coupon BOGUS is not valid","status":422}"#
    );

    let unauthorized = shop.requests().len();
    let response = post_checkout(&envoy, None, json!({"cart_id": "c-1001", "user_id": "u-7"})).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"message\":\"resource `user`: upstream answered 401: customer data needs an Authorization: \
         Bearer token\",\"status\":401}"
    );

    // Calls of the unauthorized checkout may still be landing (its cart, and the shipping quote
    // if the cart answered before the user failed): let them settle first.
    let mut before = shop.wait_for_requests(unauthorized + 2, Duration::from_secs(5)).await.len();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = shop.requests().len();
        if now == before {
            break;
        }
        before = now;
    }
    let response =
        post_checkout(&envoy, Some("Bearer demo-token"), json!({"cart_id": "c-404", "user_id": "u-7"})).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"resource `cart`: upstream answered 404: cart c-404 not found","status":404}"#
    );
    // The user call went out beside the cart's; shipping never did, its cart having failed.
    let mut calls: Vec<String> =
        shop.wait_for_requests(before + 2, Duration::from_secs(5)).await[before..].iter().map(call).collect();
    calls.sort();
    assert_eq!(calls, ["GET /carts/c-404", "GET /users/u-7"]);
}

/// The checkout example's messages, as a gRPC client compiles them (the fields this test reads).
mod storefront {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckoutRequest {
        #[prost(string, tag = "1")]
        pub cart_id: String,
        #[prost(string, tag = "2")]
        pub user_id: String,
        #[prost(string, tag = "3")]
        pub coupon: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Recipient {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub email: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(string, tag = "1")]
        pub cart_id: String,
        #[prost(message, optional, tag = "2")]
        pub customer: Option<Recipient>,
        #[prost(string, tag = "4")]
        pub currency: String,
        #[prost(int32, tag = "5")]
        pub subtotal_cents: i32,
    }

    pub const CHECKOUT: &str = "/checkout.Storefront/Checkout";
}

#[tokio::test]
async fn one_checkout_flow_answers_over_grpc_grpc_web_and_graphql() {
    use storefront::{CheckoutRequest, Recipient, Summary, CHECKOUT};
    let (shop, envoy) = checkout().await;
    let request = CheckoutRequest { cart_id: "c-1001".into(), user_id: "u-7".into(), coupon: String::new() };
    let expected = Summary {
        cart_id: "c-1001".into(),
        customer: Some(Recipient { name: "Ada Lovelace".into(), email: "ada@example.com".into() }),
        currency: "EUR".into(),
        subtotal_cents: 5850,
    };

    // gRPC, with the credentials as metadata.
    let channel = tonic::transport::Channel::from_shared(envoy.url("")).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut unary = tonic::Request::new(request.clone());
    unary.metadata_mut().insert("authorization", "Bearer demo-token".parse().unwrap());
    let codec = tonic_prost::ProstCodec::<CheckoutRequest, Summary>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(CHECKOUT);
    let response = grpc.unary(unary, path, codec).await.unwrap();
    assert_eq!(response.get_ref(), &expected);

    // gRPC-Web, as a browser sends it: one frame, and the trailers as the body's last frame.
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(request.encoded_len() as u32).to_be_bytes());
    framed.extend_from_slice(&request.encode_to_vec());
    let response = http_client()
        .post(envoy.url(CHECKOUT))
        .header("content-type", "application/grpc-web+proto")
        .header("authorization", "Bearer demo-token")
        .body(framed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    assert_eq!(Summary::decode(&body[5..5 + length]).unwrap(), expected);
    let trailers = String::from_utf8_lossy(&body[5 + length + 5..]).to_string();
    assert_eq!(body[5 + length], 0x80, "a trailers frame");
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    // GraphQL, the mutation `checkout`.
    let response = http_client()
        .post(envoy.url("/graphql"))
        .header("authorization", "Bearer demo-token")
        .json(&json!({"query": r#"mutation { checkout(cart_id: "c-1001", user_id: "u-7") { cart_id customer { name } shipping { carrier price_cents } subtotal_cents } }"#}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"data":{"checkout":{"cart_id":"c-1001","customer":{"name":"Ada Lovelace"},"shipping":{"carrier":"PostNL","price_cents":495},"subtotal_cents":5850}}}"#
    );

    // Three checkouts, each the same three calls with the caller's credentials.
    let requests = shop.requests();
    let mut calls: Vec<String> = requests.iter().map(call).collect();
    calls.sort();
    let expected_calls: Vec<&str> = ["GET /carts/c-1001", "GET /users/u-7", "POST /shipping/quotes"]
        .iter()
        .flat_map(|c| [*c; 3])
        .collect();
    assert_eq!(calls, expected_calls);
    for request in requests.iter().filter(|r| r.method == "GET") {
        assert_eq!(request.header("authorization"), Some("Bearer demo-token"), "{request:#?}");
    }
}

// greeter

async fn greeter() -> (Upstream, Envoy) {
    let upstream = Upstream::serve(greeter::router());
    let envoy = start_semaphore("examples/greeter/config.hcl", &[("helloworld.Greeter", upstream.addr())])
        .await
        .unwrap();
    (upstream, envoy)
}

#[tokio::test]
async fn greeter_says_hello_over_grpc() {
    let (upstream, envoy) = greeter().await;

    let response = http_client().get(envoy.url("/hello/world")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Hello world"}"#);

    let response = http_client().get(envoy.url("/hello/Ada%20Lovelace")).send().await.unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"Hello Ada Lovelace"}"#,
        "decoded path parameter"
    );

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (request, name) in requests.iter().zip(["world", "Ada Lovelace"]) {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", SAY_HELLO));
        assert_eq!(request.header("content-type"), Some("application/grpc"));
        assert_eq!(request.header("te"), Some("trailers"));
        assert_eq!(request.header("host"), Some("127.0.0.1:9092"), "the configured service host");
        let message = grpc::unframe(&request.body).unwrap();
        assert_eq!(HelloRequest::decode(message).unwrap(), HelloRequest { name: name.to_owned() });
    }
}

#[tokio::test]
async fn greeter_not_found_is_http_404() {
    let (upstream, envoy) = greeter().await;

    let response = http_client().get(envoy.url("/hello/nobody")).send().await.unwrap();
    assert_eq!(response.status(), 404, "gRPC NOT_FOUND");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"resource `hello`: upstream answered 404: there is nobody to greet","status":404}"#
    );
    assert_eq!(upstream.requests().len(), 1);

    // Paths no endpoint serves go on to Envoy's router.
    let response = http_client().get(envoy.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "");
    assert_eq!(upstream.requests().len(), 1);
}

/// The example's `grpc` endpoint, as its README calls it: gRPC (tonic), and Connect's JSON.
#[tokio::test]
async fn greeter_is_a_grpc_method_too() {
    let (upstream, envoy) = greeter().await;

    let channel = tonic::transport::Channel::from_shared(envoy.url("")).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let path = || tonic::codegen::http::uri::PathAndQuery::from_static("/greeter.Gateway/SayHello");
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<HelloRequest, greeter::HelloReply>::default();
    let request = tonic::Request::new(HelloRequest { name: "world".into() });
    let reply = client.unary(request, path(), codec).await.unwrap();
    assert_eq!(reply.get_ref().message, "Hello world");

    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<HelloRequest, greeter::HelloReply>::default();
    let request = tonic::Request::new(HelloRequest { name: "nobody".into() });
    let status = client.unary(request, path(), codec).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    let connect = |name: &str| {
        http_client()
            .post(envoy.url("/greeter.Gateway/SayHello"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"name":"{name}"}}"#))
            .send()
    };
    let response = connect("world").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Hello world"}"#);
    let response = connect("nobody").await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"code":"not_found","message":"resource `hello`: upstream answered 404: there is nobody to greet"}"#
    );
    assert_eq!(upstream.requests().len(), 4);
}
