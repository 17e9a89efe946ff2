//! `semaphore run --watch`: the plan changes under continuous traffic without restarting Envoy
//! (its filter configuration comes over ECDS from a watched file), through five edits of the
//! configuration: a changed output, a new resource, a new endpoint, a compile error, a fix.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use semaphore_e2e::{http_client, wasm_path, workspace_root, Reply, Upstream};
use serde_json::{json, Value};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // The compiler first, then the Envoy it started (its process group).
        let _ = Command::new("kill").arg("--").arg(format!("-{}", self.0.id())).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn compiler() -> PathBuf {
    // target/wasm32-unknown-unknown/release/semaphore_filter.wasm -> target/release/semaphore
    let wasm = wasm_path();
    wasm.parent().and_then(Path::parent).and_then(Path::parent).unwrap().join("release/semaphore")
}

/// Waits until `probe` holds, for at most `limit`.
async fn eventually(limit: Duration, mut probe: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn get(url: &str) -> Option<(u16, Value)> {
    let response = http_client().get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

async fn uptime(admin: &str) -> u64 {
    let info: Value =
        http_client().get(format!("{admin}/server_info")).send().await.unwrap().json().await.unwrap();
    info["uptime_current_epoch"].as_str().unwrap_or("0s").trim_end_matches('s').parse().unwrap_or(0)
}

#[tokio::test]
async fn five_edits_under_traffic_without_a_failure_or_a_restart() {
    let users = Upstream::builder()
        .route("GET", "/user/{id}", |r| {
            let id = r.param("id").unwrap_or("").to_string();
            Reply::json(
                200,
                json!({ "id": id, "name": format!("user {id}"), "email": format!("{id}@example.com") }),
            )
        })
        .start();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = workspace_root().join("tests/fixtures/live");
    let proto = workspace_root().join("examples/getuser/proto/users.proto");
    std::fs::create_dir(dir.path().join("proto")).unwrap();
    std::fs::copy(&proto, dir.path().join("proto/users.proto")).unwrap();
    let flow = std::fs::read_to_string(fixtures.join("flow.hcl")).unwrap();
    std::fs::write(dir.path().join("flow.hcl"), &flow).unwrap();
    std::fs::write(
        dir.path().join("config.hcl"),
        format!(
            "protobuffers = [\"./proto/*.proto\"]\ninclude = [\"flow.hcl\"]\n\nservices {{\n  select \"proto.*\" {{\n    host = \"http://{}\"\n  }}\n}}\n",
            users.addr()
        ),
    )
    .unwrap();

    let (port, admin_port) = (free_port(), free_port());
    let child = Command::new(compiler())
        .arg("run")
        .arg(dir.path().join("config.hcl"))
        .arg("--watch")
        .args(["--listen", &format!("127.0.0.1:{port}"), "--admin", &format!("127.0.0.1:{admin_port}")])
        .arg("--wasm")
        .arg(wasm_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("the semaphore binary (cargo xtask build)");
    let filter_file =
        std::env::temp_dir().join(format!("semaphore-run-{}/filter/semaphore.json", child.id()));
    let _child = KillOnDrop(child);
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    assert!(
        eventually(Duration::from_secs(30), async || get(&url("/user/1"))
            .await
            .is_some_and(|(s, _)| s == 200))
        .await
    );
    let started_uptime = uptime(&admin).await;

    // Continuous traffic, counting every answer that is not a 200 and every dropped request.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (stop, sent, failed, target) = (stop.clone(), sent.clone(), failed.clone(), url("/user/1"));
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                sent.fetch_add(1, Ordering::SeqCst);
                if get(&target).await.is_none_or(|(status, _)| status != 200) {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let edit = |text: &str| std::fs::write(dir.path().join("flow.hcl"), text).unwrap();
    let within = Duration::from_secs(5);

    // 1. A changed output: the email is answered too.
    let with_email = flow.replace(
        "name = \"{{ user:name }}\"",
        "name  = \"{{ user:name }}\"\n    email = \"{{ user:email }}\"",
    );
    edit(&with_email);
    assert!(
        eventually(within, async || get(&url("/user/2"))
            .await
            .is_some_and(|(_, b)| b["email"] == "2@example.com"))
        .await,
        "the changed output"
    );

    // 2. A new resource: the id comes from a second call.
    let with_resource = with_email.replace(
        "  output \"proto.User\" {",
        "  resource \"again\" {\n    request \"proto.Users\" \"Get\" {\n      id = \"{{ user:id }}\"\n    }\n  }\n\n  output \"proto.User\" {\n    id = \"{{ again:id }}\"",
    );
    edit(&with_resource);
    assert!(
        eventually(within, async || get(&url("/user/3")).await.is_some_and(|(_, b)| b["id"] == "3")).await,
        "the new resource"
    );

    // 3. A new endpoint for the flow.
    let with_endpoint = format!("{with_resource}\nendpoint \"GetUser\" \"http\" {{\n  endpoint = \"/people/:id\"\n  method   = \"GET\"\n}}\n");
    edit(&with_endpoint);
    assert!(
        eventually(within, async || get(&url("/people/4"))
            .await
            .is_some_and(|(s, b)| s == 200 && b["name"] == "user 4"))
        .await,
        "the new endpoint"
    );

    // 4. A compile error: the previous plan keeps serving.
    edit(&with_endpoint.replace("proto.User\" {", "proto.Nobody\" {"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        get(&url("/people/5")).await.map(|(s, b)| (s, b["email"].clone())),
        Some((200, json!("5@example.com")))
    );

    // 5. The fix, back to the first flow: the new endpoint is gone, the email too.
    edit(&flow);
    assert!(
        eventually(within, async || get(&url("/people/6")).await.is_some_and(|(s, _)| s == 404)).await,
        "the fix"
    );
    assert_eq!(get(&url("/user/6")).await, Some((200, json!({ "name": "user 6" }))));

    // A plan the filter cannot run, moved into place by hand: refused, so Envoy keeps the last.
    let resource = std::fs::read_to_string(&filter_file).unwrap();
    let plan = resource.split(r#"\"plan\":\""#).nth(1).unwrap().split(r#"\""#).next().unwrap().to_string();
    let broken = filter_file.with_extension("broken");
    std::fs::write(&broken, resource.replace(&plan, "U01QSAkAAAA=")).unwrap();
    std::fs::rename(&broken, &filter_file).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        get(&url("/user/7")).await,
        Some((200, json!({ "name": "user 7" }))),
        "the last good plan serves"
    );

    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    let (sent, failed) = (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(sent > 100, "{sent} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed across the edits");
    assert!(uptime(&admin).await >= started_uptime, "the same Envoy all along");
}
