//! The `semaphore` command as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

fn semaphore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_semaphore")).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn graph_of_a_diamond_has_four_nodes_and_four_edges() {
    let diamond = fixture("pass/diamond.hcl");
    let dot = stdout(&semaphore(&["graph", diamond.to_str().unwrap()]));
    let nodes: Vec<&str> = dot.lines().filter(|l| l.contains("[label=")).collect();
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains("->")).map(str::trim).collect();
    assert_eq!(nodes.len(), 4, "{dot}");
    assert_eq!(edges, ["n0 -> n1;", "n0 -> n2;", "n1 -> n3;", "n2 -> n3;"], "{dot}");
    assert!(dot.contains("digraph \"diamond\""), "{dot}");
    assert!(dot.contains(r#"n2 [label="right\ncatalog.Items.List\nif {{ top:available }}\nrollback catalog.Audit.Record", style=dashed];"#), "{dot}");

    let mermaid =
        stdout(&semaphore(&["graph", diamond.to_str().unwrap(), "--format", "mermaid", "--flow", "diamond"]));
    assert!(mermaid.contains("flowchart LR"), "{mermaid}");
    assert_eq!(mermaid.lines().filter(|l| l.contains("-->")).count(), 4, "{mermaid}");
    assert_eq!(
        mermaid.lines().filter(|l| l.trim_start().starts_with('n') && l.contains("[\"")).count(),
        4,
        "{mermaid}"
    );
}

#[test]
fn graph_of_an_unknown_flow_is_an_error() {
    let output = semaphore(&["graph", fixture("pass/diamond.hcl").to_str().unwrap(), "--flow", "circle"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("has no flow `circle`"));
}

#[test]
fn compile_then_inspect_shows_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.bin");
    let compiled =
        semaphore(&["compile", fixture("pass/diamond.hcl").to_str().unwrap(), "-o", plan.to_str().unwrap()]);
    assert!(compiled.status.success(), "{}", String::from_utf8_lossy(&compiled.stderr));
    let text = stdout(&semaphore(&["inspect", plan.to_str().unwrap()]));
    for expected in [
        &format!("plan format v{}, ", semaphore_plan::VERSION),
        "  catalog.Items  cluster catalog.svc:8080  authority catalog.svc:8080  http  json/json",
        "flow diamond\n  input catalog.Query\n  node top\n    call catalog.Items.Get  GET /items/:id  timeout 10000ms",
        "  node bottom  after left, right\n",
        "    if {{ top:available }}\n",
        "    rollback catalog.Audit.Record  POST /events",
        "        reason = {{ json(right:items) }}",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn inspect_refuses_what_is_not_a_plan() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("plan.bin");
    std::fs::write(&garbage, b"not a plan").unwrap();
    let output = semaphore(&["inspect", garbage.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a semaphore plan"));
}

#[test]
fn every_command_has_help() {
    for command in [
        &["--help"][..],
        &["check", "--help"],
        &["compile", "--help"],
        &["inspect", "--help"],
        &["graph", "--help"],
        &["envoy", "--help"],
        &["run", "--help"],
    ] {
        let text = stdout(&semaphore(command));
        assert!(text.contains("Usage: semaphore"), "{command:?}: {text}");
    }
}

/// `--clusters istio` names each service's cluster as Istio does; a service's own `cluster`
/// wins over any naming; `inspect` shows them.
#[test]
fn clusters_are_named_for_istio_or_as_the_service_says() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proto")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/getuser/proto/users.proto"),
        dir.path().join("proto/users.proto"),
    )
    .unwrap();
    let config = dir.path().join("config.hcl");
    std::fs::write(
        &config,
        r#"
protobuffers = ["./proto/*.proto"]

services {
  select "proto.*" {
    host = "http://users:9090"
  }
}

endpoint "GetUser" "http" {
  endpoint = "/user/:id"
}

flow "GetUser" {
  input "proto.Query" {}

  resource "user" {
    request "proto.Users" "Get" {
      id = "{{ input:id }}"
    }
  }
}
"#,
    )
    .unwrap();
    let plan = dir.path().join("plan.bin");
    let cluster_of = |args: &[&str]| {
        let mut all = vec!["compile", config.to_str().unwrap(), "-o", plan.to_str().unwrap()];
        all.extend_from_slice(args);
        stdout(&semaphore(&all));
        let text = stdout(&semaphore(&["inspect", plan.to_str().unwrap()]));
        text.lines()
            .find(|l| l.contains("proto.Users"))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string()
    };
    assert_eq!(cluster_of(&[]), "users:9090");
    assert_eq!(cluster_of(&["--clusters", "istio"]), "outbound|9090||users.default.svc.cluster.local");
    assert_eq!(
        cluster_of(&["--clusters", "istio", "--namespace", "shop"]),
        "outbound|9090||users.shop.svc.cluster.local"
    );

    let text = std::fs::read_to_string(&config).unwrap().replace(
        r#"host = "http://users:9090""#,
        "host = \"http://users:9090\"\n    cluster = \"users-canary\"",
    );
    std::fs::write(&config, text).unwrap();
    assert_eq!(cluster_of(&["--clusters", "istio"]), "users-canary");
}

/// `envoy/istio/` holds what `semaphore istio` writes for the examples, kept current here
/// (`SEMAPHORE_BLESS=1` rewrites them): a WasmPlugin for getuser, whose only endpoint is a GET,
/// and an EnvoyFilter for checkout, whose POST, gRPC method and GraphQL schema take a body.
#[test]
fn the_istio_examples_are_what_semaphore_istio_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (example, kind, why) in [
        ("getuser", "WasmPlugin", "no endpoint takes a request body"),
        ("checkout", "EnvoyFilter", "POST /checkout, POST /checkout.Storefront/Checkout, "),
    ] {
        let config = root.join(format!("examples/{example}/config.hcl"));
        let output = semaphore(&[
            "istio",
            config.to_str().unwrap(),
            "--module",
            "oci://ghcr.io/example/semaphore-filter:0.1.0",
            "--selector",
            &format!("app={example}"),
            "--namespace",
            "shop",
        ]);
        let yaml = stdout(&output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{stderr}");
        let documents: Vec<serde_json::Value> =
            yaml.split("\n---\n").skip(1).map(|document| serde_norway::from_str(document).unwrap()).collect();
        assert_eq!(documents[0]["kind"], kind);
        assert_eq!(documents[0]["metadata"]["namespace"], "shop");
        let path = root.join(format!("envoy/istio/{example}.yaml"));
        if std::env::var_os("SEMAPHORE_BLESS").is_some() {
            std::fs::write(&path, &yaml).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), yaml, "{} is stale", path.display());
    }
}

#[test]
fn generate_graphql_prints_the_schema_or_says_there_is_none() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = root.join("tests/fixtures/graphql/config.hcl");
    let sdl = stdout(&semaphore(&["generate", "graphql", config.to_str().unwrap()]));
    assert!(
        sdl.starts_with("type Query {\n  user(id: String): User\n  accounts: Query_accounts\n}\n"),
        "{sdl}"
    );
    assert!(sdl.contains("type Mutation {\n  createUser(name: String, role: Created_input_Role, address: Created_input_address, tags: [String!], visits: Int64): Created\n}"), "{sdl}");
    assert!(sdl.contains("enum User_Role {\n  GUEST\n  MEMBER\n  ADMIN\n}"), "{sdl}");
    assert!(sdl.contains("labels: [User_labels!]"), "{sdl}");

    let getuser = root.join("examples/getuser/config.hcl");
    let output = semaphore(&["generate", "graphql", getuser.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no flow has a graphql endpoint"));
}
