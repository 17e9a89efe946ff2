//! The getuser example's upstream: `GET /user/{id}` answers the user with that id from a JSON file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Serves the getuser example's users over HTTP")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// JSON file holding an array of users.
    #[arg(long, default_value_os_t = default_data_path())]
    data: PathBuf,
}

fn default_data_path() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).join("users.json")
}

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: String,
    name: String,
    username: String,
    email: String,
}

type UsersById = Arc<HashMap<String, User>>;

fn load_users(path: &Path) -> Result<UsersById, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let users: Vec<User> = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a JSON array of users: {error}", path.display()))?;
    let mut by_id = HashMap::with_capacity(users.len());
    for user in users {
        let id = user.id.clone();
        if by_id.insert(id.clone(), user).is_some() {
            return Err(format!("{}: user id {id:?} appears twice", path.display()));
        }
    }
    Ok(Arc::new(by_id))
}

async fn get_user(State(users): State<UsersById>, UrlPath(id): UrlPath<String>) -> Response {
    match users.get(&id) {
        Some(user) => Json(user.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "message": format!("user {id} not found") })))
            .into_response(),
    }
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    println!("{method} {uri} -> {} ({} µs)", response.status().as_u16(), started.elapsed().as_micros());
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let users = match load_users(&args.data) {
        Ok(users) => users,
        Err(message) => {
            eprintln!("getuser-upstream: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let app = Router::new()
        .route("/user/{id}", get(get_user))
        .layer(middleware::from_fn(log_request))
        .with_state(users.clone());

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("getuser-upstream: cannot listen on {}: {error}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(args.listen);
    println!(
        "getuser-upstream: {} users from {}, listening on http://{bound}",
        users.len(),
        args.data.display(),
    );
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
        eprintln!("getuser-upstream: {error}");
        return std::process::ExitCode::FAILURE;
    }
    println!("getuser-upstream: stopped");
    std::process::ExitCode::SUCCESS
}
