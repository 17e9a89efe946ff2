//! `cargo xtask bench`: the cost of orchestration, measured against Envoy itself in one run.
//!
//! Four Envoys run the same workload against the same upstreams: (a) plain Envoy proxying to
//! one upstream, the floor of one hop; (b) a minimal proxy-wasm filter making the workload's
//! calls and concatenating their bodies, the floor for any filter of this shape; (c) the
//! Semaphore filter running the flow; (d) the same flow written by hand in Rust for this one
//! job, with serde, which does the flow's own JSON work and nothing more (it must answer what
//! (c) answers, byte for byte). Two workloads: a checkout of three calls with about 1 KB
//! of JSON each way, and a profile of two parallel GETs of small JSON. Each gets a closed loop
//! (throughput at fixed connections) and an open loop (latency at a fixed rate), from oha; the
//! checkout also gets Envoy's memory with two workers, and its latency over delayed upstreams;
//! the profile's flow is also measured through its gRPC and Connect endpoints against its HTTP
//! one. The results go to BENCHMARKS.md with the machine they ran on.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use semaphore_compiler::envoy::{plain_proxy_bootstrap, replace_module};
use serde_json::Value;

mod instructions;

use crate::build::{build, Artifacts};
use crate::process::{capture, cargo, describe, run, step};
use crate::setup::{ensure_envoy, target_dir, WASM_TARGET};

/// The closed loop's short runs per scenario, and their length.
const ROUNDS: usize = 5;
const ROUND_SECONDS: u64 = 4;
const CONNECTIONS: u32 = 32;
const RATE: u32 = 500;
/// Upstream delays for the latency run: `a` 20 ms, `b` 30 ms, `c` 10 ms after `a`: the
/// critical path is 30 ms.
const DELAYS: [u64; 3] = [20, 30, 10];
const CRITICAL_PATH_MS: f64 = 30.0;
const OHA_VERSION: &str = "1.16.0";

/// `instructions_only`: only count instructions per request, and print them (BENCHMARKS.md is
/// left as it is): a figure precise enough to compare two builds on a noisy machine.
pub fn bench(root: &Path, instructions_only: bool, endpoints_only: bool) -> Result<()> {
    let tools = Tools::prepare(root)?;
    let mut report = Report::default();
    if endpoints_only {
        measure_endpoints(&tools, &mut report)?;
        let mut out = String::new();
        report.write_endpoints(&mut out);
        println!("\n{out}");
        return Ok(());
    }
    if instructions_only {
        for workload in Workload::ALL {
            report.instructions.push((workload, instructions::count(&tools, workload)?));
        }
        let mut out = String::new();
        report.write_instructions(&mut out);
        println!("\n{out}");
        return Ok(());
    }
    for workload in Workload::ALL {
        measure_over_instant_upstreams(&tools, workload, &mut report)?;
    }
    for workload in Workload::ALL {
        report.instructions.push((workload, instructions::count(&tools, workload)?));
    }
    measure_endpoints(&tools, &mut report)?;
    measure_memory_with_two_workers(&tools, &mut report)?;
    measure_over_delayed_upstreams(&tools, &mut report)?;
    step("Static figures");
    static_figures(&tools, &mut report)?;
    step("Criterion: compiling 1,000 flows");
    report.criterion.extend(criterion(root, "semaphore-compiler", "compile")?);
    step("Criterion: the engine's work per request");
    report.criterion.extend(criterion(root, "semaphore-engine-bench", "engine")?);
    step("Where the time goes: the checkout in V8 (cargo xtask profile)");
    report.profile = Some(crate::profile::measure(root)?);

    let markdown = report.markdown(&machine());
    std::fs::write(root.join("BENCHMARKS.md"), &markdown).context("writing BENCHMARKS.md")?;
    println!("{markdown}");
    Ok(())
}

/// oha's arguments for the open loop: `RATE` requests/s for `seconds`, latencies corrected for
/// coordinated omission.
fn open_loop(seconds: u64) -> Vec<String> {
    let (seconds, connections, rate) = (format!("{seconds}s"), CONNECTIONS.to_string(), RATE.to_string());
    ["-z", &seconds, "-c", &connections, "-q", &rate, "--latency-correction"].map(String::from).to_vec()
}

/// Runs `measure` on each of `count` Envoys (or front doors) in `ROUNDS` rounds, each round
/// starting one later than the last, so that a slow spell of the machine falls on all alike;
/// `label` names what is measured in the progress lines.
fn in_turns(label: &str, count: usize, mut measure: impl FnMut(usize) -> Result<()>) -> Result<()> {
    for round in 0..ROUNDS {
        step(&format!("Measuring {label}: round {} of {ROUNDS}", round + 1));
        for turn in 0..count {
            measure((round + turn) % count)?;
        }
    }
    Ok(())
}

