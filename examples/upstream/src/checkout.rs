//! The checkout example's upstream: the shop's four services on one server, with the carts,
//! customers and coupons of `examples/checkout/store.json`.
//!
//! - `GET /carts/{id}`: the cart with its subtotal and weight.
//! - `GET /users/{id}`: the customer; needs an `Authorization: Bearer <token>` header (401 without).
//! - `POST /shipping/quotes` `{cart_id, weight_grams, subtotal_cents}`: a quote, free from 100.00.
//! - `POST /discounts` `{code, cart_id, subtotal_cents}`: what a coupon takes off, 422 when the
//!   coupon does not apply.
//!
//! Errors are JSON `{"message": "..."}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The shop's data, `examples/checkout/store.json`, compiled in.
const STORE_JSON: &str = include_str!("../../checkout/store.json");

/// Orders from this subtotal ship free.
const FREE_SHIPPING_FROM_CENTS: u32 = 10_000;
/// Parcels up to this weight go by the cheaper carrier.
const LIGHT_PARCEL_GRAMS: u32 = 2_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CartItem {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price_cents: u32,
    pub weight_grams: u32,
}

#[derive(Clone, Debug, Deserialize)]
struct StoredCart {
    id: String,
    currency: String,
    items: Vec<CartItem>,
}

/// A cart as `GET /carts/{id}` answers it: the stored cart with its totals.
#[derive(Clone, Debug, Serialize)]
pub struct Cart {
    pub id: String,
    pub currency: String,
    pub items: Vec<CartItem>,
    pub subtotal_cents: u32,
    pub weight_grams: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub address: Address,
}

#[derive(Clone, Debug, Deserialize)]
struct Coupon {
    code: String,
    description: String,
    #[serde(default)]
    percent_off: u32,
    #[serde(default)]
    amount_off_cents: u32,
    #[serde(default)]
    minimum_cents: u32,
}

#[derive(Deserialize)]
struct StoreFile {
    carts: Vec<StoredCart>,
    customers: Vec<Customer>,
    coupons: Vec<Coupon>,
}

struct Store {
    carts: HashMap<String, StoredCart>,
    customers: HashMap<String, Customer>,
    coupons: HashMap<String, Coupon>,
}

impl Store {
    fn bundled() -> Store {
        let file: StoreFile =
            serde_json::from_str(STORE_JSON).expect("examples/checkout/store.json is valid");
        Store {
            carts: file.carts.into_iter().map(|cart| (cart.id.clone(), cart)).collect(),
            customers: file.customers.into_iter().map(|customer| (customer.id.clone(), customer)).collect(),
            coupons: file.coupons.into_iter().map(|coupon| (coupon.code.clone(), coupon)).collect(),
        }
    }
}

pub fn router() -> Router {
    Router::new()
        .route("/carts/{id}", get(get_cart))
        .route("/users/{id}", get(get_customer))
        .route("/shipping/quotes", post(quote_shipping))
        .route("/discounts", post(apply_discount))
        .with_state(Arc::new(Store::bundled()))
}

type Shop = State<Arc<Store>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

fn bad_body(rejection: JsonRejection) -> Response {
    error(rejection.status(), rejection.body_text())
}

async fn get_cart(State(store): Shop, Path(id): Path<String>) -> Response {
    let Some(cart) = store.carts.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("cart {id} not found"));
    };
    let subtotal_cents = cart.items.iter().map(|item| item.quantity * item.unit_price_cents).sum();
    let weight_grams = cart.items.iter().map(|item| item.quantity * item.weight_grams).sum();
    Json(Cart {
        id: cart.id.clone(),
        currency: cart.currency.clone(),
        items: cart.items.clone(),
        subtotal_cents,
        weight_grams,
    })
    .into_response()
}

async fn get_customer(State(store): Shop, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .filter(|token| !token.trim().is_empty());
    if token.is_none() {
        return error(StatusCode::UNAUTHORIZED, "customer data needs an Authorization: Bearer token");
    }
    match store.customers.get(&id) {
        Some(customer) => Json(customer.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("customer {id} not found")),
    }
}

