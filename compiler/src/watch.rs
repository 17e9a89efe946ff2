//! `semaphore run --watch`: Envoy with its filter's configuration in a watched file (ECDS), and
//! a loop that recompiles whenever a file of the configuration's folder changes and moves the
//! new plan into place. Envoy swaps it in without a restart: requests in flight finish on the
//! plan they started with. A configuration that does not compile keeps the old plan serving.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use semaphore_compiler::envoy::{self, EnvoyOptions};
use semaphore_compiler::{compile_file, Compiled};

/// How often the configuration's folder is looked at.
const POLL: Duration = Duration::from_millis(300);

pub fn run(
    config: &Path,
    compiled: Compiled,
    options: &EnvoyOptions,
    envoy_binary: &Path,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("semaphore-run-{}", std::process::id()));
    // The filter's configuration has a folder of its own: Envoy reloads it on a move into it.
    let filter_dir = dir.join("filter");
    std::fs::create_dir_all(&filter_dir)
        .map_err(|e| format!("cannot create {}: {e}", filter_dir.display()))?;
    let filter_file = filter_dir.join("semaphore.json");
    write_atomically(&filter_file, &envoy::filter_config_resource(&compiled, &options.wasm))?;
    let options = EnvoyOptions {
        wasm: options.wasm.clone(),
        listen: options.listen.clone(),
        admin: options.admin.clone(),
        upstream_overrides: options.upstream_overrides.clone(),
        filter_config_file: Some(filter_file.clone()),
        grpc_listen: options.grpc_listen.clone(),
        graphql_listen: options.graphql_listen.clone(),
    };
    let bootstrap = dir.join("envoy.yaml");
    std::fs::write(&bootstrap, envoy::bootstrap(&compiled, &options))
        .map_err(|e| format!("cannot write {}: {e}", bootstrap.display()))?;
    eprintln!(
        "starting {} -c {} (watching {})",
        envoy_binary.display(),
        bootstrap.display(),
        folder(config).display()
    );
    let mut envoy = Command::new(envoy_binary)
        .arg("-c")
        .arg(&bootstrap)
        .args(["--disable-hot-restart", "--log-level", "info"])
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", envoy_binary.display()))?;

    let mut seen = fingerprint(&folder(config));
    loop {
        if let Ok(Some(status)) = envoy.try_wait() {
            return if status.success() { Ok(()) } else { Err(format!("envoy exited with {status}")) };
        }
        std::thread::sleep(POLL);
        let now = fingerprint(&folder(config));
        if now == seen {
            continue;
        }
        seen = now;
        match compile_file(config) {
            Ok(compiled) => {
                eprint!("{}", compiled.warnings);
                write_atomically(&filter_file, &envoy::filter_config_resource(&compiled, &options.wasm))?;
                eprintln!("{}: compiled; the new plan goes to Envoy", config.display());
            }
            Err(diagnostics) => {
                eprint!("{diagnostics}");
                eprintln!("{}: does not compile; the previous plan keeps serving", config.display());
            }
        }
    }
}

fn folder(config: &Path) -> PathBuf {
    match config.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Written beside and moved into place, so Envoy never reads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let temporary = path.with_extension("json.next");
    std::fs::write(&temporary, text).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot move {} into place: {e}", path.display()))
}

/// Every file below the folder (but hidden ones and build output) with its length and
/// modification time: any change to the configuration, its includes or its protos changes it.
fn fingerprint(folder: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            let path = entry.path();
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                if files.len() < 10_000 {
                    pending.push(path);
                }
            } else {
                files.push((path, metadata.len(), metadata.modified().ok()));
            }
        }
    }
    files.sort();
    files
}