/// Throughput (closed loop), latency (open loop) and RSS of every scenario, over upstreams that
/// answer at once. The four Envoys run side by side, and the closed loop goes round them in
/// `ROUNDS` short runs, in a rotating order: a slow spell of a shared machine falls on all of
/// them alike, and the medians leave it out.
fn measure_over_instant_upstreams(tools: &Tools, workload: Workload, report: &mut Report) -> Result<()> {
    let upstreams = Upstreams::start(&tools.upstream, [0, 0, 0], workload.small_answers())?;
    step(&format!("Measuring {}: starting the four Envoys", workload.name()));
    let mut envoys = Vec::new();
    for scenario in Scenario::ALL {
        envoys.push(EnvoyProcess::start(&tools.envoy, &tools.bootstrap(workload, scenario, &upstreams)?, 1)?);
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle: Vec<(u64, (u64, u64))> =
        envoys.iter().map(|envoy| (envoy.rss_kb(), envoy.allocator_kb())).collect();
    let url = |scenario: Scenario| {
        let index = Scenario::ALL.iter().position(|s| *s == scenario).unwrap_or_default();
        envoys[index].url(workload, scenario)
    };
    tools.check_same_answers(workload, &url(Scenario::Semaphore), &url(Scenario::Handwritten))?;
    for (scenario, envoy) in Scenario::ALL.iter().zip(&envoys) {
        tools.oha(workload, &envoy.url(workload, *scenario), &["-z", "2s", "-c", "8"])?;
    }
    let mut throughputs = vec![Vec::new(); Scenario::ALL.len()];
    let mut opens = vec![Vec::new(); Scenario::ALL.len()];
    in_turns(workload.name(), Scenario::ALL.len(), |index| {
        let url = envoys[index].url(workload, Scenario::ALL[index]);
        let load = ["-z", &format!("{ROUND_SECONDS}s"), "-c", &CONNECTIONS.to_string()];
        throughputs[index].push(throughput(&tools.oha(workload, &url, &load)?));
        let open_loop = open_loop(ROUND_SECONDS);
        opens[index].push(tools.oha(
            workload,
            &url,
            &open_loop.iter().map(String::as_str).collect::<Vec<_>>(),
        )?);
        Ok(())
    })?;
    for (index, scenario) in Scenario::ALL.into_iter().enumerate() {
        let (idle_rss_kb, idle_allocator_kb) = idle[index];
        report.runs.push(Run {
            workload,
            scenario,
            throughputs: std::mem::take(&mut throughputs[index]),
            opens: std::mem::take(&mut opens[index]),
            idle_rss_kb,
            idle_allocator_kb,
            rss_kb: envoys[index].rss_kb(),
        });
    }
    Ok(())
}

/// The profile flow through each of its front doors on one Semaphore Envoy (`Front`): the
/// closed loop goes round them in `ROUNDS` short runs, in a rotating order, as above.
fn measure_endpoints(tools: &Tools, report: &mut Report) -> Result<()> {
    let workload = Workload::Profile;
    let upstreams = Upstreams::start(&tools.upstream, [0, 0, 0], workload.small_answers())?;
    step("Measuring the profile's endpoints: starting Envoy");
    let bootstrap = tools.bootstrap_of(PROFILE_ENDPOINTS, Scenario::Semaphore, &upstreams)?;
    let envoy = EnvoyProcess::start(&tools.envoy, &bootstrap, 1)?;
    std::thread::sleep(Duration::from_secs(1));
    let body = std::env::temp_dir().join(format!("semaphore-bench-grpc-{}.bin", std::process::id()));
    std::fs::write(&body, Front::grpc_request())?;
    for front in Front::ALL {
        front.oha(tools, &envoy, &body, &["-z", "2s", "-c", "8"])?;
    }
    let mut throughputs = vec![Vec::new(); Front::ALL.len()];
    in_turns("the profile's endpoints", Front::ALL.len(), |index| {
        let load = ["-z", &format!("{ROUND_SECONDS}s"), "-c", &CONNECTIONS.to_string()];
        throughputs[index].push(throughput(&Front::ALL[index].oha(tools, &envoy, &body, &load)?));
        Ok(())
    })?;
    let _ = std::fs::remove_file(&body);
    report.endpoints = Front::ALL.into_iter().zip(throughputs).collect();
    Ok(())
}

/// `bench/flow/profile.hcl`, its flow also served as the gRPC method `bench.Profiles/Get` and
/// the GraphQL field `profile`.
const PROFILE_ENDPOINTS: &str = "bench/flow/profile-endpoints.hcl";

/// How a client reaches the profile flow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Front {
    /// `GET /profile/user-1`, as in the profile workload.
    Http,
    /// The gRPC method, over HTTP/2 through the filter's internal hop.
    Grpc,
    /// The same method called with Connect's JSON, over HTTP/1.1.
    Connect,
    /// The GraphQL query of the field `profile`, selecting every field of its output.
    Graphql,
}

impl Front {
    const ALL: [Front; 4] = [Front::Http, Front::Grpc, Front::Connect, Front::Graphql];
    const METHOD: &str = "/bench.Profiles/Get";

    fn label(self) -> &'static str {
        match self {
            Front::Http => "HTTP endpoint, `GET /profile/user-1`",
            Front::Grpc => "gRPC method `bench.Profiles/Get` (HTTP/2)",
            Front::Connect => "the same method over Connect, JSON",
            Front::Graphql => "GraphQL query of `profile`, all 12 fields",
        }
    }

    /// `bench.Query { id: "user-1" }` in its gRPC frame.
    fn grpc_request() -> Vec<u8> {
        let message = [b"\x0a\x06".as_slice(), b"user-1"].concat();
        let mut framed = vec![0, 0, 0, 0, message.len() as u8];
        framed.extend_from_slice(&message);
        framed
    }

    fn oha(self, tools: &Tools, envoy: &EnvoyProcess, grpc_body: &Path, load: &[&str]) -> Result<Value> {
        let base = format!("http://127.0.0.1:{}", envoy.listen);
        let result = match self {
            Front::Http => {
                return tools.oha(Workload::Profile, &format!("{base}{}", Workload::Profile.path()), load)
            }
            Front::Grpc => {
                let body = grpc_body.to_string_lossy();
                let headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"];
                let args = [&["--http2", "-m", "POST"], &headers[..], &["-D", &body]].concat();
                tools.oha_raw(&format!("{base}{}", Front::METHOD), &[load, &args].concat())?
            }
            Front::Connect => {
                let args = ["-m", "POST", "-H", "content-type: application/json", "-d", r#"{"id":"user-1"}"#];
                tools.oha_raw(&format!("{base}{}", Front::METHOD), &[load, &args].concat())?
            }
            Front::Graphql => {
                let query = r#"{"query":"{ profile(id: \"user-1\") { id name email country age active plan balance currency since limit account } }"}"#;
                let args = ["-m", "POST", "-H", "content-type: application/json", "-d", query];
                tools.oha_raw(&format!("{base}/graphql"), &[load, &args].concat())?
            }
        };
        // A gRPC failure is HTTP 200 too, without a message: every answer must carry one.
        let size = result.pointer("/summary/sizePerRequest").and_then(Value::as_f64).unwrap_or(0.0);
        if size < 10.0 {
            bail!("{} answered {size} bytes per request: not the profile", self.label());
        }
        Ok(result)
    }
}

