//! `cargo xtask profile`: where the filter's time goes under V8, the engine Envoy runs it on,
//! without Envoy around it.
//!
//! `bench/profile/driver.mjs`, a minimal proxy-wasm host in Node, runs the benchmark's workload
//! (`bench/flow/checkout.hcl`, the checkout of `cargo xtask bench`) through the Semaphore filter
//! and through the minimal filter of `bench/baseline-filter`, answering every callout at once.
//! This prints the time per request of each, the hostcalls each request makes, the functions of
//! a CPU profile of the Semaphore filter by self time, and the filter crate's own functions by
//! total time; the profile stays in `target/profile/` for Chrome DevTools. Both modules are
//! built as shipped (optimized for size) but keep their function names, so the profile names
//! Rust functions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process::{capture, cargo, run, step};
use crate::setup::{ensure_wasm_target, target_dir, WASM_TARGET};

const REQUESTS: u32 = 20_000;
/// Runs of the driver per filter.
const TURNS: usize = 3;
const WARMUP: u32 = 2_000;
/// How many functions the summary lists.
const TOP: usize = 25;
/// The flow's three services and the clusters they are compiled to; the driver answers each
/// cluster's calls as that upstream (its `UPSTREAMS`).
const UPSTREAMS: [(&str, &str, &str); 3] = [
    ("BENCH_A_HOST", "a", "127.0.0.1:1"),
    ("BENCH_B_HOST", "b", "127.0.0.1:2"),
    ("BENCH_C_HOST", "c", "127.0.0.1:3"),
];

pub fn profile(root: &Path) -> Result<()> {
    let profile = measure(root)?;
    println!();
    print_times(&profile.semaphore, &profile.baseline);
    print_hostcalls(&profile.semaphore, &profile.baseline);
    print_functions(&profile.functions);
    print_phases(&profile.phases, &profile.functions);
    let shown = profile.cpuprofile.strip_prefix(root).unwrap_or(&profile.cpuprofile);
    println!("\nProfile: {} (Chrome DevTools, Performance, Load profile)", shown.display());
    Ok(())
}

/// Both filters' runs in the driver, and the CPU profile of the Semaphore filter's.
pub struct Profile {
    semaphore: Outcome,
    baseline: Outcome,
    functions: Vec<FunctionTime>,
    /// The profile's time by what the request was doing, in `PHASES` order, then the rest.
    phases: Vec<(&'static str, f64)>,
    cpuprofile: PathBuf,
}

pub fn measure(root: &Path) -> Result<Profile> {
    let node = ensure_node()?;
    let modules = build(root)?;
    let dir = target_dir(root).join("profile");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    step("Compiling the benchmark's flow");
    let plan = compile_plan(root, &modules.compiler, &dir)?;
    let baseline_config = dir.join("baseline-config.json");
    let clusters: serde_json::Map<String, Value> =
        UPSTREAMS.iter().map(|(_, name, cluster)| (name.to_string(), Value::from(*cluster))).collect();
    std::fs::write(&baseline_config, Value::Object(clusters).to_string())?;

    let cpuprofile = dir.join("semaphore.cpuprofile");
    let semaphore_drive = Drive { wasm: &modules.semaphore, config: &plan, expect: "checkout" };
    let baseline_drive = Drive { wasm: &modules.baseline, config: &baseline_config, expect: "concatenation" };
    // Taken in turns, and each filter's median run kept: a slow spell of a shared machine falls
    // on both.
    let (mut semaphore_runs, mut baseline_runs) = (Vec::new(), Vec::new());
    for turn in 1..=TURNS {
        step(&format!("Running the Semaphore filter in Node (V8), turn {turn} of {TURNS}"));
        let profile = (turn == 1).then_some(cpuprofile.as_path());
        semaphore_runs.push(semaphore_drive.run(&node, root, &dir.join("semaphore.json"), profile)?);
        step(&format!("Running the minimal filter in Node (V8), turn {turn} of {TURNS}"));
        baseline_runs.push(baseline_drive.run(&node, root, &dir.join("baseline.json"), None)?);
    }
    let (semaphore, baseline) = (Outcome::median(semaphore_runs), Outcome::median(baseline_runs));
    let recorded = read_json(&cpuprofile)?;
    let functions = function_times(&recorded)?;
    let phases = phase_times(&recorded)?;
    Ok(Profile { semaphore, baseline, functions, phases, cpuprofile })
}

impl Profile {
    /// Each filter's time per request in V8, without Envoy around it.
    pub fn micros_per_request(&self) -> (f64, f64) {
        (self.baseline.micros_per_request, self.semaphore.micros_per_request)
    }

