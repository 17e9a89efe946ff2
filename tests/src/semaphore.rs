//! Envoy running a Semaphore configuration with the built filter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use semaphore_compiler::envoy::{bootstrap, EnvoyOptions};

use crate::{wasm_path, workspace_root, Envoy, StartError};

/// Compiles `config` (relative paths are from the workspace root), writes an Envoy bootstrap for
/// it with the built filter, and starts Envoy on ports of its own. `upstreams` sends each named
/// service (by full name, e.g. `proto.Users`) to a test server instead of the host its schema
/// names. Compile errors come back as the error, rendered as the compiler renders them.
pub async fn start_semaphore(
    config: impl AsRef<Path>,
    upstreams: &[(&str, SocketAddr)],
) -> Result<Envoy, StartError> {
    start_semaphore_with_args(config, upstreams, &[]).await
}

/// As [`start_semaphore`], with more Envoy command-line arguments, e.g. `["--concurrency", "1"]`.
pub async fn start_semaphore_with_args(
    config: impl AsRef<Path>,
    upstreams: &[(&str, SocketAddr)],
    envoy_args: &[&str],
) -> Result<Envoy, StartError> {
    let config = workspace_root().join(config);
    let compiled = semaphore_compiler::compile_file(&config).map_err(|diagnostics| {
        StartError::new(format!(
            "{} did not compile ({} errors):\n{}",
            config.display(),
            diagnostics.errors,
            diagnostics.rendered
        ))
    })?;
    let options = EnvoyOptions {
        wasm: wasm_path(),
        listen: Some("127.0.0.1:0".to_owned()),
        // A configuration's `grpc { address }` listener, if it has one, on a port of its own.
        grpc_listen: compiled.listener.grpc_address.as_ref().map(|_| "127.0.0.1:0".to_owned()),
        graphql_listen: compiled.listener.graphql_address.as_ref().map(|_| "127.0.0.1:0".to_owned()),
        admin: "127.0.0.1:0".to_owned(),
        upstream_overrides: upstreams
            .iter()
            .map(|(service, addr)| ((*service).to_owned(), addr.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    Envoy::start_with_args(&bootstrap(&compiled, &options), envoy_args).await
}