/// Envoy's memory with two workers, each of which runs its own VM of the filter, after a short
/// closed loop of the checkout.
fn measure_memory_with_two_workers(tools: &Tools, report: &mut Report) -> Result<()> {
    let workload = Workload::Checkout;
    let upstreams = Upstreams::start(&tools.upstream, [0, 0, 0], workload.small_answers())?;
    for scenario in [Scenario::Baseline, Scenario::Semaphore] {
        step(&format!("Measuring the memory of {} with two workers", scenario.label(workload)));
        let envoy = EnvoyProcess::start(&tools.envoy, &tools.bootstrap(workload, scenario, &upstreams)?, 2)?;
        tools.oha(workload, &envoy.url(workload, scenario), &["-z", "3s", "-c", &CONNECTIONS.to_string()])?;
        report.two_workers_rss_kb.push((scenario, envoy.rss_kb()));
    }
    Ok(())
}

/// Latency (open loop) of the checkout over upstreams with the delays of `DELAYS`: what the
/// filter adds to the flow's critical path. The two Envoys run side by side and are measured in
/// turns, `ROUNDS` short runs each, as over instant upstreams: a p99 rests on the slowest
/// hundredth of a run, which one slow spell of a shared machine makes.
fn measure_over_delayed_upstreams(tools: &Tools, report: &mut Report) -> Result<()> {
    let workload = Workload::Checkout;
    let scenarios = [Scenario::Baseline, Scenario::Semaphore];
    let upstreams = Upstreams::start(&tools.upstream, DELAYS, workload.small_answers())?;
    step("Measuring the checkout over delayed upstreams: starting both Envoys");
    let mut envoys = Vec::new();
    for scenario in scenarios {
        envoys.push(EnvoyProcess::start(&tools.envoy, &tools.bootstrap(workload, scenario, &upstreams)?, 1)?);
    }
    for (scenario, envoy) in scenarios.iter().zip(&envoys) {
        tools.oha(workload, &envoy.url(workload, *scenario), &["-z", "2s", "-c", "8", "-q", "100"])?;
    }
    let mut opens = vec![Vec::new(); scenarios.len()];
    in_turns("the checkout over delayed upstreams", scenarios.len(), |index| {
        let url = envoys[index].url(workload, scenarios[index]);
        let load = open_loop(ROUND_SECONDS);
        opens[index].push(tools.oha(workload, &url, &load.iter().map(String::as_str).collect::<Vec<_>>())?);
        Ok(())
    })?;
    report.delayed = scenarios.into_iter().zip(opens).collect();
    Ok(())
}

/// The modules' sizes and the examples' plan sizes.
fn static_figures(tools: &Tools, report: &mut Report) -> Result<()> {
    report.wasm_kb = file_kb(&tools.artifacts.filter)?;
    report.baseline_kb = file_kb(&tools.baseline)?;
    report.handwritten_kb = file_kb(&tools.handwritten)?;
    let examples = tools.root.join("examples/*/config.hcl");
    for config in glob::glob(&examples.to_string_lossy())?.filter_map(Result::ok) {
        let plan = std::env::temp_dir().join("semaphore-bench-plan.bin");
        capture(Command::new(&tools.artifacts.compiler).arg("compile").arg(&config).arg("-o").arg(&plan))?;
        let name = config.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        report.plans.push((name.unwrap_or_default(), std::fs::metadata(&plan)?.len()));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Proxy,
    Baseline,
    Semaphore,
    Handwritten,
}

impl Scenario {
    const ALL: [Scenario; 4] =
        [Scenario::Proxy, Scenario::Baseline, Scenario::Semaphore, Scenario::Handwritten];

    fn label(self, workload: Workload) -> String {
        match self {
            Scenario::Proxy => "(a) Envoy proxying to one upstream".into(),
            Scenario::Baseline => format!("(b) minimal filter, {} fixed callouts", workload.calls()),
            Scenario::Semaphore => "(c) Semaphore running the flow".into(),
            Scenario::Handwritten => "(d) the flow written by hand (Rust, serde)".into(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::Proxy => "proxy",
            Scenario::Baseline => "minimal",
            Scenario::Semaphore => "semaphore",
            Scenario::Handwritten => "handwritten",
        }
    }
}

/// What the client asks and the flow does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    /// `POST /checkout`, about 1 KB of JSON each way; `a` and `b` in parallel, `c` after `a`.
    Checkout,
    /// `GET /profile/:id`; `user` and `account` in parallel, small JSON, a dozen fields out.
    Profile,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Checkout, Workload::Profile];

    fn name(self) -> &'static str {
        match self {
            Workload::Checkout => "checkout",
            Workload::Profile => "profile",
        }
    }

    fn config(self) -> &'static str {
        match self {
            Workload::Checkout => "bench/flow/checkout.hcl",
            Workload::Profile => "bench/flow/profile.hcl",
        }
    }

    fn calls(self) -> &'static str {
        match self {
            Workload::Checkout => "three",
            Workload::Profile => "two",
        }
    }

    fn small_answers(self) -> bool {
        self == Workload::Profile
    }

    fn path(self) -> &'static str {
        match self {
            Workload::Checkout => "/checkout",
            Workload::Profile => "/profile/user-1",
        }
    }

    /// The request oha sends: method and body.
    fn request(self) -> (&'static str, Option<String>) {
        match self {
            Workload::Checkout => ("POST", Some(checkout_input())),
            Workload::Profile => ("GET", None),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Workload::Checkout => {
                "`POST /checkout` with about 1 KB of JSON; three upstream calls, `a` and `b` in parallel \
                 and `c` after `a`, each answering about 1 KB of JSON; the answer is about 1 KB of JSON \
                 (`bench/flow/checkout.hcl`)"
            }
            Workload::Profile => {
                "`GET /profile/user-1`; two upstream GETs in parallel, each answering a dozen small \
                 fields; the answer has twelve fields, six from each (`bench/flow/profile.hcl`)"
            }
        }
    }
}

