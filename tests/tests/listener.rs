//! Semaphore's `http` block in the generated Envoy: CORS (`origin`), TLS (`cert_file`,
//! `key_file`), stream timeouts (`read_timeout`, `write_timeout`), and `log_level`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use semaphore_e2e::{http_client, start_semaphore, workspace_root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CORS: &str = "tests/fixtures/listener/cors.hcl";
const TIMEOUTS: &str = "tests/fixtures/listener/timeouts.hcl";
const ORIGIN: &str = "https://app.example";

#[tokio::test]
async fn envoy_answers_preflights_for_the_allowed_origin() {
    let envoy = start_semaphore(CORS, &[]).await.unwrap();

    let preflight = http_client()
        .request(reqwest::Method::OPTIONS, envoy.url("/hello/ada"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(headers["access-control-allow-methods"], "GET, OPTIONS, POST");
    assert_eq!(headers["access-control-allow-headers"], "authorization, content-type");
    assert_eq!(headers["access-control-max-age"], "600");

    // Another origin is not told anything.
    let preflight = http_client()
        .request(reqwest::Method::OPTIONS, envoy.url("/hello/ada"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "{:?}", preflight.headers());
}

#[tokio::test]
async fn every_answer_of_the_filter_carries_the_cors_headers() {
    let envoy = start_semaphore(CORS, &[]).await.unwrap();

    let response = http_client().get(envoy.url("/hello/ada")).header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(response.headers()["access-control-expose-headers"], "x-greeting");
    assert_eq!(response.headers()["x-greeting"], "hello");
    assert_eq!(response.text().await.unwrap(), r#"{"message":"Hello ada"}"#);

    // Errors too: a bad body (400) and a method the path is not served for (405).
    let response = http_client()
        .post(envoy.url("/echo"))
        .header("origin", ORIGIN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["access-control-allow-origin"], ORIGIN);
    let response = http_client().put(envoy.url("/echo")).header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["access-control-allow-origin"], ORIGIN);

    // Requests without an Origin are not CORS requests, and paths no endpoint serves still 404.
    let response = http_client().get(envoy.url("/hello/ada")).send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let response = http_client().get(envoy.url("/nothing")).header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

/// A self-signed certificate for `localhost`, made by openssl into `dir`.
fn certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .expect("openssl (`cargo xtask test` installs it)");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
}

#[tokio::test]
async fn cert_file_and_key_file_make_the_listener_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    let fixtures = workspace_root().join("tests/fixtures/listener");
    std::fs::write(
        dir.path().join("config.hcl"),
        format!(
            "protobuffers = [\"{0}/proto/*.proto\"]\ninclude = [\"{0}/flow.hcl\"]\n\nhttp {{\n  address = \":8443\"\n  cert_file = \"cert.pem\"\n  key_file  = \"key.pem\"\n}}\n",
            fixtures.display()
        ),
    )
    .unwrap();
    let envoy = start_semaphore(dir.path().join("config.hcl"), &[]).await.unwrap();
    let port = envoy.url("/").trim_start_matches("http://127.0.0.1:").trim_end_matches('/').to_string();

    // curl, a real TLS client, verifying the certificate against the one the listener was given.
    let curl = |scheme: &str| {
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
            .arg(dir.path().join("cert.pem"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["--write-out", "\n%{http_code}"])
            .arg(format!("{scheme}://localhost:{port}/hello/ada"))
            .output()
            .expect("curl (`cargo xtask test` installs it)")
    };
    // Blocking is fine here: Envoy is another process, and nothing else runs on this test.
    let output = curl("https");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "{\"message\":\"Hello ada\"}\n200");

    // Plain HTTP is not spoken there.
    let plain = http_client().get(envoy.url("/hello/ada")).send().await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn a_request_slower_than_read_timeout_is_408() {
    let envoy = start_semaphore(TIMEOUTS, &[]).await.unwrap();
    let address = envoy.url("").trim_start_matches("http://").trim_end_matches('/').to_string();

    // The body is announced but never finishes arriving.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"na")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "{waited:?}");

    // A request that arrives in time is answered.
    let response = http_client().post(envoy.url("/echo")).body(r#"{"name":"ada"}"#).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":"ada"}"#);
}

#[tokio::test]
async fn log_level_quiets_the_filter() {
    // At `error`, the filter does not say it loaded its plan; at the default level it does.
    let quiet = start_semaphore(TIMEOUTS, &[]).await.unwrap();
    let chatty = start_semaphore(CORS, &[]).await.unwrap();
    chatty.wait_for_log("plan loaded", Duration::from_secs(10)).await.unwrap();
    let response = http_client().post(quiet.url("/echo")).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let log = quiet.log();
    assert!(!log.contains("plan loaded"), "{log}");
    assert!(log.contains("dispatch loop"), "Envoy's own lines are still there: {log}");
}
