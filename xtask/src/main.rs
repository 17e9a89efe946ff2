//! Development tasks, run as `cargo xtask <task>` from anywhere in the workspace.

mod bench;
mod build;
mod fuzz;
mod process;
mod setup;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Development tasks for Semaphore for Envoy")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the compiler and the wasm filter (release) and print the artifacts.
    Build,
    /// Install what is missing, build, and serve an example behind Envoy until Ctrl-C.
    Up {
        /// Which example under examples/ to serve.
        #[arg(value_enum, default_value_t)]
        example: up::Example,
    },
    /// Install what is missing, build, run the engine tests on wasm32, then every workspace test.
    Test,
    /// Install what the other tasks need: the wasm32 target, Envoy and openapi-spec-validator in
    /// .venv, the wasm test runner.
    Setup,
    /// Measure the filter against plain Envoy and a minimal filter; write BENCHMARKS.md.
    Bench,
    /// Fuzz the filter's plan decoding, input decoding and template evaluation (nightly, libFuzzer).
    Fuzz {
        /// How long each target runs.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = setup::workspace_root();
    let outcome = match cli.task {
        Task::Build => build::build(&root).map(drop),
        Task::Up { example } => up::up(&root, example),
        Task::Test => test(&root),
        Task::Setup => setup_all(&root),
        Task::Bench => bench::bench(&root),
        Task::Fuzz { seconds, target } => build::build(&root)
            .and_then(|artifacts| fuzz::fuzz(&root, &artifacts, seconds, target.as_deref())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn setup_all(root: &std::path::Path) -> anyhow::Result<()> {
    setup::ensure_wasm_target()?;
    let envoy = setup::ensure_envoy(root)?;
    let validator = setup::ensure_openapi_spec_validator(root)?;
    let runner = setup::ensure_wasm_bindgen_test_runner(root)?;
    println!("Envoy:                    {}", envoy.display());
    println!("OpenAPI validator:        {}", validator.display());
    println!("wasm-bindgen test runner: {}", runner.display());
    Ok(())
}

fn test(root: &std::path::Path) -> anyhow::Result<()> {
    setup::ensure_wasm_target()?;
    let envoy = setup::ensure_envoy(root)?;
    let validator = setup::ensure_openapi_spec_validator(root)?;
    let runner = setup::ensure_wasm_bindgen_test_runner(root)?;
    setup::ensure_debian_tools(&["openssl", "curl"])?;
    let artifacts = build::build(root)?;

    let mut counts = process::TestCounts::default();
    process::step("Engine tests on wasm32 (wasm-bindgen-test-runner on node)");
    let wasm = process::run_tests(
        process::cargo(root)
            .args(["test", "-p", "semaphore-filter", "--no-default-features"])
            .args(["--target", setup::WASM_TARGET])
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner),
        &mut counts,
    );
    let native = wasm.and_then(|()| {
        process::step("Workspace tests (native, end to end against Envoy)");
        process::run_tests(
            process::cargo(root)
                .args(["test", "--workspace"])
                .env("SEMAPHORE_WASM", &artifacts.filter)
                .env("ENVOY_BIN", &envoy)
                .env("OPENAPI_SPEC_VALIDATOR", &validator),
            &mut counts,
        )
    });
    // The last line: every test of the run, wasm32 and native together.
    println!("tests: {} passed, {} failed, {} skipped", counts.passed, counts.failed, counts.ignored);
    native
}