/// About 1 KB of JSON: the checkout the client posts.
fn checkout_input() -> String {
    let items: Vec<Value> = (0..8)
        .map(|i| serde_json::json!({"sku": format!("sku-{i:04}"), "title": "A product with a plausible title", "quantity": i + 1, "price": 12.5}))
        .collect();
    serde_json::json!({"id": "order-1", "name": "Ada", "status": "NEW", "total": 100, "items": items})
        .to_string()
}

struct Tools {
    envoy: PathBuf,
    oha: PathBuf,
    upstream: PathBuf,
    baseline: PathBuf,
    handwritten: PathBuf,
    artifacts: Artifacts,
    root: PathBuf,
}

impl Tools {
    /// Builds what the benchmark runs: the filter and compiler, the upstream, the minimal and
    /// hand-written filters, and oha.
    fn prepare(root: &Path) -> Result<Tools> {
        let envoy = ensure_envoy(root)?;
        let artifacts = build(root)?;
        step("Building the benchmark's upstream, and its minimal and hand-written filters (release)");
        run(cargo(root).args(["build", "--release", "-p", "bench-upstream"]))?;
        run(cargo(root).args(["build", "--release", "--target", WASM_TARGET]).args([
            "-p",
            "bench-baseline-filter",
            "-p",
            "bench-handwritten-filter",
        ]))?;
        let oha = ensure_oha(root)?;
        let target = target_dir(root);
        Ok(Tools {
            envoy,
            oha,
            upstream: target.join("release/bench-upstream"),
            baseline: target.join("wasm32-unknown-unknown/release/bench_baseline_filter.wasm"),
            handwritten: target.join("wasm32-unknown-unknown/release/bench_handwritten_filter.wasm"),
            artifacts,
            root: root.to_path_buf(),
        })
    }

    fn bootstrap(&self, workload: Workload, scenario: Scenario, upstreams: &Upstreams) -> Result<String> {
        // (b) and (d): the same Envoy, clusters and listener, with their module in the filter's place.
        let [a, b, c] = upstreams.addrs;
        let c = if workload == Workload::Checkout { c.to_string() } else { String::new() };
        let configuration = serde_json::json!({
            "workload": workload.name(),
            "a": a.to_string(),
            "b": b.to_string(),
            "c": c,
        })
        .to_string();
        self.bootstrap_of(workload.config(), scenario, upstreams).and_then(|yaml| match scenario {
            Scenario::Baseline => {
                replace_module(&yaml, &self.baseline, &configuration).context("putting the minimal filter in")
            }
            Scenario::Handwritten => replace_module(&yaml, &self.handwritten, &configuration)
                .context("putting the hand-written filter in"),
            _ => Ok(yaml),
        })
    }

    /// The bootstrap of `config`'s flows for a scenario, (a)'s plain proxy aside.
    fn bootstrap_of(&self, config: &str, scenario: Scenario, upstreams: &Upstreams) -> Result<String> {
        let [a, b, c] = upstreams.addrs;
        let (listen, admin) = (free_port()?, free_port()?);
        if scenario == Scenario::Proxy {
            let (listen, admin) = (format!("127.0.0.1:{listen}"), format!("127.0.0.1:{admin}"));
            return Ok(plain_proxy_bootstrap(&listen, &admin, &a.to_string()));
        }
        let output = capture(
            Command::new(&self.artifacts.compiler)
                .args(["envoy", config, "--wasm"])
                .arg(&self.artifacts.filter)
                .args(["--listen", &format!("127.0.0.1:{listen}"), "--admin", &format!("127.0.0.1:{admin}")])
                .env("BENCH_A_HOST", format!("http://{a}"))
                .env("BENCH_B_HOST", format!("http://{b}"))
                .env("BENCH_C_HOST", format!("http://{c}"))
                .current_dir(&self.root),
        )?;
        String::from_utf8(output.stdout).context("the bootstrap is not UTF-8")
    }

    /// One answer of `url` to the workload's request, which must be a 200.
    fn answer(&self, workload: Workload, url: &str) -> Result<String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .proxy(None)
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match workload.request() {
            (_, Some(body)) => agent.post(url).header("content-type", "application/json").send(body.as_str()),
            (_, None) => agent.get(url).call(),
        }
        .with_context(|| format!("asking {url}"))?;
        let (status, body) = (response.status().as_u16(), response.body_mut().read_to_string()?);
        if status != 200 {
            bail!("{url} answered {status}: {body}");
        }
        Ok(body)
    }

    /// (d) stands for the flow only if it answers what (c) answers, byte for byte.
    fn check_same_answers(&self, workload: Workload, semaphore: &str, handwritten: &str) -> Result<()> {
        let (c, d) = (self.answer(workload, semaphore)?, self.answer(workload, handwritten)?);
        if c != d {
            bail!(
                "the hand-written filter answers the {} otherwise than Semaphore:\n{d}\n{c}",
                workload.name()
            );
        }
        Ok(())
    }

    fn oha(&self, workload: Workload, url: &str, load: &[&str]) -> Result<Value> {
        let (method, body) = workload.request();
        let mut args = [load, &["-m", method]].concat();
        if let Some(body) = &body {
            args.extend(["-H", "content-type: application/json", "-d", body]);
        }
        self.oha_raw(url, &args)
    }

    /// oha's JSON summary of a run with these arguments; any answer but 200 fails it.
    fn oha_raw(&self, url: &str, args: &[&str]) -> Result<Value> {
        let mut command = Command::new(&self.oha);
        command.args(args).args(["--no-tui", "--output-format", "json"]);
        let output = capture(command.arg(url))?;
        let result: Value = serde_json::from_slice(&output.stdout).context("reading oha's JSON")?;
        let statuses = result.get("statusCodeDistribution").cloned().unwrap_or(Value::Null);
        if statuses.as_object().is_some_and(|s| s.keys().any(|status| status != "200")) {
            bail!("{url} answered other than 200: {statuses}");
        }
        Ok(result)
    }
}

