//! Development tasks, run as `cargo xtask <task>` from anywhere in the workspace.

mod bench;
mod build;
mod fuzz;
mod package;
mod process;
mod profile;
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
        /// Swap in a new plan on every edit of the example, without restarting Envoy
        /// (`semaphore run --watch`).
        #[arg(long)]
        watch: bool,
    },
    /// Install what is missing, build, run the engine tests on wasm32, then every workspace test.
    Test,
    /// Build the filter and write it as an OCI image layout (one layer holding plugin.wasm), as
    /// Istio pulls modules; push it with `skopeo copy oci:<dir> docker://...`.
    Package {
        /// The image layout directory; target/oci/semaphore-filter by default.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Install what the other tasks need: the wasm32 target, Envoy and openapi-spec-validator in
    /// .venv, the wasm test runner.
    Setup,
    /// Measure the filter against plain Envoy and a minimal filter; write BENCHMARKS.md.
    Bench {
        /// Only count the instructions per request of each scenario (Envoy under callgrind), and
        /// print them: precise enough to compare two builds on a noisy machine.
        #[arg(long)]
        instructions: bool,
        /// Only compare the profile flow's endpoints (HTTP, gRPC, Connect), and print it.
        #[arg(long)]
        endpoints: bool,
    },
    /// Run the benchmark's workload through the filter and the minimal filter in Node (V8, as in
    /// Envoy): time per request, hostcalls per request, and the functions time goes to.
    Profile,
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
        Task::Up { example, watch } => up::up(&root, example, watch),
        Task::Test => test(&root),
        Task::Package { output } => build::build(&root).and_then(|artifacts| {
            let layout =
                output.unwrap_or_else(|| setup::target_dir(&root).join("oci").join(package::IMAGE_NAME));
            package::package(&artifacts.filter, &layout).map(drop)
        }),
        Task::Setup => setup_all(&root),
        Task::Bench { instructions, endpoints } => bench::bench(&root, instructions, endpoints),
        Task::Profile => profile::profile(&root),
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
    let graphql_python = setup::ensure_graphql_core(root)?;
    let runner = setup::ensure_wasm_bindgen_test_runner(root)?;
    println!("Envoy:                    {}", envoy.display());
    println!("OpenAPI validator:        {}", validator.display());
    println!("graphql-core's Python:    {}", graphql_python.display());
    println!("wasm-bindgen test runner: {}", runner.display());
    Ok(())
}

fn test(root: &std::path::Path) -> anyhow::Result<()> {
    setup::ensure_wasm_target()?;
    let envoy = setup::ensure_envoy(root)?;
    let validator = setup::ensure_openapi_spec_validator(root)?;
    let compose_checker = setup::ensure_check_jsonschema(root)?;
    let graphql_python = setup::ensure_graphql_core(root)?;
    let runner = setup::ensure_wasm_bindgen_test_runner(root)?;
    setup::ensure_debian_tools(&["openssl", "curl", "skopeo"])?;
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
                .env("OPENAPI_SPEC_VALIDATOR", &validator)
                .env("CHECK_JSONSCHEMA", &compose_checker)
                .env("GRAPHQL_PYTHON", &graphql_python),
            &mut counts,
        )
    });
    // The end-to-end suite again, on the oldest Envoy supported, unless ENVOY_BIN chose one.
    let native = native.and_then(|()| {
        if std::env::var_os("ENVOY_BIN").is_some() {
            return Ok(());
        }
        let oldest = setup::ensure_oldest_envoy(root)?;
        process::step(&format!("End-to-end tests on Envoy {}", setup::OLDEST_ENVOY_VERSION));
        process::run_tests(
            process::cargo(root)
                .args(["test", "-p", "semaphore-e2e"])
                .env("SEMAPHORE_WASM", &artifacts.filter)
                .env("ENVOY_BIN", &oldest)
                .env("CHECK_JSONSCHEMA", &compose_checker)
                .env("GRAPHQL_PYTHON", &graphql_python),
            &mut counts,
        )
    });
    // The image Istio would pull, checked by an OCI tool.
    let layout = setup::target_dir(root).join("oci").join(package::IMAGE_NAME);
    match package::package(&artifacts.filter, &layout)
        .and_then(|_| package::verify(&layout, &artifacts.filter))
    {
        Ok(()) => counts.passed += 1,
        Err(error) => {
            eprintln!("OCI image check failed: {error:#}");
            counts.failed += 1;
        }
    }
    let native =
        native.and_then(
            |()| if counts.failed > 0 { anyhow::bail!("the OCI image check failed") } else { Ok(()) },
        );
    // The last line: every test of the run, wasm32 and native together.
    println!("tests: {} passed, {} failed, {} skipped", counts.passed, counts.failed, counts.ignored);
    native
}
