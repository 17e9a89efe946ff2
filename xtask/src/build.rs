//! `cargo xtask build`: the release compiler and the wasm filter.

use std::path::{Path, PathBuf};

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
    // Every Envoy worker loads its own copy: the filter is built small rather than fast, which
    // only this build does, so the rest of the workspace keeps the release profile as it is.
    run(cargo(root)
        .args(["build", "--release", "-p", "semaphore-filter", "--target", WASM_TARGET])
        .args(["--config", "profile.release.opt-level=\"z\"", "--config", "profile.release.strip=\"symbols\""]))?;

    let target = target_dir(root);
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

fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let bytes = bytes as f64;
    if bytes >= KIB * KIB {
        format!("{:.1} MiB", bytes / (KIB * KIB))
    } else {
        format!("{:.1} KiB", bytes / KIB)
    }
}
