//! `cargo xtask package`: the filter as an OCI image in the layout Istio pulls modules from (the
//! "compat" shape: one layer, a tar holding `plugin.wasm`), written as an OCI image layout
//! directory that `skopeo copy oci:<dir> docker://<registry>/<name>:<tag>` pushes as it is.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::process::{capture, step};

pub const IMAGE_NAME: &str = "semaphore-filter";

/// Writes the image of `wasm` into `layout` (created or replaced); returns the layer's digest.
pub fn package(wasm: &Path, layout: &Path) -> Result<String> {
    step(&format!("Packaging {} as an OCI image in {}", wasm.display(), layout.display()));
    let module = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let tar = layer_tar(&module)?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&tar)?;
    let layer = gzip.finish()?;

    if layout.exists() {
        std::fs::remove_dir_all(layout)?;
    }
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let write_blob = |bytes: &[u8]| -> Result<(String, usize)> {
        let digest = hex(&Sha256::digest(bytes));
        std::fs::write(blobs.join(&digest), bytes)?;
        Ok((format!("sha256:{digest}"), bytes.len()))
    };
    let (layer_digest, layer_size) = write_blob(&layer)?;
    let config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{}", hex(&Sha256::digest(&tar)))] },
        "config": {},
    });
    let (config_digest, config_size) = write_blob(config.to_string().as_bytes())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = write_blob(manifest.to_string().as_bytes())?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { "org.opencontainers.image.ref.name": "latest" },
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string())?;
    std::fs::write(layout.join("oci-layout"), json!({ "imageLayoutVersion": "1.0.0" }).to_string())?;
    println!("    {}  (layer {layer_digest})", layout.display());
    Ok(layer_digest)
}

/// The layer: `plugin.wasm` at its root, owned by root, dated the epoch, so the same module
/// always makes the same image.
fn layer_tar(module: &[u8]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, "plugin.wasm", module)?;
    Ok(builder.into_inner()?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the image with skopeo, a real OCI tool: it inspects clean, and its one layer, copied
/// out, holds exactly the built module as `plugin.wasm`.
pub fn verify(layout: &Path, wasm: &Path) -> Result<()> {
    step("Checking the OCI image with skopeo");
    let reference = format!("oci:{}:latest", layout.display());
    let inspect = capture(Command::new("skopeo").args(["inspect", "--raw", &reference]))?;
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout)
        .with_context(|| format!("skopeo inspect: {}", String::from_utf8_lossy(&inspect.stderr)))?;
    let layers = manifest["layers"].as_array().map(Vec::len).unwrap_or(0);
    if layers != 1 {
        bail!("the image has {layers} layers, not one: {manifest}");
    }
    let copied = tempdir_in(layout)?;
    let copy =
        capture(Command::new("skopeo").args(["copy", &reference]).arg(format!("dir:{}", copied.display())))?;
    if !copy.status.success() {
        bail!("skopeo copy failed: {}", String::from_utf8_lossy(&copy.stderr));
    }
    let digest = manifest["layers"][0]["digest"].as_str().unwrap_or_default().trim_start_matches("sha256:");
    let layer = std::fs::read(copied.join(digest)).context("the copied image has no layer blob")?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
    let mut found = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        found = Some((name, bytes));
    }
    std::fs::remove_dir_all(&copied)?;
    let module = std::fs::read(wasm)?;
    match found {
        Some((name, bytes)) if name == "plugin.wasm" && bytes == module => {
            println!("    one layer holding plugin.wasm, the built module ({} bytes)", module.len());
            Ok(())
        }
        Some((name, bytes)) => bail!("the layer holds {name} ({} bytes), not the built module", bytes.len()),
        None => bail!("the layer is empty"),
    }
}

fn tempdir_in(layout: &Path) -> Result<PathBuf> {
    let dir = layout.with_extension("copied");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}
