//! `cargo xtask up [example]`: one bundled example, its upstream and Envoy, running until Ctrl-C.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use semaphore_compiler::envoy::insert_before_semaphore;

use crate::build::{build, Artifacts};
use crate::process::{cargo, describe, run, step};
use crate::setup::{ensure_envoy, target_dir};

const LISTENER_ADDRESS: &str = "127.0.0.1:8080";
const ADMIN_ADDRESS: &str = "127.0.0.1:9901";
const UPSTREAM_PACKAGE: &str = "example-upstream";
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The bundled examples, each under `examples/<name>/` and served by `example-upstream <name>`.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Example {
    /// GET /user/:id from one HTTP/JSON service.
    #[default]
    Getuser,
    /// POST /checkout fanning out to four HTTP/JSON services; the same flow over gRPC and GraphQL.
    Checkout,
    /// GET /hello/:name from a gRPC service, and the same flow as a gRPC method.
    Greeter,
    /// GET /me from a profile service, behind Envoy's JWT authentication.
    Jwt,
}

impl Example {
    fn name(self) -> &'static str {
        match self {
            Example::Getuser => "getuser",
            Example::Checkout => "checkout",
            Example::Greeter => "greeter",
            Example::Jwt => "jwt",
        }
    }

    /// Where the example's config.hcl expects its upstream.
    fn upstream_address(self) -> &'static str {
        match self {
            Example::Getuser => "127.0.0.1:9090",
            Example::Checkout => "127.0.0.1:9091",
            Example::Greeter => "127.0.0.1:9092",
            Example::Jwt => "127.0.0.1:9093",
        }
    }

    /// A request the example answers.
    fn try_command(self) -> String {
        match self {
            Example::Getuser => format!("curl -s {LISTENER_ADDRESS}/user/1"),
            Example::Checkout => format!(
                r#"curl -s {LISTENER_ADDRESS}/checkout -H 'Authorization: Bearer demo-token' \
      -H 'Content-Type: application/json' -d '{{"cart_id":"c-1001","user_id":"u-7","coupon":"WELCOME10"}}'
  curl -s {LISTENER_ADDRESS}/graphql -H 'Authorization: Bearer demo-token' -H 'Content-Type: application/json' \
      -d '{{"query":"mutation {{ checkout(cart_id: \"c-1001\", user_id: \"u-7\") {{ subtotal_cents shipping {{ carrier }} }} }}"}}'"#
            ),
            Example::Greeter => format!(
                "curl -s {LISTENER_ADDRESS}/hello/world\n  \
                 curl -s -H 'content-type: application/json' -d '{{\"name\":\"world\"}}' \
                 {LISTENER_ADDRESS}/greeter.Gateway/SayHello   # the gRPC method, over Connect"
            ),
            Example::Jwt => format!(
                r#"curl -s {LISTENER_ADDRESS}/me -H "Authorization: Bearer $(python3 examples/jwt/token.py ada)""#
            ),
        }
    }

    /// Envoy HTTP filters the example needs before the semaphore filter: a file holding a YAML
    /// list of them, relative to the workspace root.
    fn filters_before_semaphore(self) -> Option<&'static str> {
        match self {
            Example::Getuser | Example::Checkout | Example::Greeter => None,
            Example::Jwt => Some("examples/jwt/jwt_authn.yaml"),
        }
    }
}

pub fn up(root: &Path, example: Example, watch: bool) -> Result<()> {
    let name = example.name();
    let upstream_address = example.upstream_address();
    let envoy = ensure_envoy(root)?;
    let artifacts = build(root)?;
    step("Building the examples' upstream (release)");
    run(cargo(root).args(["build", "--release", "-p", UPSTREAM_PACKAGE]))?;

    // A leftover Envoy on the admin port would answer LIVE for us and hide that ours never started.
    for address in [upstream_address, LISTENER_ADDRESS, ADMIN_ADDRESS] {
        TcpListener::bind(address)
            .with_context(|| format!("{address} is already in use (is another `cargo xtask up` running?)"))?;
    }

    let (interrupted_tx, interrupted) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = interrupted_tx.send(());
    })
    .context("cannot install the Ctrl-C handler")?;

    let mut services = Services::default();
    step(&format!("Starting `{UPSTREAM_PACKAGE} {name}` on {upstream_address}"));
    services.start(
        UPSTREAM_PACKAGE,
        Command::new(target_dir(root).join("release").join(UPSTREAM_PACKAGE))
            .args([name, "--listen", upstream_address])
            .current_dir(root),
    )?;
    start_envoy(root, &mut services, &artifacts, &envoy, example, watch)?;

    if !wait_until_live(&mut services, &interrupted)? {
        return Ok(());
    }
    println!("Ready. Try:\n  {}", example.try_command());
    println!("More requests in examples/{name}/README.md.");
    println!("Ctrl-C stops everything.");

    loop {
        match interrupted.recv_timeout(POLL_INTERVAL) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                println!("Stopping.");
                return Ok(());
            }
            Err(RecvTimeoutError::Timeout) => services.fail_if_any_exited()?,
        }
    }
}

