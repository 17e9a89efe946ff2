//! `cargo xtask build`: the release compiler and the wasm filter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::{cargo, run, step};
use crate::setup::{ensure_wasm_target, target_dir, WASM_TARGET};

pub struct Artifacts {
    /// The `semaphore` compiler binary.
    pub compiler: PathBuf,
    /// `semaphore_filter.wasm`.
    pub filter: PathBuf,
}

pub fn build(root: &Path) -> Result<Artifacts> {
    ensure_wasm_target()?;

    step("Building the compiler (release)");
    run(cargo(root).args(["build", "--release", "-p", "semaphore-compiler"]))?;

    step("Building the filter (release, wasm32, optimized for size)");
    // Every Envoy worker loads its own copy, so the module is built small: `s` for the filter,
    // whose level link-time optimization applies to all of it, `z` for what it depends on.
    // Under V8 `s` runs a request in about three quarters of the time `z` takes, for 32 KiB
    // (`cargo xtask profile`). serde_json writes every number and escaped string of every
    // JSON body: at level 3 it takes 3% off the module's instructions per checkout for 7 KiB
    // (`cargo xtask bench --instructions`). Only this build does it: the rest of the
    // workspace keeps the release profile as it is.
    run(cargo(root).args(["build", "--release", "-p", "semaphore-filter", "--target", WASM_TARGET]).args([
        "--config",
        "profile.release.opt-level=\"s\"",
        "--config",
        "profile.release.package.\"*\".opt-level=\"z\"",
        "--config",
        "profile.release.package.serde_json.opt-level=3",
        "--config",
        "profile.release.strip=\"symbols\"",
    ]))?;

    let target = target_dir(root);
    shrink(&target.join(WASM_TARGET).join("release/semaphore_filter.wasm"))?;
    compose_configuration(root, &target)?;
    let artifacts = Artifacts {
        compiler: target.join("release/semaphore"),
        filter: target.join(WASM_TARGET).join("release/semaphore_filter.wasm"),
    };
    let shown = |artifact: &Path| artifact.strip_prefix(root).unwrap_or(artifact).to_owned();
    let width = [&artifacts.compiler, &artifacts.filter]
        .map(|artifact| shown(artifact).as_os_str().len())
        .into_iter()
        .max()
        .unwrap_or(0);
    for artifact in [&artifacts.compiler, &artifacts.filter] {
        let size = std::fs::metadata(artifact)
            .with_context(|| format!("the build did not produce {}", artifact.display()))?
            .len();
        println!("    {:<width$}  {}", shown(artifact).display(), human_size(size));
    }
    Ok(artifacts)
}

/// Binaryen's `wasm-opt -Oz` takes another sixth off the module. Installed from Debian's
/// packages when missing; on a machine without apt the module stays as cargo built it.
fn shrink(wasm: &Path) -> Result<()> {
    let installed = || Command::new("wasm-opt").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed() {
        step("Installing wasm-opt (Debian package binaryen)");
        let apt = |args: &[&str]| {
            Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()
        };
        let done = apt(&["update", "-qq"]).is_ok_and(|s| s.success())
            && apt(&["install", "-y", "-qq", "binaryen"]).is_ok_and(|s| s.success());
        if !done || !installed() {
            println!("    wasm-opt is not available: the filter is left as cargo built it");
            return Ok(());
        }
    }
    step("Shrinking the filter (wasm-opt -Oz)");
    // By default wasm-opt inlines every function called from one place, however large, into
    // its caller: the module's largest functions came from that. V8 compiles each function at
    // load with a working memory that grows faster than its size, and Envoy keeps the peak:
    // inlining only functions of up to 20 instructions takes 9.5 MiB off Envoy's idle RSS, for
    // 5 KiB of module and 0.7% more instructions per checkout (see "Small functions" in
    // filter/src/lib.rs). The features are those rustc enables by default for
    // wasm32-unknown-unknown, which V8 supports.
    run(Command::new("wasm-opt")
        .args(["-Oz", "--one-caller-inline-max-function-size", "20"])
        .args(["--enable-bulk-memory", "--enable-sign-ext", "--enable-mutable-globals"])
        .args(["--enable-nontrapping-float-to-int", "--enable-reference-types", "--enable-multivalue"])
        .arg(wasm)
        .arg("-o")
        .arg(wasm))
}

fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let bytes = bytes as f64;
    if bytes >= KIB * KIB {
        format!("{:.1} MiB", bytes / (KIB * KIB))
    } else {
        format!("{:.1} KiB", bytes / KIB)
    }
}

/// What compose.yaml mounts into Envoy's container: the getuser example's bootstrap and its
/// filter configuration (over ECDS from a watched folder), with the container's paths and the
/// compose services' names. Moved into place, so a running Envoy takes a new plan at once.
fn compose_configuration(root: &Path, target: &Path) -> Result<()> {
    use semaphore_compiler::envoy::{bootstrap, filter_config_resource, EnvoyOptions};
    let compiled = semaphore_compiler::compile_file(&root.join("examples/getuser/config.hcl"))
        .map_err(|diagnostics| anyhow::anyhow!("the getuser example does not compile:\n{diagnostics}"))?;
    let wasm = Path::new("/etc/semaphore/semaphore_filter.wasm");
    let options = EnvoyOptions {
        wasm: wasm.to_path_buf(),
        listen: Some("0.0.0.0:8080".into()),
        admin: "0.0.0.0:9901".into(),
        upstream_overrides: [("proto.Users".to_string(), "users:9090".to_string())].into_iter().collect(),
        filter_config_file: Some(PathBuf::from("/etc/semaphore/filter/semaphore.json")),
        grpc_listen: None,
        graphql_listen: None,
    };
    let dir = target.join("compose");
    std::fs::create_dir_all(dir.join("filter"))?;
    std::fs::write(dir.join("envoy.yaml"), bootstrap(&compiled, &options))?;
    let next = dir.join("filter/semaphore.json.next");
    std::fs::write(&next, filter_config_resource(&compiled, wasm))?;
    std::fs::rename(&next, dir.join("filter/semaphore.json"))?;
    Ok(())
}
