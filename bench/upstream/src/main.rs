//! The benchmark's upstream: every request gets the same ~1 KB JSON object after `--delay-ms`.

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
    let body = body(&args.name);
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