/// Envoy with the example: `semaphore run`, or, for an example with filters of its own in front
/// of the semaphore filter, Envoy on a bootstrap with them.
fn start_envoy(
    root: &Path,
    services: &mut Services,
    artifacts: &Artifacts,
    envoy: &Path,
    example: Example,
    watch: bool,
) -> Result<()> {
    let config = format!("examples/{}/config.hcl", example.name());
    match example.filters_before_semaphore() {
        None => {
            step(&format!(
                "Starting Envoy with {config} (listener {LISTENER_ADDRESS}, admin {ADMIN_ADDRESS})"
            ));
            services.start(
                "semaphore run",
                Command::new(&artifacts.compiler)
                    .args(["run", &config, "--wasm"])
                    .arg(&artifacts.filter)
                    .args(["--listen", LISTENER_ADDRESS, "--admin", ADMIN_ADDRESS])
                    .args(if watch { &["--watch"][..] } else { &[] })
                    .env("ENVOY_BIN", envoy)
                    .current_dir(root),
            )?;
        }
        // `semaphore run` knows only the semaphore filter: write its bootstrap, add the
        // example's filters in front, and run Envoy on the result (edits need a restart).
        Some(filters) => {
            if watch {
                println!("    --watch: this example runs a bootstrap of its own; edits need a restart");
            }
            let bootstrap = bootstrap_with_filters_before_semaphore(root, artifacts, example, filters)?;
            step(&format!(
                "Starting Envoy with {config} behind {filters} (listener {LISTENER_ADDRESS}, admin {ADMIN_ADDRESS})"
            ));
            services.start(
                "envoy",
                Command::new(envoy)
                    .arg("-c")
                    .arg(&bootstrap)
                    .args(["--disable-hot-restart", "--log-level", "info"])
                    .current_dir(root),
            )?;
        }
    }

    Ok(())
}

/// Writes the example's bootstrap, as `semaphore envoy` generates it, with the HTTP filters of
/// `filters_file` inserted before the semaphore filter, under the target dir; returns its path.
fn bootstrap_with_filters_before_semaphore(
    root: &Path,
    artifacts: &Artifacts,
    example: Example,
    filters_file: &str,
) -> Result<PathBuf> {
    let name = example.name();
    let dir = target_dir(root).join("xtask-up");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}-envoy.yaml"));
    step(&format!("Writing the Envoy bootstrap of examples/{name}/config.hcl"));
    run(Command::new(&artifacts.compiler)
        .args(["envoy", &format!("examples/{name}/config.hcl"), "--wasm"])
        .arg(&artifacts.filter)
        .args(["--listen", LISTENER_ADDRESS, "--admin", ADMIN_ADDRESS, "-o"])
        .arg(&path)
        .current_dir(root))?;

    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let yaml = insert_before_semaphore(&read(&path)?, &read(&root.join(filters_file))?)
        .with_context(|| format!("cannot add {filters_file} to {}", path.display()))?;
    std::fs::write(&path, yaml).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Waits for Envoy's admin to report LIVE; false when the user interrupted the wait.
fn wait_until_live(services: &mut Services, interrupted: &Receiver<()>) -> Result<bool> {
    let admin: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        // Loopback traffic must not take a detour through a proxy from the environment.
        .proxy(None)
        .build()
        .into();
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        if admin_is_live(&admin) {
            return Ok(true);
        }
        services.fail_if_any_exited()?;
        if Instant::now() > deadline {
            bail!("Envoy's admin at {ADMIN_ADDRESS} was not LIVE within {STARTUP_LIMIT:?}");
        }
        match interrupted.recv_timeout(POLL_INTERVAL) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(false),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// `GET /ready` on Envoy's admin, which answers 200 "LIVE" once the server is serving.
fn admin_is_live(admin: &ureq::Agent) -> bool {
    admin
        .get(format!("http://{ADMIN_ADDRESS}/ready"))
        .call()
        .and_then(|mut response| response.body_mut().read_to_string())
        .is_ok_and(|body| body.trim() == "LIVE")
}

/// Child processes that are stopped, with everything they started, when this is dropped.
#[derive(Default)]
struct Services {
    running: Vec<(&'static str, Child)>,
}

impl Services {
    fn start(&mut self, name: &'static str, command: &mut Command) -> Result<()> {
        // Their own process group: the terminal's Ctrl-C reaches only us, so we decide the order
        // of shutdown, and stopping the group also stops an Envoy that `semaphore run` spawned.
        let child = command
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start `{}`", describe(command)))?;
        self.running.push((name, child));
        Ok(())
    }

    fn fail_if_any_exited(&mut self) -> Result<()> {
        for (name, child) in &mut self.running {
            if let Some(status) = child.try_wait().context("cannot check a child process")? {
                bail!("{name} exited early ({status})");
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        for (_, child) in &self.running {
            signal_group(child, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child) in &mut self.running {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("{name} did not stop on SIGTERM; killing it");
            }
            signal_group(child, Signal::SIGKILL);
            let _ = child.wait();
        }
        self.running.clear();
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(child: &Child, signal: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group may already be gone; nothing is left to stop then.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}