#[derive(Deserialize)]
struct QuoteRequest {
    #[serde(default)]
    cart_id: String,
    #[serde(default)]
    weight_grams: u32,
    #[serde(default)]
    subtotal_cents: u32,
}

#[derive(Debug, PartialEq, Serialize)]
struct Quote {
    carrier: &'static str,
    service: &'static str,
    price_cents: u32,
    estimated_days: u32,
}

fn quote(weight_grams: u32, subtotal_cents: u32) -> Quote {
    let (carrier, service, price_cents, estimated_days) = if weight_grams <= LIGHT_PARCEL_GRAMS {
        ("PostNL", "standard", 495, 2)
    } else {
        ("DHL", "parcel", 895, 3)
    };
    let price_cents = if subtotal_cents >= FREE_SHIPPING_FROM_CENTS { 0 } else { price_cents };
    Quote { carrier, service, price_cents, estimated_days }
}

async fn quote_shipping(request: Result<Json<QuoteRequest>, JsonRejection>) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => return bad_body(rejection),
    };
    if request.weight_grams == 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("cart {:?} has nothing to ship", request.cart_id),
        );
    }
    Json(quote(request.weight_grams, request.subtotal_cents)).into_response()
}

#[derive(Deserialize)]
struct DiscountRequest {
    #[serde(default)]
    code: String,
    #[serde(default)]
    subtotal_cents: u32,
}

#[derive(Debug, PartialEq, Serialize)]
struct Discount {
    code: String,
    description: String,
    amount_cents: u32,
}

fn discount(coupon: &Coupon, subtotal_cents: u32) -> Result<Discount, String> {
    if subtotal_cents < coupon.minimum_cents {
        return Err(format!(
            "coupon {} needs a subtotal of at least {}.{:02}",
            coupon.code,
            coupon.minimum_cents / 100,
            coupon.minimum_cents % 100
        ));
    }
    let amount_cents =
        (subtotal_cents * coupon.percent_off / 100 + coupon.amount_off_cents).min(subtotal_cents);
    Ok(Discount { code: coupon.code.clone(), description: coupon.description.clone(), amount_cents })
}

async fn apply_discount(
    State(store): Shop,
    request: Result<Json<DiscountRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => return bad_body(rejection),
    };
    let Some(coupon) = store.coupons.get(&request.code) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, format!("coupon {} is not valid", request.code));
    };
    match discount(coupon, request.subtotal_cents) {
        Ok(discount) => Json(discount).into_response(),
        Err(message) => error(StatusCode::UNPROCESSABLE_ENTITY, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_store_loads() {
        let store = Store::bundled();
        assert_eq!(store.carts.len(), 2);
        assert_eq!(store.customers["u-7"].name, "Ada Lovelace");
        assert!(store.coupons.contains_key("WELCOME10"));
    }

    #[test]
    fn shipping_is_by_weight_and_free_from_100() {
        assert_eq!(
            quote(1520, 5850),
            Quote { carrier: "PostNL", service: "standard", price_cents: 495, estimated_days: 2 }
        );
        assert_eq!(quote(2240, 5850).price_cents, 895);
        assert_eq!(
            quote(2240, 17100),
            Quote { carrier: "DHL", service: "parcel", price_cents: 0, estimated_days: 3 }
        );
    }

    #[test]
    fn coupons_take_a_percentage_or_an_amount() {
        let store = Store::bundled();
        assert_eq!(discount(&store.coupons["WELCOME10"], 5850).unwrap().amount_cents, 585);
        assert_eq!(discount(&store.coupons["SPRING5"], 5850).unwrap().amount_cents, 500);
        assert_eq!(
            discount(&store.coupons["SPRING5"], 2000).unwrap_err(),
            "coupon SPRING5 needs a subtotal of at least 25.00"
        );
    }
}