fn ensure_oha(root: &Path) -> Result<PathBuf> {
    let tools = root.join(".tools");
    let oha = tools.join("bin/oha");
    let installed = capture(Command::new(&oha).arg("--version"))
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(OHA_VERSION))
        .unwrap_or(false);
    if !installed {
        step(&format!("Installing oha {OHA_VERSION} (the load generator) into .tools"));
        run(cargo(root)
            .args(["install", "oha", "--locked", "--version", OHA_VERSION, "--root"])
            .arg(&tools))?;
    }
    Ok(oha)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Three benchmark upstreams, stopped on drop.
struct Upstreams {
    children: Vec<Child>,
    addrs: [SocketAddr; 3],
}

impl Upstreams {
    fn start(binary: &Path, delays: [u64; 3], small: bool) -> Result<Upstreams> {
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for (name, delay) in ["a", "b", "c"].iter().zip(delays) {
            let mut child = Command::new(binary)
                .args(["--name", name, "--delay-ms", &delay.to_string()])
                .args(if small { &["--small"][..] } else { &[] })
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let mut line = String::new();
            if let Some(stdout) = child.stdout.take() {
                BufReader::new(stdout).read_line(&mut line)?;
            }
            children.push(child);
            addrs.push(
                line.trim().parse::<SocketAddr>().with_context(|| format!("upstream address {line:?}"))?,
            );
        }
        let addrs = [addrs[0], addrs[1], addrs[2]];
        Ok(Upstreams { children, addrs })
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An Envoy, on one worker thread unless measured with more, so the load generator has the
/// other core; stopped on drop.
struct EnvoyProcess {
    child: Child,
    listen: u16,
    admin: u16,
}

impl EnvoyProcess {
    fn start(binary: &Path, bootstrap: &str, workers: u32) -> Result<EnvoyProcess> {
        EnvoyProcess::launch(Command::new(binary), bootstrap, workers, Duration::from_secs(30))
    }

    /// `command` is Envoy's binary, or a tool that runs it (valgrind) with its binary last.
    fn launch(
        mut command: Command,
        bootstrap: &str,
        workers: u32,
        startup: Duration,
    ) -> Result<EnvoyProcess> {
        let file = std::env::temp_dir().join(format!("semaphore-bench-{}.yaml", std::process::id()));
        std::fs::write(&file, bootstrap)?;
        let value: Value = serde_norway::from_str(bootstrap)?;
        let port = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64).map(|p| p as u16);
        let listen = port("/static_resources/listeners/0/address/socket_address/port_value")
            .context("no listener port")?;
        let admin = port("/admin/address/socket_address/port_value").context("no admin port")?;
        let child = command
            .arg("-c")
            .arg(&file)
            .args(["--disable-hot-restart", "--concurrency", &workers.to_string(), "-l", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", describe(&command)))?;
        let process = EnvoyProcess { child, listen, admin };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .proxy(None)
            .build()
            .into();
        let deadline = Instant::now() + startup;
        while Instant::now() < deadline {
            let live = agent
                .get(format!("http://127.0.0.1:{admin}/ready"))
                .call()
                .and_then(|mut r| r.body_mut().read_to_string())
                .is_ok_and(|body| body.trim() == "LIVE");
            if live {
                return Ok(process);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("Envoy did not become ready")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, workload: Workload, scenario: Scenario) -> String {
        let path = if scenario == Scenario::Proxy { "/a/order-1" } else { workload.path() };
        format!("http://127.0.0.1:{}{path}", self.listen)
    }

    /// What Envoy's allocator (tcmalloc) holds, from the admin's `/memory`: `(allocated, heap)`
    /// in KiB, the bytes in use and all it took from the system, freed bytes it keeps included.
    fn allocator_kb(&self) -> (u64, u64) {
        let memory = ureq::get(format!("http://127.0.0.1:{}/memory", self.admin))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .unwrap_or(Value::Null);
        let kb = |key: &str| {
            memory.get(key).and_then(Value::as_str).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024
        };
        (kb("allocated"), kb("heap_size"))
    }

    /// Resident memory of the Envoy process, from /proc.
    fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file_kb(path: &Path) -> Result<f64> {
    Ok(std::fs::metadata(path).with_context(|| path.display().to_string())?.len() as f64 / 1024.0)
}

/// `(benchmark, median)` from criterion's output lines `name  time: [low median high]`.
fn criterion(root: &Path, package: &str, bench: &str) -> Result<Vec<(String, String)>> {
    let output = capture(cargo(root).args(["bench", "-p", package, "--bench", bench]))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut results = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.split("time:").nth(1) {
            let before = trimmed.split("time:").next().unwrap_or("").trim();
            if !before.is_empty() {
                name = before.to_string();
            }
            let values: Vec<&str> = rest.trim().trim_matches(['[', ']']).split_whitespace().collect();
            if let (Some(value), Some(unit)) = (values.get(2), values.get(3)) {
                results.push((name.clone(), format!("{value} {unit}")));
            }
        } else if !trimmed.is_empty() && !trimmed.starts_with("Benchmarking") && !trimmed.contains(':') {
            name = trimmed.to_string();
        }
    }
    Ok(results)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {memory}")
}

struct Run {
    workload: Workload,
    scenario: Scenario,
    /// Requests per second of each round of the closed loop.
    throughputs: Vec<f64>,
    /// The open loop of each round.
    opens: Vec<Value>,
    /// Before the first request: the module compiled, the plan loaded, no request's memory.
    idle_rss_kb: u64,
    /// tcmalloc's `(allocated, heap)` before the first request.
    idle_allocator_kb: (u64, u64),
    rss_kb: u64,
}

#[derive(Default)]
struct Report {
    runs: Vec<Run>,
    delayed: Vec<(Scenario, Vec<Value>)>,
    two_workers_rss_kb: Vec<(Scenario, u64)>,
    wasm_kb: f64,
    baseline_kb: f64,
    handwritten_kb: f64,
    plans: Vec<(String, u64)>,
    criterion: Vec<(String, String)>,
    profile: Option<crate::profile::Profile>,
    instructions: Vec<(Workload, Vec<(Scenario, instructions::Count)>)>,
    /// Each front door's throughputs, round by round.
    endpoints: Vec<(Front, Vec<f64>)>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl Run {
    fn throughput(&self) -> f64 {
        median(&self.throughputs)
    }

    /// The median over the rounds of a latency percentile, in milliseconds.
    fn percentile(&self, p: &str) -> f64 {
        median(&self.opens.iter().map(|open| percentile(open, p)).collect::<Vec<_>>())
    }
}

/// Per round, (c)'s throughput over (b)'s: their median, and the lowest and highest.
fn round_ratios(b: &Run, c: &Run) -> (f64, f64, f64) {
    let ratios: Vec<f64> = c.throughputs.iter().zip(&b.throughputs).map(|(c, b)| c / b).collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&ratios), low, high)
}

fn throughput(result: &Value) -> f64 {
    result.pointer("/summary/requestsPerSec").and_then(Value::as_f64).unwrap_or(0.0)
}

/// A latency percentile in milliseconds.
fn percentile(result: &Value, p: &str) -> f64 {
    result.pointer(&format!("/latencyPercentiles/{p}")).and_then(Value::as_f64).unwrap_or(f64::NAN) * 1000.0
}

impl Report {
    fn run(&self, workload: Workload, scenario: Scenario) -> Option<&Run> {
        self.runs.iter().find(|r| r.workload == workload && r.scenario == scenario)
    }

    fn instructions_of(&self, workload: Workload, scenario: Scenario) -> Option<instructions::Count> {
        let (_, counts) = self.instructions.iter().find(|(w, _)| *w == workload)?;
        counts.iter().find(|(s, _)| *s == scenario).map(|(_, count)| *count)
    }

    fn two_workers_rss_mib(&self, scenario: Scenario) -> Option<f64> {
        self.two_workers_rss_kb.iter().find(|(s, _)| *s == scenario).map(|(_, kb)| *kb as f64 / 1024.0)
    }

    fn markdown(&self, machine: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Written by `cargo xtask bench` on {machine}. Each Envoy runs one worker thread (`--concurrency 1`) \
             unless said otherwise; oha, on the same machine, sends the load. Shared machines are noisy: \
             compare the ratios, which are measured in the same run. Throughput: closed loop, {CONNECTIONS} \
             connections, the median of {ROUNDS} runs of {ROUND_SECONDS} s per scenario, taken in turns with the \
             Envoys side by side; the ratio is the median of the rounds' ratios. Latency: open loop at {RATE} \
             requests/s, {ROUND_SECONDS} s after each round's closed loop, the median of the rounds; the \
             differences are the median of the rounds' differences.\n"
        );
        for workload in Workload::ALL {
            self.write_workload(workload, &mut out);
        }
        self.write_instructions(&mut out);
        self.write_endpoints(&mut out);
        self.write_memory(&mut out);
        self.write_latency(&mut out);
        self.write_gap(&mut out);
        self.write_static(&mut out);
        let _ = writeln!(out, "\nCommand: `cargo xtask bench`.");
        out
    }

    /// A workload's throughput, latency and RSS per scenario, and how (c) compares with (b).
    fn write_workload(&self, workload: Workload, out: &mut String) {
        let _ = writeln!(out, "## The {} workload\n\n{}.\n", workload.name(), workload.description());
        let _ = writeln!(out, "| | throughput (req/s) | p50 (ms) | p90 (ms) | p99 (ms) | Envoy RSS idle (MiB) | Envoy RSS after (MiB) |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for run in self.runs.iter().filter(|run| run.workload == workload) {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
                run.scenario.label(workload),
                run.throughput(),
                run.percentile("p50"),
                run.percentile("p90"),
                run.percentile("p99"),
                run.idle_rss_kb as f64 / 1024.0,
                run.rss_kb as f64 / 1024.0
            );
        }
        let (Some(b), Some(c)) =
            (self.run(workload, Scenario::Baseline), self.run(workload, Scenario::Semaphore))
        else {
            return;
        };
        // Per round, (c)'s percentile less (b)'s, and the median of that.
        let p = |p: &str| {
            let gaps: Vec<f64> =
                c.opens.iter().zip(&b.opens).map(|(c, b)| percentile(c, p) - percentile(b, p)).collect();
            median(&gaps)
        };
        let (ratio, low, high) = round_ratios(b, c);
        let _ = writeln!(
            out,
            "\n(c) against (b): throughput {ratio:.2} (target at least 0.9; {low:.2} to {high:.2} over the rounds); \
             p50 {:+.2} ms (target at most 0.2), p99 {:+.2} ms (target at most 1); RSS {:+.1} MiB (target at most \
             5), of which {:+.1} MiB before the first request.\n",
            p("p50"),
            p("p99"),
            (c.rss_kb as f64 - b.rss_kb as f64) / 1024.0,
            (c.idle_rss_kb as f64 - b.idle_rss_kb as f64) / 1024.0
        );
        if let Some(d) = self.run(workload, Scenario::Handwritten) {
            let (ratio, low, high) = round_ratios(d, c);
            let _ = writeln!(
                out,
                "(c) against (d), which does the flow's own JSON work and no more: throughput {ratio:.2} ({low:.2} \
                 to {high:.2} over the rounds); (d) against (b): {:.2}. RSS {:+.1} MiB over (d).\n",
                round_ratios(b, d).0,
                (c.rss_kb as f64 - d.rss_kb as f64) / 1024.0
            );
        }
    }

    /// Instructions per request in each workload's Envoys, and (c)'s against (b)'s.
    fn write_instructions(&self, out: &mut String) {
        if self.instructions.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Instructions per request\n");
        let _ = writeln!(
            out,
            "What Envoy's threads execute per request in user space, counted by valgrind's callgrind over {} \
             requests (after {} uncounted), with two connections. Unlike throughput, it hardly moves with what \
             else the machine runs: the same build's generated code repeats to within a thousandth, Envoy's \
             part to within about 1% (how requests fall into event loop turns varies), so it tells two \
             builds apart on a noisy machine (`cargo xtask bench --instructions` counts only this). \"Generated\" is code in no file: mostly \
             what V8 generated, the compiled module and V8's builtins. The kernel's work, the same for every \
             scenario, is not counted, so the ratio is lower than the throughput's.\n",
            instructions::REQUESTS,
            instructions::WARMUP
        );
        for (workload, counts) in &self.instructions {
            let _ = writeln!(out, "| {} | total | Envoy | generated | libraries |", workload.name());
            let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
            let thousands = |n: f64| format!("{:.0} k", n / 1000.0);
            for (scenario, count) in counts {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    scenario.label(*workload),
                    thousands(count.total()),
                    thousands(count.envoy),
                    thousands(count.generated),
                    thousands(count.libraries)
                );
            }
            let count = |scenario| self.instructions_of(*workload, scenario);
            if let (Some(b), Some(c)) = (count(Scenario::Baseline), count(Scenario::Semaphore)) {
                let _ = writeln!(
                    out,
                    "\n(b) over (c): {:.2}. (c) executes {} more per request than (b): {} in generated code, {} in \
                     Envoy, {} in libraries.\n",
                    b.total() / c.total(),
                    thousands(c.total() - b.total()),
                    thousands(c.generated - b.generated),
                    thousands(c.envoy - b.envoy),
                    thousands(c.libraries - b.libraries)
                );
            }
            if let (Some(b), Some(c), Some(d)) =
                (count(Scenario::Baseline), count(Scenario::Semaphore), count(Scenario::Handwritten))
            {
                let _ = writeln!(
                    out,
                    "(d) over (c): {:.2}. The flow's own JSON work, written by hand, costs {} per request over \
                     (b); running it from the plan costs {} more.\n",
                    d.total() / c.total(),
                    thousands(d.total() - b.total()),
                    thousands(c.total() - d.total())
                );
            }
        }
    }

    /// Envoy's memory with two workers, after a short checkout load.
    fn write_memory(&self, out: &mut String) {
        let (Some(b), Some(c)) =
            (self.two_workers_rss_mib(Scenario::Baseline), self.two_workers_rss_mib(Scenario::Semaphore))
        else {
            return;
        };
        let _ = writeln!(
            out,
            "Envoy RSS with two workers (`--concurrency 2`, a VM of the filter each), after 3 s of the \
             checkout: (b) {b:.1} MiB, (c) {c:.1} MiB: (c) {:+.1} MiB (target at most 5).\n",
            c - b
        );
    }

    /// Where the checkout's time goes: what the gap to the minimal filter is made of, from the
    /// instruction counts, and inside the module, from the profile.
    fn write_gap(&self, out: &mut String) {
        let (Some(b), Some(c), Some(profile)) = (
            self.run(Workload::Checkout, Scenario::Baseline),
            self.run(Workload::Checkout, Scenario::Semaphore),
            &self.profile,
        ) else {
            return;
        };
        let _ = writeln!(out, "## Where the time goes\n");
        let (v8_b, v8_c) = profile.micros_per_request();
        let (calls_b, calls_c) = profile.hostcalls_per_request();
        let count = |scenario| self.instructions_of(Workload::Checkout, scenario);
        if let (Some(count_b), Some(count_c)) = (count(Scenario::Baseline), count(Scenario::Semaphore)) {
            let gap = count_c.total() - count_b.total();
            let generated = count_c.generated - count_b.generated;
            let _ = writeln!(
                out,
                "Of the {:.0} k instructions (c) executes per checkout more than (b), {:.0} k ({:.0}%) run in \
                 generated code: the module's own work. {:.0} k run in Envoy, behind the {calls_c:.0} hostcalls \
                 per request (the minimal filter makes {calls_b:.0}), and {:.0} k in system libraries. \
                 `cargo xtask profile` runs the same checkout through both modules in Node's V8, the engine \
                 Envoy runs them on, with a host that answers every callout at once: {v8_c:.1} µs per request \
                 for Semaphore, {v8_b:.1} µs for the minimal filter.\n",
                gap / 1000.0,
                generated / 1000.0,
                100.0 * generated / gap,
                (count_c.envoy - count_b.envoy) / 1000.0,
                (count_c.libraries - count_b.libraries) / 1000.0,
            );
            if let Some(count_d) = count(Scenario::Handwritten) {
                let own = count_d.total() - count_b.total();
                let _ = writeln!(
                    out,
                    "Part of that gap is the flow's own work, which any filter doing this job does: (d), the same \
                     flow written by hand with serde, executes {:.0} k more than (b), {:.0}% of the gap. The rest, \
                     {:.0} k, is what running it from a plan adds: {:.0} k in generated code, {:.0} k in Envoy \
                     (more hostcalls, and more copies into and out of the module).\n",
                    own / 1000.0,
                    100.0 * own / gap,
                    (count_c.total() - count_d.total()) / 1000.0,
                    (count_c.generated - count_d.generated) / 1000.0,
                    (count_c.envoy - count_d.envoy) / 1000.0,
                );
            }
        }
        let (allocated_b, heap_b) = b.idle_allocator_kb;
        let (allocated_c, heap_c) = c.idle_allocator_kb;
        let _ = writeln!(
            out,
            "Memory: Envoy's RSS gap is there before the first request ({:+.1} MiB idle, {:+.1} MiB after the \
             load), so it comes with loading the module, not with requests. Envoy's allocator holds {:+.1} MiB \
             more live ({:.1} against {:.1} MiB): the module's code and V8's data about it. It has taken \
             {:+.1} MiB more from the system ({:.1} against {:.1} MiB), and keeps what it freed: V8 compiles \
             every function with TurboFan when the module loads, several at a time, and the working memory \
             of the largest functions sets that peak (\"Small functions\" in `filter/src/lib.rs`).\n",
            (c.idle_rss_kb as f64 - b.idle_rss_kb as f64) / 1024.0,
            (c.rss_kb as f64 - b.rss_kb as f64) / 1024.0,
            (allocated_c as f64 - allocated_b as f64) / 1024.0,
            allocated_c as f64 / 1024.0,
            allocated_b as f64 / 1024.0,
            (heap_c as f64 - heap_b as f64) / 1024.0,
            heap_c as f64 / 1024.0,
            heap_b as f64 / 1024.0,
        );
        out.push_str(&profile.markdown(15));
        let _ = writeln!(out);
    }

    /// What the filter adds to a flow's critical path.
    fn write_latency(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "Latency of the checkout over the critical path (upstream delays {}, {} and {} ms; critical path \
             {CRITICAL_PATH_MS} ms), open loop at {RATE} requests/s, {ROUNDS} runs of {ROUND_SECONDS} s per Envoy \
             taken in turns with both side by side; medians of the runs, the p99's range in brackets:\n",
            DELAYS[0], DELAYS[1], DELAYS[2]
        );
        let _ = writeln!(out, "| | p50 (ms) | p99 (ms) | p50 − 30 ms | p99 − 30 ms |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
        let of = |results: &[Value], p: &str| results.iter().map(|r| percentile(r, p)).collect::<Vec<f64>>();
        for (scenario, results) in &self.delayed {
            let (p50, p99) = (median(&of(results, "p50")), of(results, "p99"));
            let (low, high) =
                p99.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
            let p99 = median(&p99);
            let _ = writeln!(
                out,
                "| {} | {p50:.2} | {p99:.2} ({low:.2} to {high:.2}) | {:.2} | {:.2} |",
                scenario.label(Workload::Checkout),
                p50 - CRITICAL_PATH_MS,
                p99 - CRITICAL_PATH_MS
            );
        }
        let find = |wanted: Scenario| self.delayed.iter().find(|(s, _)| *s == wanted).map(|(_, r)| r);
        if let (Some(b), Some(c)) = (find(Scenario::Baseline), find(Scenario::Semaphore)) {
            let difference = |p: &str| {
                let differences: Vec<f64> = of(c, p).iter().zip(of(b, p)).map(|(c, b)| c - b).collect();
                median(&differences)
            };
            let _ = writeln!(
                out,
                "\n(c) against (b), the median of the runs' differences: p50 {:+.2} ms, p99 {:+.2} ms.",
                difference("p50"),
                difference("p99")
            );
        }
        let _ = writeln!(out);
    }

    /// The profile flow's front doors against its HTTP endpoint.
    fn write_endpoints(&self, out: &mut String) {
        let Some((_, http)) = self.endpoints.iter().find(|(front, _)| *front == Front::Http) else { return };
        let _ = writeln!(
            out,
            "## Endpoints\n\nThe profile workload's flow through each of its endpoints, on one Semaphore Envoy \
             (`bench/flow/profile-endpoints.hcl`), in turns as above; the ratio is the median of the \
             rounds' ratios to the HTTP endpoint. A gRPC call makes one more hop inside Envoy, through an \
             internal listener (see envoy/README.md); a GraphQL query is parsed and checked against the \
             schema, and its flow's output projected on its selection.\n\n| | throughput (req/s) | against HTTP |\n| --- | ---: | ---: |"
        );
        for (front, throughputs) in &self.endpoints {
            let ratios: Vec<f64> = throughputs.iter().zip(http).map(|(t, h)| t / h).collect();
            let _ =
                writeln!(out, "| {} | {:.0} | {:.2} |", front.label(), median(throughputs), median(&ratios));
        }
        let _ = writeln!(out);
    }

    /// Sizes and criterion's medians.
    fn write_static(&self, out: &mut String) {
        let _ = writeln!(out, "Static figures:\n");
        let _ = writeln!(out, "| | |\n| --- | ---: |");
        let _ = writeln!(out, "| semaphore_filter.wasm | {:.1} KiB (target at most 512 KiB) |", self.wasm_kb);
        let _ = writeln!(out, "| minimal filter (b) | {:.1} KiB |", self.baseline_kb);
        let _ = writeln!(out, "| hand-written filter (d) | {:.1} KiB |", self.handwritten_kb);
        for (example, bytes) in &self.plans {
            let _ = writeln!(out, "| plan of examples/{example} | {bytes} bytes |");
        }
        for (name, median) in &self.criterion {
            let _ = writeln!(out, "| criterion `{name}` (median) | {median} |");
        }
    }
}