    /// Hostcalls per request of the minimal filter and of the Semaphore filter.
    pub fn hostcalls_per_request(&self) -> (f64, f64) {
        (self.baseline.hostcalls.values().sum(), self.semaphore.hostcalls.values().sum())
    }

    /// The BENCHMARKS.md section: time per request, hostcalls, and the profile's top entries
    /// per request.
    pub fn markdown(&self, rows: usize) -> String {
        let mut out = String::new();
        let (semaphore, baseline) = (&self.semaphore, &self.baseline);
        let _ = writeln!(out, "| | µs per request in V8 | hostcalls per request |\n| --- | ---: | ---: |");
        for (label, outcome) in [("(b) minimal filter", baseline), ("(c) Semaphore", semaphore)] {
            let hostcalls: f64 = outcome.hostcalls.values().sum();
            let _ = writeln!(out, "| {label} | {:.1} | {hostcalls:.0} |", outcome.micros_per_request);
        }
        let total: f64 = self.functions.iter().map(|f| f.self_micros).sum();
        // Per request: the profile's share of a function times the filter's time per request.
        let per_request =
            |micros: f64| if total > 0.0 { micros / total * semaphore.micros_per_request } else { 0.0 };
        let percent = |micros: f64| if total > 0.0 { 100.0 * micros / total } else { 0.0 };
        let _ = writeln!(
            out,
            "\nWhat the Semaphore filter's time per request goes to: each sample in the module counts for the \
             outermost of these steps on its stack, so that a step's own allocations, and the freeing of its \
             temporaries, count for it; the host's side of the hostcalls, and V8's own work, count apart.\n\n| µs | % | step |\n| ---: | ---: | --- |"
        );
        for (phase, micros) in &self.phases {
            let _ = writeln!(out, "| {:.1} | {:.1} | {phase} |", per_request(*micros), percent(*micros));
        }
        let allocator = allocator_micros(&self.functions);
        let _ = writeln!(
            out,
            "\nAcross these steps, {:.1} µs per request ({:.1}%) run in the allocator itself (its free \
             lists, dlmalloc, and the glue around them): the cost of building and freeing value trees.",
            per_request(allocator),
            percent(allocator)
        );
        let _ = writeln!(
            out,
            "\nThe Semaphore filter's own functions by total time (self and callees), per request:\n\n\
             | µs | % | function |\n| ---: | ---: | --- |"
        );
        let mut own: Vec<&FunctionTime> =
            self.functions.iter().filter(|f| f.name.contains("semaphore_filter::")).collect();
        own.sort_by(|a, b| b.total_micros.total_cmp(&a.total_micros));
        for function in own.iter().take(rows) {
            let (micros, share) = (per_request(function.total_micros), percent(function.total_micros));
            let _ = writeln!(out, "| {micros:.1} | {share:.1} | `{}` |", shortened(&function.name, 110));
        }
        let _ = writeln!(out, "\nFunctions by self time, per request:\n\n| µs | % | where | function |\n| ---: | ---: | --- | --- |");
        for function in self.functions.iter().take(rows) {
            let (micros, share) = (per_request(function.self_micros), percent(function.self_micros));
            let name = shortened(&function.name, 110);
            let _ = writeln!(out, "| {micros:.1} | {share:.1} | {} | `{name}` |", function.kind.label());
        }
        let _ = writeln!(
            out,
            "\nHostcalls per request:\n\n| | (c) Semaphore | (b) minimal |\n| --- | ---: | ---: |"
        );
        let count = |counts: &BTreeMap<String, f64>, name: &str| counts.get(name).copied().unwrap_or(0.0);
        let mut names: Vec<&String> = semaphore.hostcalls.keys().chain(baseline.hostcalls.keys()).collect();
        names.sort_by(|a, b| {
            count(&semaphore.hostcalls, b).total_cmp(&count(&semaphore.hostcalls, a)).then(a.cmp(b))
        });
        names.dedup();
        for name in names {
            let (c, b) = (count(&semaphore.hostcalls, name), count(&baseline.hostcalls, name));
            let _ = writeln!(out, "| `{name}` | {c:.0} | {b:.0} |");
        }
        out
    }
}

/// Node 20 or later: the driver uses `node:inspector/promises`.
fn ensure_node() -> Result<PathBuf> {
    let output = capture(Command::new("node").arg("--version"))
        .context("`cargo xtask profile` runs the filter in Node: install Node 20 or later")?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let major: u32 = version.trim_start_matches('v').split('.').next().unwrap_or("").parse().unwrap_or(0);
    if major < 20 {
        bail!("Node {version} is too old for the profile driver: install Node 20 or later");
    }
    Ok(PathBuf::from("node"))
}

struct Modules {
    compiler: PathBuf,
    semaphore: PathBuf,
    baseline: PathBuf,
}

fn build(root: &Path) -> Result<Modules> {
    ensure_wasm_target()?;
    step("Building the compiler (release)");
    run(cargo(root).args(["build", "--release", "-p", "semaphore-compiler"]))?;
    // Not `cargo xtask build`'s module: that one has its names stripped (and wasm-opt drops the
    // rest), and a profile of function indexes says nothing.
    step("Building both filters (wasm32, profile `profiling`: as shipped, function names kept)");
    run(cargo(root).args(["build", "--profile", "profiling", "--target", WASM_TARGET]).args([
        "-p",
        "semaphore-filter",
        "-p",
        "bench-baseline-filter",
    ]))?;
    let target = target_dir(root);
    let wasm = target.join(WASM_TARGET).join("profiling");
    Ok(Modules {
        compiler: target.join("release/semaphore"),
        semaphore: wasm.join("semaphore_filter.wasm"),
        baseline: wasm.join("bench_baseline_filter.wasm"),
    })
}

fn compile_plan(root: &Path, compiler: &Path, dir: &Path) -> Result<PathBuf> {
    let plan = dir.join("bench.plan.bin");
    let mut compile = Command::new(compiler);
    compile.args(["compile", "bench/flow/checkout.hcl", "-o"]).arg(&plan).current_dir(root);
    for (variable, _, cluster) in UPSTREAMS {
        compile.env(variable, format!("http://{cluster}"));
    }
    capture(&mut compile)?;
    Ok(plan)
}

/// One run of the driver: a module, its plugin configuration, and the reply it must give.
struct Drive<'a> {
    wasm: &'a Path,
    config: &'a Path,
    /// `checkout` (the flow's output) or `concatenation` (the minimal filter's three bodies).
    expect: &'a str,
}

