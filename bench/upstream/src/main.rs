//! The benchmark's upstream: every request gets the same JSON object after `--delay-ms`, about
//! 1 KB shaped like a cart, or (`--small`) a dozen small fields.

use std::net::SocketAddr;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::Router;
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// How long each answer waits.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Written to the object's `name`, so each upstream's answer is told apart.
    #[arg(long, default_value = "upstream")]
    name: String,
    /// Answer a dozen small fields instead of a cart.
    #[arg(long)]
    small: bool,
}

/// A dozen small fields: what the profile workload's `user` and `account` each read six of.
fn small_body(name: &str) -> String {
    json!({
        "id": "id-1", "name": name, "email": "ada@example.com", "country": "NL", "age": 36, "active": true,
        "plan": "pro", "balance": 1234, "currency": "EUR", "since": "2020-01-01", "limit": 5000, "rank": 7,
    })
    .to_string()
}

/// About 1 KB of JSON, shaped like a product in a cart.
fn body(name: &str) -> String {
    let items: Vec<_> = (0..8)
        .map(|i| json!({"sku": format!("sku-{i:04}"), "title": "A product with a plausible title", "quantity": i + 1, "price": 12.5}))
        .collect();
    json!({"id": "id-1", "name": name, "status": "ACTIVE", "total": 1234, "items": items}).to_string()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let body = if args.small { small_body(&args.name) } else { body(&args.name) };
    let delay = Duration::from_millis(args.delay_ms);
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            ([("content-type", "application/json")], body).into_response()
        }
    });
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bench-upstream: cannot listen on {}: {error}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    // The runner reads the bound address from the first line.
    match listener.local_addr() {
        Ok(addr) => println!("{addr}"),
        Err(error) => {
            eprintln!("bench-upstream: {error}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("bench-upstream: {error}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
