//! The plugin configuration: the raw plan bytes, or `{"plan": "<base64>"}` as an Istio
//! WasmPlugin's `pluginConfig` delivers it.

use base64::Engine as _;
use semaphore_plan::{Plan, MAGIC};

use crate::engine::value::Value;

/// `{"reject_invalid": true}`: a plan the filter cannot run fails the configuration, so that
/// Envoy keeps the one before (live updates over ECDS); by default the filter stays in place
/// and passes every request through, so Envoy serves its other routes.
pub fn rejects_invalid(configuration: &[u8]) -> bool {
    serde_json::from_slice::<Value>(configuration)
        .ok()
        .and_then(|json| json.get("reject_invalid").and_then(Value::as_bool))
        .unwrap_or(false)
}

pub fn load_plan(configuration: &[u8]) -> Result<Plan, String> {
    if configuration.starts_with(&MAGIC) {
        return Plan::decode_from_bytes(configuration).map_err(|e| e.to_string());
    }
    let json: Value = serde_json::from_slice(configuration).map_err(|_| {
        "the plugin configuration is neither a plan nor JSON {\"plan\": \"<base64>\"}".to_string()
    })?;
    let Some(encoded) = json.get("plan").and_then(Value::as_str) else {
        return Err("the plugin configuration has no \"plan\" string".into());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("\"plan\" is not valid base64: {e}"))?;
    Plan::decode_from_bytes(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn encoded(plan: &Plan) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(plan.encode_to_bytes());
        format!("{{\"plan\": \"{b64}\"}}").into_bytes()
    }

    #[test]
    fn accepts_raw_and_json() {
        let plan = Plan::default();
        assert_eq!(load_plan(&plan.encode_to_bytes()), Ok(plan.clone()));
        assert_eq!(load_plan(&encoded(&plan)), Ok(plan));
    }

    #[test]
    fn refuses_another_version() {
        let mut bytes = Plan::default().encode_to_bytes();
        bytes[4] = 9;
        let err = load_plan(&bytes).unwrap_err();
        assert!(err.contains("plan format version 9 is not supported"), "{err}");
    }

    #[test]
    fn says_whether_a_refused_plan_fails_the_configuration() {
        assert!(rejects_invalid(br#"{"plan": "!!", "reject_invalid": true}"#));
        assert!(!rejects_invalid(br#"{"plan": "!!"}"#));
        assert!(!rejects_invalid(b"SMPH\x01\x00\x00\x00"));
    }

    #[test]
    fn refuses_garbage() {
        assert!(load_plan(b"").unwrap_err().contains("neither a plan nor JSON"));
        assert!(load_plan(b"{\"plan\": 5}").unwrap_err().contains("no \"plan\" string"));
        assert!(load_plan(b"{\"plan\": \"!!\"}").unwrap_err().contains("not valid base64"));
        // This format version's header, then bytes that are no plan.
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&semaphore_plan::VERSION.to_le_bytes());
        header.extend_from_slice(&[0, 0, 0xff]);
        let plan = base64::engine::general_purpose::STANDARD.encode(header);
        let configuration = format!("{{\"plan\": \"{plan}\"}}");
        assert!(load_plan(configuration.as_bytes()).unwrap_err().contains("does not decode"));
    }
}