impl Drive<'_> {
    fn run(&self, node: &Path, root: &Path, result: &Path, cpuprofile: Option<&Path>) -> Result<Outcome> {
        let mut command = Command::new(node);
        command
            .arg(root.join("bench/profile/driver.mjs"))
            .arg("--wasm")
            .arg(self.wasm)
            .arg("--config")
            .arg(self.config)
            .args(["--expect", self.expect])
            .args(["--requests", &REQUESTS.to_string(), "--warmup", &WARMUP.to_string()])
            .arg("--result")
            .arg(result);
        if let Some(cpuprofile) = cpuprofile {
            command.arg("--profile").arg(cpuprofile);
        }
        run(&mut command)?;
        Outcome::read(&read_json(result)?)
    }
}

/// What the driver measured of one module.
struct Outcome {
    node: String,
    /// The median of the driver's rounds.
    micros_per_request: f64,
    /// Every round's, fastest first.
    micros_by_round: Vec<f64>,
    /// Calls per request, by import name.
    hostcalls: BTreeMap<String, f64>,
    /// Calls into the module per request, by export name.
    callbacks: BTreeMap<String, f64>,
}

impl Outcome {
    /// The run of median time per request.
    fn median(mut runs: Vec<Outcome>) -> Outcome {
        runs.sort_by(|a, b| a.micros_per_request.total_cmp(&b.micros_per_request));
        let middle = runs.len() / 2;
        runs.swap_remove(middle)
    }

