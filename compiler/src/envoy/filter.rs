//! The semaphore filter as Envoy runs it: the plugin configuration carrying the plan, the wasm
//! HTTP filter, and the ECDS resource its configuration comes from when it is not inline.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use super::SEMAPHORE_FILTER;

const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
use crate::Compiled;

/// The plugin configuration the filter reads: the plan, base64 in JSON, as an Istio
/// WasmPlugin's `pluginConfig` would deliver it.
pub fn plugin_configuration(compiled: &Compiled) -> String {
    let plan = base64::engine::general_purpose::STANDARD.encode(compiled.plan.encode_to_bytes());
    json!({ "plan": plan }).to_string()
}

/// The ECDS resource file the filter's configuration comes from with `filter_config_file`. Its
/// plugin configuration asks the filter to refuse a plan it cannot run, so that Envoy keeps the
/// previous one rather than a filter with no plan.
pub fn filter_config_resource(compiled: &Compiled, wasm: &Path) -> String {
    let mut filter = wasm_filter(compiled, local_code(wasm));
    let plan = base64::engine::general_purpose::STANDARD.encode(compiled.plan.encode_to_bytes());
    filter["typed_config"]["config"]["configuration"]["value"] =
        json!(json!({ "plan": plan, "reject_invalid": true }).to_string());
    extension_config_resource(&filter)
}

/// An ECDS resource file, as Envoy reads it from a `path_config_source`: `filter`'s
/// configuration as the one extension config, named as the filter.
pub fn extension_config_resource(filter: &Value) -> String {
    let resource = json!({
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": filter["name"],
        "typed_config": filter["typed_config"],
    });
    let json = serde_json::to_string(&json!({ "resources": [resource] })).unwrap_or_default();
    format!("{json}\n")
}

/// The filter as an HTTP filter (and an ECDS extension config): the module from `code` (a
/// `local` file or `remote` URL), the plan as its configuration.
pub fn wasm_filter(compiled: &Compiled, code: Value) -> Value {
    json!({
        "name": SEMAPHORE_FILTER,
        "typed_config": {
            "@type": WASM_TYPE_URL,
            "config": {
                "name": "semaphore",
                "root_id": "semaphore",
                // Hold the request headers while the body of a flow's input arrives; without it
                // Envoy would stop delivering the body to the filter too.
                "allow_on_headers_stop_iteration": true,
                "vm_config": {
                    "vm_id": "semaphore",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": code,
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_configuration(compiled),
                },
            },
        },
    })
}

/// A module in a local file, as a wasm filter's `code`.
pub(super) fn local_code(wasm: &Path) -> Value {
    json!({ "local": { "filename": wasm.to_string_lossy() } })
}

/// The filter with its configuration over ECDS from `file`: Envoy reloads the file when a new
/// one is moved into its folder.
pub(super) fn discovered_filter(file: &Path) -> Value {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let folder = file.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    discovered(json!({
        "path_config_source": { "path": file, "watched_directory": { "path": folder } },
        "resource_api_version": "V3",
    }))
}

/// The filter with its configuration from the control plane over ADS, as Istio delivers an
/// EnvoyFilter's EXTENSION_CONFIG; the listener does not wait for it.
pub fn filter_from_ads() -> Value {
    discovered(json!({ "ads": {}, "initial_fetch_timeout": "0s" }))
}

fn discovered(config_source: Value) -> Value {
    json!({
        "name": SEMAPHORE_FILTER,
        "config_discovery": { "config_source": config_source, "type_urls": [WASM_TYPE_URL] },
    })
}
