//! compose.yaml, checked as far as this machine can without a container engine: it follows the
//! Compose specification (its JSON schema, from `check-jsonschema`), every file it mounts exists
//! after `cargo xtask build`, its Envoy image is the Envoy the tests run, and the Envoy
//! configuration it mounts is loaded by that Envoy and serves the example, with the compose
//! services' names resolved to 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;

use example_upstream::getuser;
use semaphore_e2e::{envoy_version, http_client, wasm_path, workspace_root, Envoy, Upstream};
use serde_json::Value;

fn compose() -> Value {
    serde_norway::from_str(&std::fs::read_to_string(workspace_root().join("compose.yaml")).unwrap()).unwrap()
}

#[test]
fn compose_yaml_follows_the_compose_specification() {
    let checker = std::env::var_os("CHECK_JSONSCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/check-jsonschema"));
    assert!(checker.is_file(), "check-jsonschema is missing: run `cargo xtask test`, which installs it");
    let output = Command::new(&checker)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(workspace_root().join("compose.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_file_compose_mounts_exists_after_a_build() {
    let compose = compose();
    let mut mounted = Vec::new();
    for service in compose["services"].as_object().unwrap().values() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if let Some(relative) = source.strip_prefix("./") {
                mounted.push(relative.to_string());
                assert!(
                    workspace_root().join(relative).exists(),
                    "{source} does not exist: run `cargo xtask build`"
                );
            }
        }
    }
    assert_eq!(mounted.len(), 3, "{mounted:?}");
    let dockerfile = compose["services"]["users"]["build"]["dockerfile"].as_str().unwrap();
    assert!(workspace_root().join(dockerfile).is_file());
}

#[tokio::test]
async fn the_envoy_configuration_compose_mounts_serves_the_example() {
    let compose = compose();
    let image = compose["services"]["envoy"]["image"].as_str().unwrap();
    let (major, minor) = envoy_version();
    if (major, minor) >= (1, 40) {
        assert!(
            image.starts_with(&format!("envoyproxy/envoy:v{major}.{minor}.")),
            "{image}: the tests run {major}.{minor}"
        );
    }
    let users = Upstream::serve(getuser::router(getuser::load_users(&getuser::default_data_path()).unwrap()));

    // The container's paths and names, as they are on this machine.
    let built = workspace_root().join("target/compose");
    let dir = tempfile::tempdir().unwrap();
    let wasm = wasm_path().display().to_string();
    let filter = std::fs::read_to_string(built.join("filter/semaphore.json")).unwrap();
    std::fs::create_dir(dir.path().join("filter")).unwrap();
    std::fs::write(
        dir.path().join("filter/semaphore.json"),
        filter.replace("/etc/semaphore/semaphore_filter.wasm", &wasm),
    )
    .unwrap();
    let bootstrap = std::fs::read_to_string(built.join("envoy.yaml"))
        .unwrap()
        .replace("/etc/semaphore/filter", &dir.path().join("filter").display().to_string())
        .replace("address: users", "address: 127.0.0.1")
        .replace("port_value: 9090", &format!("port_value: {}", users.addr().port()))
        .replace("address: 0.0.0.0", "address: 127.0.0.1")
        .replace("port_value: 8080", "port_value: 0")
        .replace("port_value: 9901", "port_value: 0");
    let envoy = Envoy::start(&bootstrap).await.unwrap();

    let response = http_client().get(envoy.url("/user/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"name":"Ada Lovelace"}"#);
}