    fn read(result: &Value) -> Result<Outcome> {
        let number = |key: &str| result.get(key).and_then(Value::as_f64).with_context(|| format!("no {key}"));
        let counts = |key: &str| -> BTreeMap<String, f64> {
            let counts = result.get(key).and_then(Value::as_object);
            counts.into_iter().flatten().map(|(name, n)| (name.clone(), n.as_f64().unwrap_or(0.0))).collect()
        };
        Ok(Outcome {
            node: result.get("node").and_then(Value::as_str).unwrap_or("").to_string(),
            micros_per_request: number("microsPerRequest")?,
            micros_by_round: result
                .get("microsPerRequestByRound")
                .and_then(Value::as_array)
                .map(|rounds| rounds.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default(),
            hostcalls: counts("hostcallsPerRequest"),
            callbacks: counts("callbacksPerRequest"),
        })
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn print_times(semaphore: &Outcome, baseline: &Outcome) {
    println!(
        "Node {}, {REQUESTS} requests after {WARMUP} of warm-up, every callout answered at once, \
         timed in rounds:",
        semaphore.node
    );
    println!("  {:<18} {:>10} {:>12}  rounds (µs/request)", "", "µs/request", "requests/s");
    for (label, outcome) in [("Semaphore filter", semaphore), ("minimal filter", baseline)] {
        let rounds: Vec<String> = outcome.micros_by_round.iter().map(|m| format!("{m:.1}")).collect();
        println!(
            "  {label:<18} {:>10.1} {:>12.0}  {}",
            outcome.micros_per_request,
            1e6 / outcome.micros_per_request,
            rounds.join(" ")
        );
    }
    println!("  ratio: {:.1}x (medians)", semaphore.micros_per_request / baseline.micros_per_request);
}

fn print_hostcalls(semaphore: &Outcome, baseline: &Outcome) {
    print_counts("Hostcalls per request", &semaphore.hostcalls, &baseline.hostcalls);
    print_counts("Calls into the module per request", &semaphore.callbacks, &baseline.callbacks);
}

/// Counts per request of both filters, the Semaphore filter's most frequent first.
fn print_counts(title: &str, semaphore: &BTreeMap<String, f64>, baseline: &BTreeMap<String, f64>) {
    let count = |counts: &BTreeMap<String, f64>, name: &str| counts.get(name).copied().unwrap_or(0.0);
    let names: std::collections::BTreeSet<&String> = semaphore.keys().chain(baseline.keys()).collect();
    let mut names: Vec<&String> = names.into_iter().collect();
    names.sort_by(|a, b| count(semaphore, b).total_cmp(&count(semaphore, a)));
    println!("\n{title}:");
    println!("  {:<38} {:>9} {:>9}", "", "Semaphore", "minimal");
    for name in names {
        println!("  {name:<38} {:>9.2} {:>9.2}", count(semaphore, name), count(baseline, name));
    }
    let (a, b) = (semaphore.values().sum::<f64>(), baseline.values().sum::<f64>());
    println!("  {:<38} {a:>9.2} {b:>9.2}", "total");
}

/// Where a profiled function runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The module, compiled by V8.
    Wasm,
    /// The driver and what it calls in Node: in Envoy, the proxy-wasm host's C++ instead.
    Host,
    /// V8 itself: garbage collection, `(program)`.
    V8,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Wasm => "wasm",
            Kind::Host => "host",
            Kind::V8 => "V8",
        }
    }
}

/// A function's time over the whole profile: on top of the stack (self), and anywhere on it
/// (total: self and callees). Calls of a function from different places are one function.
struct FunctionTime {
    name: String,
    kind: Kind,
    self_micros: f64,
    total_micros: f64,
}

/// A profile's call tree: each node's frame, and each node's parent.
type Stacks = (BTreeMap<u64, (String, Kind)>, BTreeMap<u64, u64>);

fn stacks(profile: &Value) -> Result<Stacks> {
    let nodes = profile.get("nodes").and_then(Value::as_array).context("no nodes")?;
    let mut frames: BTreeMap<u64, (String, Kind)> = BTreeMap::new();
    let mut parents: BTreeMap<u64, u64> = BTreeMap::new();
    for node in nodes {
        let (Some(id), Some(frame)) = (node.get("id").and_then(Value::as_u64), node.get("callFrame")) else {
            continue;
        };
        frames.insert(id, describe_frame(frame));
        for child in node.get("children").and_then(Value::as_array).into_iter().flatten() {
            parents.extend(child.as_u64().map(|child| (child, id)));
        }
    }
    Ok((frames, parents))
}

