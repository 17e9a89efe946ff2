//! The `http`, `grpc` and `graphql` blocks' addresses and `log_level`: how the generated Envoy listens (addresses,
//! TLS, CORS, stream timeouts) and how much the filter logs, checked once here.

use std::path::PathBuf;

use crate::config::{Config, Spanned};
use crate::diagnostics::Reporter;
use crate::lower::services::parse_duration_ms;

/// What the generated Envoy listener does.
#[derive(Debug, Default, Clone)]
pub struct Listener {
    /// `address`, e.g. `:8080` or `127.0.0.1:8080`.
    pub address: Option<String>,
    /// `origin = [...]`: origins allowed to call the endpoints from a browser. Empty: no CORS.
    pub cors_origins: Vec<String>,
    /// `cert_file` and `key_file`: the listener speaks TLS.
    pub tls: Option<Tls>,
    /// `read_timeout`: the whole request must arrive within it (Envoy's `request_timeout`).
    pub read_timeout_ms: Option<u32>,
    /// `write_timeout`: the whole exchange must end within it (Envoy's `max_stream_duration`).
    pub write_timeout_ms: Option<u32>,
    /// `grpc { address }`: a listener of its own, as Semaphore's daemon served gRPC there.
    pub grpc_address: Option<String>,
    /// `graphql { address }`: a listener of its own, the GraphQL schema answering on any path
    /// there, as on Semaphore's daemon.
    pub graphql_address: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub fn listener(config: &Config, reporter: &mut Reporter) -> Listener {
    let http = &config.http;
    let mut duration = |value: &Option<Spanned<crate::config::Literal>>| {
        let value = value.as_ref()?;
        let parsed = match &value.value {
            crate::config::Literal::String(text) => parse_duration_ms(text),
            crate::config::Literal::Int(ms) => u32::try_from(*ms).ok(),
            _ => None,
        };
        if parsed.is_none() {
            reporter
                .error(&value.span, "expected a duration such as \"5s\" or \"500ms\"")
                .label("not a duration");
        }
        parsed.filter(|ms| *ms > 0)
    };
    let read_timeout_ms = duration(&http.read_timeout);
    let write_timeout_ms = duration(&http.write_timeout);
    let tls = match (&http.cert_file, &http.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            for file in [cert, key] {
                if !file.value.is_file() {
                    reporter
                        .error(&file.span, format!("no file at {}", file.value.display()))
                        .label("not found")
                        .note("paths are relative to the file that names them");
                }
            }
            let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone());
            Some(Tls { cert_file: absolute(&cert.value), key_file: absolute(&key.value) })
        }
        (Some(one), None) | (None, Some(one)) => {
            reporter
                .error(&one.span, "`cert_file` and `key_file` go together")
                .label("the other one is missing");
            None
        }
    };
    Listener {
        address: http.address.as_ref().map(|a| a.value.clone()),
        cors_origins: http.origins.iter().map(|o| o.value.clone()).collect(),
        tls,
        read_timeout_ms,
        write_timeout_ms,
        grpc_address: config.grpc_address.as_ref().map(|a| a.value.clone()),
        graphql_address: config.graphql.address.as_ref().map(|a| a.value.clone()),
    }
}

/// The filter's log level from `log_level` (Semaphore's names, any case); empty when unset,
/// and when it expands to nothing (`log_level = "$LOG_LEVEL"` without the variable).
pub fn log_level(config: &Config, reporter: &mut Reporter) -> String {
    let Some(level) = &config.log_level else { return String::new() };
    let normalized = level.value.trim().to_ascii_lowercase();
    match normalized.as_str() {
        "" => String::new(),
        "trace" | "debug" | "info" | "error" => normalized,
        "warn" | "warning" => "warn".into(),
        other => {
            reporter
                .warning(&level.span, format!("unknown log level `{other}`"))
                .label("ignored: the filter logs at info")
                .note("the levels are debug, info, warn and error");
            String::new()
        }
    }
}
