//! The bundled jwt example behind Envoy's jwt_authn filter, as its README sets it up: jwt_authn
//! (from `examples/jwt/jwt_authn.yaml`) verifies the token, the flow reads its claims with
//! `jwt(...)`, and the example's own upstream answers the profile. A request whose token does
//! not verify is answered by jwt_authn (401, or 403 for another audience) before the flow runs,
//! so the upstream never sees it.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use example_upstream::jwt;
use hmac::{Hmac, Mac};
use semaphore_compiler::envoy::{bootstrap, insert_before_semaphore, EnvoyOptions};
use semaphore_e2e::{http_client, wasm_path, workspace_root, Envoy, Upstream};
use serde_json::{json, Value};
use sha2::Sha256;

const CONFIG: &str = "examples/jwt/config.hcl";
const JWT_AUTHN: &str = "examples/jwt/jwt_authn.yaml";

/// The shared secret of the demo key in `jwt_authn.yaml` (its `k` is this, base64url).
const DEMO_SECRET: &[u8] = b"semaphore-jwt-example-demo-key-do-not-use-in-production";
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "semaphore-jwt-example";

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs()
}

/// Claims jwt_authn accepts for `subject`: the demo issuer and audience, valid for five minutes.
fn claims_for(subject: &str) -> Value {
    let now = unix_now();
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 300 })
}

/// An HS256 JWT of `claims`, signed with `secret` under the demo key's id.
fn sign(claims: &Value, secret: &[u8]) -> String {
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "demo" });
    let signing_input =
        format!("{}.{}", base64url(header.to_string().as_bytes()), base64url(claims.to_string().as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", base64url(&mac.finalize().into_bytes()))
}

/// A token that is not signed (`alg: none`, a made-up signature): `jwt(...)` alone would read
/// its claims all the same.
fn unsigned(claims: &Value) -> String {
    format!("{}.{}.signature", base64url(br#"{"alg":"none"}"#), base64url(claims.to_string().as_bytes()))
}

/// The example's profile service, and Envoy running jwt_authn, then the example's flow, then the
/// router, with the profile service sent to that upstream.
async fn start_example() -> (Upstream, Envoy) {
    let profiles = Upstream::serve(jwt::router());
    let compiled = semaphore_compiler::compile_file(&workspace_root().join(CONFIG))
        .unwrap_or_else(|diagnostics| panic!("{CONFIG} does not compile:\n{}", diagnostics.rendered));
    let options = EnvoyOptions {
        wasm: wasm_path(),
        listen: Some("127.0.0.1:0".to_owned()),
        admin: "127.0.0.1:0".to_owned(),
        upstream_overrides: BTreeMap::from([("profiles.Profiles".to_owned(), profiles.addr().to_string())]),
        ..Default::default()
    };
    let jwt_authn =
        std::fs::read_to_string(workspace_root().join(JWT_AUTHN)).expect("reading jwt_authn.yaml");
    let bootstrap = insert_before_semaphore(&bootstrap(&compiled, &options), &jwt_authn)
        .unwrap_or_else(|error| panic!("{JWT_AUTHN}: {error}"));
    let envoy = Envoy::start(&bootstrap).await.unwrap();
    (profiles, envoy)
}

/// `GET /me` with these `Authorization` headers (`Bearer <token>` each), in this order.
async fn get_me(envoy: &Envoy, tokens: &[&str]) -> (u16, String) {
    let mut request = http_client().get(envoy.url("/me"));
    for token in tokens {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_verified_token_gets_the_profile_of_its_subject() {
    let (profiles, envoy) = start_example().await;

    let token = sign(&claims_for("ada"), DEMO_SECRET);
    let (status, body) = get_me(&envoy, &[&token]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"id":"ada","name":"Ada Lovelace","email":"ada@example.com","team":"Analytical Engine"}"#
    );

    let requests = profiles.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/profiles/ada", "the token's subject is the profile id");
    assert_eq!(requests[0].header("authorization"), None, "the flow does not pass the token on");

    // A verified subject without a profile: the flow answers the upstream's 404.
    let token = sign(&claims_for("alan"), DEMO_SECRET);
    let (status, body) = get_me(&envoy, &[&token]).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body,
        r#"{"message":"resource `profile`: upstream answered 404: profile alan not found","status":404}"#
    );
    assert_eq!(profiles.requests()[1].path, "/profiles/alan");
}

/// `claims` with one claim replaced.
fn with_claim(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

#[tokio::test]
async fn jwt_authn_answers_before_the_flow_runs_when_the_token_does_not_verify() {
    let (profiles, envoy) = start_example().await;
    let ada = claims_for("ada");
    let verified = sign(&ada, DEMO_SECRET);
    let other_key = sign(&ada, b"another-secret");
    let unsigned = unsigned(&claims_for("grace"));
    // Well beyond jwt_authn's default clock skew of 60 s.
    let expired = sign(&with_claim(ada.clone(), "exp", json!(unix_now() - 600)), DEMO_SECRET);
    let other_issuer =
        sign(&with_claim(ada.clone(), "iss", json!("https://elsewhere.example.com")), DEMO_SECRET);
    let other_audience = sign(&with_claim(ada.clone(), "aud", json!("another-service")), DEMO_SECRET);
    let not_three_sections =
        "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections";
    let cases: [(&str, Vec<&str>, u16, &str); 8] = [
        ("no token", vec![], 401, "Jwt is missing"),
        ("a token signed with another key", vec![&other_key], 401, "Jwt verification fails"),
        ("an unsigned token", vec![&unsigned], 401, "Jwt header [alg] is not supported"),
        ("an expired token", vec![&expired], 401, "Jwt is expired"),
        ("a token of another issuer", vec![&other_issuer], 401, "Jwt issuer is not configured"),
        // Genuine, but meant for another service: Envoy forbids rather than asks for a token.
        ("a token for another audience", vec![&other_audience], 403, "Audiences in Jwt are not allowed"),
        // The flow reads the Authorization header itself, so a second one must not slip another
        // subject's claims past the check: jwt_authn takes the two as one malformed token,
        // whichever comes first.
        ("a verified token, then an unsigned one", vec![&verified, &unsigned], 401, not_three_sections),
        ("an unsigned token, then a verified one", vec![&unsigned, &verified], 401, not_three_sections),
    ];
    for (case, tokens, expected_status, reason) in cases {
        let (status, body) = get_me(&envoy, &tokens).await;
        assert_eq!((status, body.as_str()), (expected_status, reason), "{case}");
        assert_eq!(profiles.requests().len(), 0, "{case}: the upstream saw {:#?}", profiles.requests());
    }
}

#[tokio::test]
async fn the_readme_token_script_mints_tokens_jwt_authn_accepts() {
    let (profiles, envoy) = start_example().await;
    let script = workspace_root().join("examples/jwt/token.py");
    let output = std::process::Command::new("python3").arg(&script).arg("grace").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();

    let (status, body) = get_me(&envoy, &[token.trim()]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"id":"grace","name":"Grace Hopper","email":"grace@example.com","team":"Compilers"}"#
    );
    assert_eq!(profiles.requests()[0].path, "/profiles/grace");
}