/// Each function's times in a `.cpuprofile`, most self time first.
fn function_times(profile: &Value) -> Result<Vec<FunctionTime>> {
    let (frames, parents) = stacks(profile)?;
    let mut by_function: BTreeMap<&(String, Kind), (f64, f64)> = BTreeMap::new();
    for (node, micros) in node_times(profile)? {
        let Some(frame) = frames.get(&node) else { continue };
        by_function.entry(frame).or_default().0 += micros;
        // A recursive function is on the stack more than once, and counted once.
        let mut on_stack = std::collections::BTreeSet::new();
        let mut at = Some(node);
        while let Some(id) = at {
            if let Some(frame) = frames.get(&id).filter(|frame| on_stack.insert(*frame)) {
                by_function.entry(frame).or_default().1 += micros;
            }
            at = parents.get(&id).copied();
        }
    }
    let mut functions: Vec<FunctionTime> = by_function
        .into_iter()
        .map(|((name, kind), (self_micros, total_micros))| FunctionTime {
            name: name.clone(),
            kind: *kind,
            self_micros,
            total_micros,
        })
        .collect();
    functions.sort_by(|a, b| b.self_micros.total_cmp(&a.self_micros));
    Ok(functions)
}

/// The steps of a request, each named by the functions whose calls, callees included, make it
/// up (by the start of their demangled names).
const PHASES: &[(&str, &[&str])] = &[
    (
        "decoding bodies (the input, the calls' answers) into values",
        &["semaphore_filter::engine::codec::decode_", "semaphore_filter::engine::endpoint::decode_input"],
    ),
    ("building messages from templates", &["semaphore_filter::engine::eval::Env::build_"]),
    ("encoding values into bodies (the calls, the answer)", &["semaphore_filter::engine::codec::encode_"]),
    (
        "freeing a finished request's values",
        &[
            "core::ptr::drop_in_place<semaphore_filter::proxy::Stage>",
            "core::ptr::drop_in_place<semaphore_filter::engine::execution::Execution>",
        ],
    ),
    ("dispatching callouts (the module's side)", &["semaphore_filter::proxy::callouts::dispatch"]),
    (
        "reading requests and answers out of the host (the module's side)",
        &["proxy_wasm::hostcalls::get_", "semaphore_filter::proxy::abi::"],
    ),
    ("recording metrics", &["semaphore_filter::proxy::metrics::"]),
];

/// The module's time by step of a request (`PHASES`): a sample of the module counts for the
/// outermost step on its stack, or else as the rest of the module's work; a sample of the host
/// or of V8 counts as theirs, whatever step called them.
fn phase_times(profile: &Value) -> Result<Vec<(&'static str, f64)>> {
    let (frames, parents) = stacks(profile)?;
    let rest = [
        "the rest of the module's work",
        "the host's side of every hostcall (the driver here; in Envoy, its C++)",
        "V8 itself",
    ];
    let mut times = vec![0.0; PHASES.len() + rest.len()];
    for (node, micros) in node_times(profile)? {
        let kind = frames.get(&node).map(|(_, kind)| *kind);
        let mut phase = None;
        let mut at = Some(node);
        while let Some(id) = at {
            let name = frames.get(&id).map(|(name, _)| name.trim_start_matches('<')).unwrap_or("");
            if let Some(index) =
                PHASES.iter().position(|(_, starts)| starts.iter().any(|s| name.starts_with(s)))
            {
                phase = Some(index);
            }
            at = parents.get(&id).copied();
        }
        let index = match kind {
            Some(Kind::Wasm) => phase.unwrap_or(PHASES.len()),
            Some(Kind::Host) => PHASES.len() + 1,
            _ => PHASES.len() + 2,
        };
        if let Some(time) = times.get_mut(index) {
            *time += micros;
        }
    }
    let names = PHASES.iter().map(|(name, _)| *name).chain(rest);
    Ok(names.zip(times).collect())
}

/// The self time of the allocator's functions: the module's free lists (`filter/src/alloc.rs`),
/// dlmalloc behind them, and the standard library's glue (`__rust_alloc`, `__rustc::__rdl_*`,
/// `RawVec`'s).
fn allocator_micros(functions: &[FunctionTime]) -> f64 {
    let allocator = |name: &str| {
        name.contains("dlmalloc")
            || name.contains("semaphore_filter::alloc::")
            || name.starts_with("alloc::raw_vec::")
            || name.starts_with("__rust")
            || name.contains("__rdl_")
    };
    functions.iter().filter(|f| f.kind == Kind::Wasm && allocator(&f.name)).map(|f| f.self_micros).sum()
}

