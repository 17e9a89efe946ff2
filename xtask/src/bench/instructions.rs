//! Instructions per request, counted by valgrind's callgrind in a real Envoy: a figure that,
//! unlike throughput, hardly moves with what else the machine runs (the same build's generated
//! code repeats to within a thousandth, Envoy's part to within about 1%), so that one change can
//! be told from another.
//!
//! Each scenario's Envoy runs under callgrind, which counts nothing until a warm-up is over; then
//! a fixed number of requests is sent and the counts are dumped. What Envoy's threads executed in
//! user space is then split by where the code lives: Envoy's binary, the code V8 generated (the
//! compiled module, and V8's builtins, which it copies next to that code), and system libraries.
//! The kernel's work (sockets, the same for every scenario) is not counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{EnvoyProcess, Scenario, Tools, Upstreams, Workload};
use crate::process::{capture, step};
use crate::setup::{ensure_debian_tools, target_dir};

/// Requests counted, after `WARMUP` uncounted ones; two connections, as under callgrind Envoy
/// serves about fifty a second.
pub(super) const REQUESTS: u32 = 1000;
pub(super) const WARMUP: u32 = 200;
/// Envoy under callgrind takes 30 to 60 s to compile the module and become ready.
const STARTUP: Duration = Duration::from_secs(300);

/// Instructions per request of one scenario, by where they ran.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Count {
    pub envoy: f64,
    pub generated: f64,
    pub libraries: f64,
}

impl Count {
    pub fn total(&self) -> f64 {
        self.envoy + self.generated + self.libraries
    }
}

/// Every scenario of `workload`, one after the other, over upstreams that answer at once.
pub(super) fn count(tools: &Tools, workload: Workload) -> Result<Vec<(Scenario, Count)>> {
    ensure_debian_tools(&["valgrind"])?;
    let upstreams = Upstreams::start(&tools.upstream, [0, 0, 0], workload.small_answers())?;
    let dir = target_dir(&tools.root).join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut counts = Vec::new();
    let mut semaphore_answer = None;
    for scenario in Scenario::ALL {
        step(&format!(
            "Counting instructions: {} of the {} workload, Envoy under callgrind",
            scenario.label(workload),
            workload.name()
        ));
        let out = dir.join(format!("callgrind.{}.{}", workload.name(), scenario.name()));
        // A dump of an earlier run must not be taken for this one's.
        for stale in glob::glob(&format!("{}*", out.display()))?.filter_map(Result::ok) {
            std::fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
        }
        let mut valgrind = Command::new("valgrind");
        valgrind
            .args(["--tool=callgrind", "--smc-check=all-non-file", "--instr-atstart=no"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&tools.envoy);
        let bootstrap = tools.bootstrap(workload, scenario, &upstreams)?;
        let envoy = EnvoyProcess::launch(valgrind, &bootstrap, 1, STARTUP)?;
        let url = envoy.url(workload, scenario);
        tools.oha(workload, &url, &["-n", &WARMUP.to_string(), "-c", "2"])?;
        // (d) stands for the flow only if it answers what (c) answers, byte for byte.
        match scenario {
            Scenario::Semaphore => semaphore_answer = Some(tools.answer(workload, &url)?),
            Scenario::Handwritten if semaphore_answer.as_ref() != Some(&tools.answer(workload, &url)?) => {
                bail!("the hand-written filter answers the {} otherwise than Semaphore", workload.name())
            }
            _ => {}
        }
        let pid = envoy.pid().to_string();
        callgrind_control(&["--instr=on", &pid])?;
        tools.oha(workload, &url, &["-n", &REQUESTS.to_string(), "-c", "2"])?;
        callgrind_control(&["--dump", &pid])?;
        let dump = wait_for_dump(&out)?;
        drop(envoy);
        counts.push((scenario, per_request(&self_cost_by_object(&dump)?, &tools.envoy)));
    }
    Ok(counts)
}

fn callgrind_control(args: &[&str]) -> Result<()> {
    capture(Command::new("callgrind_control").args(args)).map(drop)
}

/// callgrind writes a dump as `<out>.<n>`; complete once its `totals:` line is there.
fn wait_for_dump(out: &Path) -> Result<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let pattern = format!("{}.*", out.display());
    while Instant::now() < deadline {
        for path in glob::glob(&pattern)?.filter_map(Result::ok) {
            let complete = std::fs::read_to_string(&path).is_ok_and(|text| text.contains("\ntotals:"));
            if complete {
                return Ok(path);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("callgrind wrote no dump to {}", out.display())
}

fn per_request(by_object: &BTreeMap<String, u64>, envoy: &Path) -> Count {
    let mut count = Count::default();
    for (object, &cost) in by_object {
        let per_request = cost as f64 / f64::from(REQUESTS);
        // Code valgrind finds in no file is what V8 generated at run time.
        if object == "???" {
            count.generated += per_request;
        } else if Path::new(object) == envoy {
            count.envoy += per_request;
        } else {
            count.libraries += per_request;
        }
    }
    count
}

/// Instructions executed in each object file (self cost, calls not counted twice), from a
/// callgrind dump: `ob=` names the object the following costs belong to, names are compressed
/// as `(id) name` on first use and `(id)` after, and the line after a `calls=` line is the
/// call's inclusive cost, already counted in the callee.
fn self_cost_by_object(dump: &Path) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(dump).with_context(|| format!("reading {}", dump.display()))?;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut by_object: BTreeMap<String, u64> = BTreeMap::new();
    let mut object = String::from("???");
    let mut after_call = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ob=").or_else(|| line.strip_prefix("cob=")) {
            let name = match rest.split_once(") ") {
                Some((id, name)) => {
                    names.insert(id.to_string(), name.to_string());
                    name.to_string()
                }
                None => names.get(rest.trim_end_matches(')')).cloned().unwrap_or_else(|| rest.to_string()),
            };
            if line.starts_with("ob=") {
                object = name;
            }
        } else if line.starts_with("calls=") {
            after_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            if std::mem::take(&mut after_call) {
                continue;
            }
            let cost = line.split_whitespace().nth(1).and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
            *by_object.entry(object.clone()).or_default() += cost;
        }
    }
    if by_object.is_empty() {
        bail!("{} holds no costs", dump.display());
    }
    Ok(by_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_costs_are_summed_by_object_without_counting_calls_twice() {
        let dump = "# callgrind format\nevents: Ir\nob=(1) /usr/bin/envoy\nfl=(1) ???\nfn=(1) 0x10\n\
                    16 100\n+2 50\ncob=(2) ???\ncfn=(2) 0x20\ncalls=1 0\n0 7000\n* 5\nob=(2)\nfn=(2)\n\
                    0 7000\nob=(3) /lib/libc.so.6\nfn=(3) memcpy\n0 30\nob=(1)\nfn=(1)\n-1 20\n\
                    totals: 7205\n";
        let path = std::env::temp_dir().join(format!("callgrind-test-{}", std::process::id()));
        std::fs::write(&path, dump).unwrap();
        let by_object = self_cost_by_object(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let expected: BTreeMap<String, u64> =
            [("/usr/bin/envoy", 175), ("???", 7000), ("/lib/libc.so.6", 30)]
                .map(|(object, cost)| (object.to_string(), cost))
                .into_iter()
                .collect();
        assert_eq!(by_object, expected);
        let count = per_request(&by_object, Path::new("/usr/bin/envoy"));
        assert_eq!(count.envoy * f64::from(REQUESTS), 175.0);
        assert_eq!(count.generated * f64::from(REQUESTS), 7000.0);
        assert_eq!(count.libraries * f64::from(REQUESTS), 30.0);
    }
}
