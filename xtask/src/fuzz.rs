//! `cargo xtask fuzz`: every fuzz target of the filter for a while, seeded with the plans of
//! the project's own configurations. libFuzzer needs a nightly toolchain; this installs it and
//! cargo-fuzz (into .tools) when missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::build::Artifacts;
use crate::process::{cargo, run, step};

pub const TARGETS: &[&str] = &["plan_decode", "input_decode", "template_eval"];

pub fn fuzz(root: &Path, artifacts: &Artifacts, seconds: u64, only: Option<&str>) -> Result<()> {
    step("Making sure a nightly toolchain is installed");
    run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    let tools = root.join(".tools");
    let cargo_fuzz = tools.join("bin/cargo-fuzz");
    if !cargo_fuzz.is_file() {
        step("Installing cargo-fuzz into .tools");
        run(cargo(root).args(["install", "cargo-fuzz", "--locked", "--root"]).arg(&tools))?;
    }

    let fuzz_dir = root.join("filter/fuzz");
    let seeds = fuzz_dir.join("corpus/plan_decode");
    std::fs::create_dir_all(&seeds).context("creating the plan_decode corpus")?;
    step("Seeding plan_decode with the plans of the project's configurations");
    let configs = glob::glob(&root.join("**/fixtures/**/*.hcl").to_string_lossy())
        .context("listing fixtures")?
        .chain(glob::glob(&root.join("examples/*/config.hcl").to_string_lossy()).context("listing examples")?)
        .filter_map(Result::ok);
    for (index, config) in configs.enumerate() {
        // Configurations made to fail compile to nothing; that is fine.
        let _ = Command::new(&artifacts.compiler)
            .arg("compile")
            .arg(&config)
            .arg("-o")
            .arg(seeds.join(format!("seed-{index}.bin")))
            .output();
    }

    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        step(&format!("Fuzzing {target} for {seconds} s"));
        run(Command::new(&cargo_fuzz)
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=4096")
            .current_dir(&fuzz_dir))?;
    }
    Ok(())
}