fn print_phases(phases: &[(&str, f64)], functions: &[FunctionTime]) {
    let total: f64 = phases.iter().map(|(_, micros)| micros).sum();
    let percent = |micros: f64| if total > 0.0 { 100.0 * micros / total } else { 0.0 };
    println!("\nBy step of a request (the module's samples by the outermost step on their stack):\n");
    println!("  {:>9} {:>7}  step", "ms", "%");
    for (phase, micros) in phases {
        println!("  {:>9.1} {:>6.1}%  {phase}", micros / 1000.0, percent(*micros));
    }
    let allocator = allocator_micros(functions);
    println!("  of all of it, in the allocator: {:.1} ms ({:.1}%)", allocator / 1000.0, percent(allocator));
}

/// The time of the samples of each profile node: a sample lasts until the next one (the last
/// until the profile's end), as DevTools counts it.
fn node_times(profile: &Value) -> Result<BTreeMap<u64, f64>> {
    let array = |key: &str| profile.get(key).and_then(Value::as_array).with_context(|| format!("no {key}"));
    let mut at = profile.get("startTime").and_then(Value::as_f64).unwrap_or(0.0);
    let timestamps: Vec<f64> = array("timeDeltas")?
        .iter()
        .map(|delta| {
            at += delta.as_f64().unwrap_or(0.0);
            at
        })
        .collect();
    let end = profile.get("endTime").and_then(Value::as_f64).unwrap_or(at);
    let mut times = BTreeMap::new();
    for (index, node) in array("samples")?.iter().enumerate() {
        let (Some(node), Some(start)) = (node.as_u64(), timestamps.get(index)) else { continue };
        let next = timestamps.get(index + 1).copied().unwrap_or(end);
        *times.entry(node).or_default() += (next - start).max(0.0);
    }
    Ok(times)
}

/// A frame's readable name and where it runs. V8 names a module's functions after its name
/// section, which holds Rust's mangled symbols.
fn describe_frame(frame: &Value) -> (String, Kind) {
    let field = |key: &str| frame.get(key).and_then(Value::as_str).unwrap_or("");
    let (name, url) = (field("functionName"), field("url"));
    if url.starts_with("wasm://") {
        return (format!("{:#}", rustc_demangle::demangle(name)), Kind::Wasm);
    }
    if name.starts_with('(') {
        return (name.to_string(), Kind::V8);
    }
    let name = if name.is_empty() { "(anonymous)" } else { name };
    let file = url.rsplit('/').next().unwrap_or(url);
    if file.is_empty() {
        (name.to_string(), Kind::Host)
    } else {
        (format!("{name} ({file})"), Kind::Host)
    }
}

fn print_functions(functions: &[FunctionTime]) {
    let total: f64 = functions.iter().map(|f| f.self_micros).sum();
    let percent = |micros: f64| if total > 0.0 { 100.0 * micros / total } else { 0.0 };
    let line =
        |micros: f64, what: &str| println!("  {:>9.1} {:>6.1}%  {what}", micros / 1000.0, percent(micros));
    println!("\nCPU profile of the Semaphore filter's {REQUESTS} requests, by self time:");
    for kind in [Kind::Wasm, Kind::Host, Kind::V8] {
        let micros: f64 = functions.iter().filter(|f| f.kind == kind).map(|f| f.self_micros).sum();
        line(micros, kind.label());
    }
    println!("\n  {:>9} {:>7}  {:<5} function", "self ms", "self %", "where");
    for function in functions.iter().take(TOP) {
        let what = format!("{:<5} {}", function.kind.label(), shortened(&function.name, 120));
        line(function.self_micros, &what);
    }
    line(functions.iter().take(TOP).map(|f| f.self_micros).sum(), &format!("the {TOP} above"));
    line(total, &format!("total ({} functions)", functions.len()));

    // The functions of the filter crate, with what they call: which part of a request costs what.
    let mut own: Vec<&FunctionTime> = functions
        .iter()
        .filter(|f| f.name.starts_with("semaphore_filter::") || f.name.starts_with("<semaphore_filter::"))
        .collect();
    own.sort_by(|a, b| b.total_micros.total_cmp(&a.total_micros));
    println!("\nThe filter's own functions by total time (self and callees):");
    println!("\n  {:>9} {:>7}  function", "total ms", "total %");
    for function in own.iter().take(TOP) {
        line(function.total_micros, &shortened(&function.name, 126));
    }
}

fn shortened(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_string();
    }
    let kept: String = name.chars().take(width - 1).collect();
    format!("{kept}…")
}
