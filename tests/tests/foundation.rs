//! A flow over three services on three upstream servers: references between resources, a
//! dependency, headers, query string, a JSON body, typed input and output; and the filter's
//! refusal of a plan it cannot run.

use base64::Engine as _;
use semaphore_compiler::envoy::{append_routes, bootstrap, plugin_configuration, EnvoyOptions};
use std::time::Duration;

use semaphore_e2e::{http_client, start_semaphore, wasm_path, workspace_root, Envoy, Reply, Upstream};
use serde_json::{json, Value};

const SHOP: &str = "tests/fixtures/shop/config.hcl";

struct Shop {
    orders: Upstream,
    customers: Upstream,
    stock: Upstream,
}

impl Shop {
    fn start() -> Shop {
        let orders = Upstream::builder()
            .route("GET", "/orders/{id}", |request| {
                json!({ "id": request.param("id"), "customer_id": "c-42", "sku": "SKU-1", "total": 1999 })
            })
            .start();
        let customers = Upstream::builder()
            .route(
                "GET",
                "/api/customers/{id}",
                |request| json!({ "id": request.param("id"), "name": "Ada" }),
            )
            .start();
        let stock =
            Upstream::builder().route("POST", "/stock/check", |_| json!({ "available": true })).start();
        Shop { orders, customers, stock }
    }

    async fn envoy(&self) -> Envoy {
        start_semaphore(
            SHOP,
            &[
                ("shop.Orders", self.orders.addr()),
                ("shop.Customers", self.customers.addr()),
                ("shop.Stock", self.stock.addr()),
            ],
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_flow_composes_three_upstreams_into_one_typed_response() {
    let shop = Shop::start();
    let envoy = shop.envoy().await;

    let response =
        http_client().get(envoy.url("/orders/7?limit=5")).header("X-Tenant", "acme").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-order"], "7");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"id":"7","customer":"Ada","in_stock":true,"total":1999,"note":"order 7 for Ada"}"#
    );

    let orders = shop.orders.requests();
    assert_eq!(orders.len(), 1);
    assert_eq!((orders[0].method.as_str(), orders[0].path.as_str()), ("GET", "/orders/7"));
    assert_eq!(orders[0].query.as_deref(), Some("limit=5"));
    assert_eq!(orders[0].header("host"), Some("orders.shop.svc:8080"));
    assert_eq!(orders[0].header("x-tenant"), Some("acme"));

    let customers = shop.customers.requests();
    assert_eq!(customers.len(), 1);
    assert_eq!(
        customers[0].path, "/api/customers/c-42",
        "the service host's base path, then the id from the order"
    );
    assert_eq!(customers[0].header("authorization"), Some("Tenant acme"));
    assert_eq!(customers[0].header("host"), Some("customers.shop.svc:8080"));

    let stock = shop.stock.requests();
    assert_eq!(stock.len(), 1);
    assert_eq!(stock[0].method, "POST");
    assert_eq!(stock[0].header("content-type"), Some("application/json"));
    assert_eq!(stock[0].body_json().unwrap(), json!({ "sku": "SKU-1", "quantity": 1 }));
}

#[tokio::test]
async fn invalid_input_is_a_400_naming_the_field_and_calls_nothing() {
    let shop = Shop::start();
    let envoy = shop.envoy().await;

    let response = http_client().get(envoy.url("/orders/7?limit=lots")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "message": "invalid request: field `limit`: expected an integer (int32), found \"lots\"", "status": 400 })
    );
    assert!(shop.orders.requests().is_empty());

    let response = http_client().get(envoy.url("/orders/8")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the next request is served");
    assert_eq!(shop.orders.requests().len(), 1);
    assert_eq!(shop.orders.requests()[0].query, None, "an absent input field sends no query parameter");
}

#[tokio::test]
async fn a_failing_dependency_stops_the_flow_before_its_dependents() {
    let orders = Upstream::builder()
        .route("GET", "/orders/{id}", |_| Reply::json(503, json!({ "message": "orders are down" })))
        .start();
    let customers = Upstream::builder().start();
    let stock = Upstream::builder().start();
    let shop = Shop { orders, customers, stock };
    let envoy = shop.envoy().await;

    let response = http_client().get(envoy.url("/orders/7")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "message": "resource `order`: upstream answered 503: orders are down", "status": 503 })
    );
    assert!(shop.customers.requests().is_empty());
    assert!(shop.stock.requests().is_empty());
}

/// A plan of another format version, or one that does not decode, is refused with one clear log
/// line, and Envoy goes on serving its other routes.
#[tokio::test]
async fn a_refused_plan_leaves_envoy_serving_its_other_routes() {
    let compiled =
        semaphore_compiler::compile_file(&workspace_root().join("examples/getuser/config.hcl")).unwrap();
    let options = EnvoyOptions {
        wasm: wasm_path(),
        listen: Some("127.0.0.1:0".into()),
        admin: "127.0.0.1:0".into(),
        upstream_overrides: Default::default(),
        ..Default::default()
    };
    let plan_b64 = |configuration: &str| {
        let json: Value = serde_json::from_str(configuration).unwrap();
        json["plan"].as_str().unwrap().to_string()
    };
    let good = plan_b64(&plugin_configuration(&compiled));
    let other_version = {
        let mut bytes = compiled.plan.encode_to_bytes();
        bytes[4] = 9;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let truncated = {
        let bytes = compiled.plan.encode_to_bytes();
        base64::engine::general_purpose::STANDARD.encode(&bytes[..bytes.len() / 2])
    };
    let other_route =
        "- match: {prefix: /other}\n  direct_response: {status: 200, body: {inline_string: other}}\n";
    let yaml = append_routes(&bootstrap(&compiled, &options), other_route).unwrap();
    assert!(yaml.contains(&good));

    let version = semaphore_plan::VERSION;
    for (bad, reason) in [
        (
            other_version,
            format!("plan format version 9 is not supported (this filter runs version {version})"),
        ),
        (truncated, "plan does not decode".to_string()),
    ] {
        let envoy = Envoy::start(&yaml.replace(&good, &bad)).await.expect("Envoy starts");
        envoy
            .wait_for_log(
                &format!("refusing the plugin configuration, no flow will run: {reason}"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let other = http_client().get(envoy.url("/other")).send().await.unwrap();
        assert_eq!(other.status(), 200);
        assert_eq!(other.text().await.unwrap(), "other");
        let flow = http_client().get(envoy.url("/user/1")).send().await.unwrap();
        assert_eq!(flow.status(), 404, "no flow runs: the router answers");
    }
}
