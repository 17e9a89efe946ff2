//! `cargo xtask fuzz`: every fuzz target of the filter for a while, seeded with the plans of
//! the project's own configurations. libFuzzer needs a nightly toolchain; this installs it and
//! cargo-fuzz (into .tools) when missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::build::Artifacts;
use crate::process::{cargo, run, step};

pub const TARGETS: &[&str] = &["plan_decode", "input_decode", "template_eval", "graphql_request"];

/// The schema `graphql_request` runs documents against.
const GRAPHQL_FIXTURE: &str = "tests/fixtures/graphql/config.hcl";

/// Documents `graphql_request` starts from: each construct of the language once.
const GRAPHQL_SEEDS: &[&str] = &[
    r#"{"query":"{ user(id: \"7\") { id name visits tags role address { city } labels { key value } } }"}"#,
    r#"{"query":"query Q($id: String!) { a: user(id: $id) { ...F @include(if: true) } accounts { ping { _empty } } } fragment F on User { __typename previous { city } }","variables":{"id":"7"},"operationName":"Q"}"#,
    r#"{"query":"mutation { createUser(name: \"x\", role: ADMIN, address: {city: \"y\"}, tags: [\"a\"], visits: \"12\") { id position } }"}"#,
    r#"{"query":"{ __schema { types { name kind fields { name type { kind name ofType { name } } } } } __type(name: \"User\") { name } }"}"#,
    "{ user(id: \"7\") { name ... on User { id } } }",
];

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

    step("Seeding graphql_request with documents, and compiling the schema it runs them against");
    let graphql_plan = fuzz_dir.join("corpus/graphql.plan");
    run(Command::new(&artifacts.compiler)
        .arg("compile")
        .arg(root.join(GRAPHQL_FIXTURE))
        .arg("-o")
        .arg(&graphql_plan))?;
    let graphql_seeds = fuzz_dir.join("corpus/graphql_request");
    std::fs::create_dir_all(&graphql_seeds).context("creating the graphql_request corpus")?;
    for (index, seed) in GRAPHQL_SEEDS.iter().enumerate() {
        std::fs::write(graphql_seeds.join(format!("seed-{index}")), seed)
            .context("writing a GraphQL seed")?;
    }

    for target in TARGETS.iter().filter(|t| only.is_none_or(|o| o == **t)) {
        step(&format!("Fuzzing {target} for {seconds} s"));
        run(Command::new(&cargo_fuzz)
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .env("SEMAPHORE_FUZZ_GRAPHQL_PLAN", &graphql_plan)
            .args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=4096")
            .current_dir(&fuzz_dir))?;
    }
    Ok(())
}
