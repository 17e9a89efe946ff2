//! A real Envoy process started from a bootstrap, on ports it picks itself.

use std::fmt;
use std::fs::File;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{http_client, workspace_root};

const START_LIMIT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 40;

/// Why an Envoy (or what feeds it) did not start. Its `Debug` is the readable message, so
/// `.unwrap()` and `.expect()` show Envoy's own complaint and log tail as they are.
pub struct StartError {
    message: String,
}

impl StartError {
    pub(crate) fn new(message: impl Into<String>) -> StartError {
        StartError { message: message.into() }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

/// An Envoy process, killed when dropped. Bootstraps should give the admin and every listener
/// port 0; the ports Envoy bound are read back from its admin interface.
pub struct Envoy {
    // Declared before `dir`, so the process is gone before its files are removed.
    process: KillOnDrop,
    dir: TempDir,
    admin: SocketAddr,
    listeners: Vec<(String, SocketAddr)>,
}

impl Envoy {
    /// Starts Envoy with this bootstrap (YAML) and waits until it is LIVE.
    pub async fn start(bootstrap_yaml: &str) -> Result<Envoy, StartError> {
        Envoy::start_with_args(bootstrap_yaml, &[]).await
    }

    /// As [`Envoy::start`], with more command-line arguments, e.g. `["--concurrency", "1"]`.
    pub async fn start_with_args(bootstrap_yaml: &str, extra_args: &[&str]) -> Result<Envoy, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("semaphore-e2e-envoy-")
            .tempdir()
            .map_err(|error| StartError::new(format!("cannot create a temporary dir: {error}")))?;
        let bootstrap = dir.path().join("bootstrap.yaml");
        let admin_address_file = dir.path().join("admin.txt");
        std::fs::write(&bootstrap, bootstrap_yaml)
            .map_err(|error| StartError::new(format!("cannot write the bootstrap: {error}")))?;
        let (stdout, stderr) = File::create(dir.path().join("output.txt"))
            .and_then(|stdout| Ok((stdout.try_clone()?, stdout)))
            .map_err(|error| StartError::new(format!("cannot create Envoy's output file: {error}")))?;

        let binary = envoy_binary();
        let process = Command::new(&binary)
            .arg("-c")
            .arg(&bootstrap)
            // Hot restart coordinates Envoys through shared memory keyed by a base id; off, any
            // number of Envoys run side by side.
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_address_file)
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            .args(["-l", "info"])
            // Envoy buffers its log file for 10 s by default; tests read it while it runs.
            .args(["--file-flush-interval-msec", "50"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|error| match error.kind() {
                ErrorKind::NotFound => StartError::new(format!(
                    "no Envoy binary at `{}`: set ENVOY_BIN, or run `cargo xtask setup` to \
                     install Envoy into the workspace's .venv",
                    binary.display()
                )),
                _ => StartError::new(format!("cannot run {}: {error}", binary.display())),
            })?;

        let mut envoy = Envoy {
            process: KillOnDrop(process),
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners: Vec::new(),
        };
        envoy.admin = envoy.wait_until_live(&admin_address_file).await?;
        envoy.listeners = envoy.read_listeners().await?;
        Ok(envoy)
    }

    /// `http://<first listener><path>`.
    pub fn url(&self, path: &str) -> String {
        let (_, addr) = self.listeners.first().expect("the bootstrap has no listener");
        format!("http://{addr}{path}")
    }

    /// `http://<listener named name><path>`, for bootstraps with several listeners.
    pub fn listener_url(&self, name: &str, path: &str) -> String {
        let addr = self.listener_addr(name).unwrap_or_else(|| panic!("Envoy has no listener named {name:?}"));
        format!("http://{addr}{path}")
    }

    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(candidate, _)| candidate == name).map(|(_, addr)| *addr)
    }

    /// `http://<admin><path>`, e.g. `admin_url("/stats")`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The value of one stat (counter or gauge) by its full name, from the admin interface.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let stats: serde_json::Value =
            http_client().get(self.admin_url("/stats?format=json")).send().await.ok()?.json().await.ok()?;
        stats["stats"].as_array()?.iter().find(|stat| stat["name"] == name)?["value"].as_u64()
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("envoy.log"))
    }

    /// Waits until the log contains `needle`, for at most `timeout`; the log as it then is.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return Ok(log);
            }
            if Instant::now() >= deadline {
                return Err(log);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// What Envoy printed on stdout and stderr (it logs to `log()`; this holds what comes
    /// before logging is set up, or a crash).
    pub fn output(&self) -> String {
        read_lossy(&self.dir.path().join("output.txt"))
    }

    /// Waits for the admin address file and then for `GET /ready` to answer LIVE.
    async fn wait_until_live(&mut self, admin_address_file: &Path) -> Result<SocketAddr, StartError> {
        let deadline = Instant::now() + START_LIMIT;
        let client = http_client();
        let mut admin = None;
        loop {
            if let Ok(Some(status)) = self.process.0.try_wait() {
                return Err(self.failure(&format!("Envoy exited early ({status})")));
            }
            if admin.is_none() {
                // Envoy writes the file once the admin listens; a half-written one won't parse.
                admin = std::fs::read_to_string(admin_address_file)
                    .ok()
                    .and_then(|text| text.trim().parse::<SocketAddr>().ok());
            }
            if let Some(admin) = admin {
                let ready =
                    client.get(format!("http://{admin}/ready")).timeout(Duration::from_secs(2)).send().await;
                if let Ok(response) = ready {
                    let ok = response.status().is_success();
                    if ok && response.text().await.is_ok_and(|body| body.trim() == "LIVE") {
                        return Ok(admin);
                    }
                }
            }
            if Instant::now() >= deadline {
                let waiting_for = match admin {
                    None => "its admin address",
                    Some(_) => "its admin to report LIVE",
                };
                return Err(self.failure(&format!(
                    "Envoy did not start within {START_LIMIT:?}: still waiting for {waiting_for}"
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn read_listeners(&self) -> Result<Vec<(String, SocketAddr)>, StartError> {
        let response = http_client()
            .get(self.admin_url("/listeners?format=json"))
            .send()
            .await
            .and_then(|response| response.error_for_status());
        let listeners: serde_json::Value = match response {
            Ok(response) => response.json().await,
            Err(error) => Err(error),
        }
        .map_err(|error| self.failure(&format!("cannot list Envoy's listeners: {error}")))?;

        // {"listener_statuses": [{"name": "...", "local_address": {"socket_address":
        //   {"address": "127.0.0.1", "port_value": 10000}}}]}
        let statuses = listeners["listener_statuses"].as_array().cloned().unwrap_or_default();
        statuses
            .iter()
            // Internal listeners (a gRPC endpoint's hop) have no socket to reach.
            .filter(|status| status["local_address"].get("envoy_internal_address").is_none())
            .map(|status| {
                let name = status["name"].as_str().unwrap_or_default().to_owned();
                let socket = &status["local_address"]["socket_address"];
                let addr = socket["address"]
                    .as_str()
                    .zip(socket["port_value"].as_u64())
                    .and_then(|(ip, port)| format!("{ip}:{port}").parse().ok())
                    .ok_or_else(|| self.failure(&format!("listener {name:?} has no IP address: {status}")))?;
                Ok((name, addr))
            })
            .collect()
    }

    fn failure(&self, what: &str) -> StartError {
        let mut message = what.to_owned();
        let output = self.output();
        if !output.trim().is_empty() {
            message.push_str("\n--- stdout/stderr ---\n");
            message.push_str(&tail(output.lines(), LOG_TAIL_LINES));
        }
        message.push_str(&format!("\n--- envoy.log (last {LOG_TAIL_LINES} lines) ---\n"));
        // Envoy opens its log with one line per compiled-in extension category, which would
        // fill the tail of an early failure and push out the lines that explain it.
        let log = self.log();
        let telling = log.lines().filter(|line| !is_extension_inventory(line));
        message.push_str(&tail(telling, LOG_TAIL_LINES));
        StartError::new(message)
    }
}

impl fmt::Debug for Envoy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Envoy")
            .field("pid", &self.process.0.id())
            .field("admin", &self.admin)
            .field("listeners", &self.listeners)
            .finish()
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ENVOY_BIN`, else the binary that `cargo xtask setup` installed into the workspace's
/// `.venv` (the real one, not the package's Python wrapper), else `envoy` on PATH.
/// The version of the Envoy the tests run, e.g. `(1, 40)`.
pub fn envoy_version() -> (u32, u32) {
    let output = Command::new(envoy_binary()).arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    // "<path of the binary>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL": Envoy names itself
    // as it was started, slashes and all, so the version is read after "version:".
    let text = String::from_utf8_lossy(&output);
    let version = text.split("version:").nth(1).and_then(|rest| rest.split('/').nth(1)).unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn envoy_binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(binary);
    }
    let pattern = workspace_root().join(".venv/lib/python*/site-packages/envoy/_bin/envoy");
    pattern
        .to_str()
        .and_then(|pattern| glob::glob(pattern).ok())
        .and_then(|mut paths| paths.find_map(Result::ok))
        .unwrap_or_else(|| PathBuf::from("envoy"))
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

fn tail<'a>(lines: impl Iterator<Item = &'a str>, count: usize) -> String {
    let lines: Vec<&str> = lines.collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// `[time][thread][info][main] [source/server/server.cc:467]   envoy.filters.http: ...`
fn is_extension_inventory(line: &str) -> bool {
    line.contains("[info][main] [source/server/server.cc")
        && line
            .split_once("] ")
            .and_then(|(_, rest)| rest.split_once("] "))
            .is_some_and(|(_, message)| message.starts_with("  "))
}
