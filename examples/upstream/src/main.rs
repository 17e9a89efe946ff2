//! `example-upstream <example>`: serves the upstream of one bundled example until SIGINT or
//! SIGTERM, logging every request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use clap::{Parser, Subcommand};
use example_upstream::{checkout, getuser, greeter, grpc, jwt};

#[derive(Parser)]
#[command(name = "example-upstream", about = "Serves the upstream services of the bundled examples")]
struct Cli {
    #[command(subcommand)]
    example: Example,
}

#[derive(Subcommand)]
enum Example {
    /// getuser: `GET /user/{id}` answers users from a JSON file.
    Getuser {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// JSON file holding an array of users.
        #[arg(long, default_value_os_t = getuser::default_data_path())]
        data: PathBuf,
    },
    /// checkout: carts, customers, shipping quotes and discounts over HTTP/JSON.
    Checkout {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9091")]
        listen: SocketAddr,
    },
    /// greeter: the gRPC service helloworld.Greeter, over HTTP/2 without TLS.
    Greeter {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: SocketAddr,
    },
    /// jwt: `GET /profiles/{id}`, the profiles behind the jwt example's `GET /me`.
    Jwt {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9093")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let (name, listen, app, serving) = match Cli::parse().example {
        Example::Getuser { listen, data } => {
            let users = match getuser::load_users(&data) {
                Ok(users) => users,
                Err(message) => {
                    eprintln!("example-upstream getuser: {message}");
                    return ExitCode::FAILURE;
                }
            };
            let serving = format!("{} users from {}", users.len(), data.display());
            ("getuser", listen, getuser::router(users), serving)
        }
        Example::Checkout { listen } => {
            ("checkout", listen, checkout::router(), "carts, customers, shipping and discounts".to_owned())
        }
        Example::Greeter { listen } => {
            ("greeter", listen, greeter::router(), "gRPC helloworld.Greeter (h2c)".to_owned())
        }
        Example::Jwt { listen } => ("jwt", listen, jwt::router(), "profiles".to_owned()),
    };
    serve(name, listen, app, &serving).await
}

async fn serve(name: &str, listen: SocketAddr, app: Router, serving: &str) -> ExitCode {
    let app = app.layer(middleware::from_fn(log_request));
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("example-upstream {name}: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(listen);
    println!("example-upstream {name}: {serving}, listening on http://{bound}");
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
        eprintln!("example-upstream {name}: {error}");
        return ExitCode::FAILURE;
    }
    println!("example-upstream {name}: stopped");
    ExitCode::SUCCESS
}

/// `GET /user/1 -> 200 (12 µs)`; gRPC calls add their status: `-> 200 grpc-status 5`.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // HTTP/2 requests carry the scheme and authority in the URI; the path is what tells them apart.
    let path = request.uri().path_and_query().map_or_else(|| request.uri().to_string(), ToString::to_string);
    let started = Instant::now();
    let response = next.run(request).await;
    let grpc_status = match response.extensions().get::<grpc::Status>() {
        Some(status) => format!(" grpc-status {}", status.code),
        None => String::new(),
    };
    println!(
        "{method} {path} -> {}{grpc_status} ({} µs)",
        response.status().as_u16(),
        started.elapsed().as_micros()
    );
    response
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
