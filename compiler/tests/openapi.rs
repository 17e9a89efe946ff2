//! `semaphore generate openapi3`: the document a user gets for a configuration, and that a real
//! OpenAPI validator accepts it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn semaphore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_semaphore")).args(args).output().unwrap()
}

fn generate(config: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["generate", "openapi3", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = semaphore(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

const DEFAULT_ERROR: &str = r##"{
  "type": "object",
  "properties": {
    "message": { "type": "string" },
    "status": { "type": "integer", "format": "int32" }
  },
  "required": ["message", "status"]
}"##;

#[test]
fn getuser_is_a_get_on_user_id_answering_a_user() {
    let document = generate(&workspace_root().join("examples/getuser/config.hcl"), &[]);
    assert_eq!(document["openapi"], "3.0.3");
    assert_eq!(document["info"], json!({ "title": "config", "version": "1.0.0" }));
    assert_eq!(document["servers"], json!([{ "url": "http://127.0.0.1:8080" }]));
    assert_eq!(document["paths"].as_object().unwrap().keys().collect::<Vec<_>>(), ["/user/{id}"]);

    let get = &document["paths"]["/user/{id}"]["get"];
    assert_eq!(get["operationId"], "GetUser");
    assert_eq!(
        get["parameters"],
        json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }])
    );
    assert!(get.get("requestBody").is_none(), "{get}");
    assert_eq!(get["responses"]["200"]["content"]["application/json"]["schema"], schema_ref("proto.User"));
    let default_error: Value = serde_json::from_str(DEFAULT_ERROR).unwrap();
    assert_eq!(get["responses"]["default"]["content"]["application/json"]["schema"], default_error);

    assert_eq!(
        document["components"]["schemas"],
        json!({
            "proto.User": {
                "type": "object",
                "properties": {
                    "id": { "type": "string" },
                    "name": { "type": "string" },
                    "username": { "type": "string" },
                    "email": { "type": "string" },
                },
            },
        })
    );
}

#[test]
fn checkout_posts_its_request_as_json_and_answers_a_summary() {
    let document = generate(&workspace_root().join("examples/checkout/config.hcl"), &[]);
    let post = &document["paths"]["/checkout"]["post"];
    assert_eq!(post["operationId"], "Checkout");
    assert_eq!(
        post["parameters"],
        json!([{ "name": "authorization", "in": "header", "required": false, "schema": { "type": "string" } }])
    );
    assert_eq!(
        post["requestBody"],
        json!({ "content": { "application/json": { "schema": schema_ref("checkout.CheckoutRequest") } } })
    );
    let ok = &post["responses"]["200"];
    assert_eq!(ok["content"]["application/json"]["schema"], schema_ref("checkout.Summary"));
    assert_eq!(ok["headers"], json!({ "x-carrier": { "schema": { "type": "string" } } }));

    let schemas = &document["components"]["schemas"];
    let summary = &schemas["checkout.Summary"]["properties"];
    assert_eq!(summary["items"], json!({ "type": "array", "items": schema_ref("checkout.Line") }));
    assert_eq!(summary["customer"], schema_ref("checkout.Recipient"));
    assert_eq!(summary["subtotal_cents"], json!({ "type": "integer", "format": "int32" }));
    assert_eq!(schemas["checkout.Recipient"]["properties"]["address"], schema_ref("checkout.Address"));
    assert_eq!(schemas["checkout.Address"]["properties"]["postal_code"], json!({ "type": "string" }));
    let mut names: Vec<&String> = schemas.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "checkout.Address",
            "checkout.CheckoutRequest",
            "checkout.Discount",
            "checkout.Line",
            "checkout.Quote",
            "checkout.Recipient",
            "checkout.Summary",
        ]
    );
}

#[test]
fn language_fixture_has_query_parameters_error_objects_and_a_proxy() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pass/language.hcl");
    let document = generate(&config, &[]);
    assert!(document.get("servers").is_none(), "no http address, no servers");
    let paths = &document["paths"];
    let mut routes: Vec<&String> = paths.as_object().unwrap().keys().collect();
    routes.sort();
    assert_eq!(routes, ["/files/{path}", "/items/{id}", "/items/{id}/reserve"]);

    let item = &paths["/items/{id}"]["get"];
    let parameters: Vec<(&str, &str)> = item["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["in"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        parameters,
        [
            ("path", "id"),
            ("header", "authorization"),
            ("header", "x-tenant"),
            ("query", "limit"),
            ("query", "kind"),
            ("query", "tags"),
        ]
    );
    assert_eq!(item["parameters"][3]["schema"], json!({ "type": "integer", "format": "int32" }));
    assert_eq!(item["parameters"][5]["schema"], json!({ "type": "array", "items": { "type": "string" } }));
    assert_eq!(
        item["responses"]["200"]["content"]["application/json"]["schema"],
        schema_ref("catalog.Summary")
    );
    assert_eq!(
        item["responses"]["default"]["content"]["application/json"]["schema"],
        schema_ref("catalog.Error")
    );

    let reserve = &paths["/items/{id}/reserve"]["post"];
    assert_eq!(reserve["operationId"], "reserve");
    assert_eq!(reserve["requestBody"]["content"]["application/json"]["schema"], schema_ref("catalog.Query"));
    assert_eq!(
        reserve["parameters"],
        json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }])
    );
    let statuses: Vec<&String> = reserve["responses"].as_object().unwrap().keys().collect();
    assert_eq!(statuses, ["202", "default"]);
    assert_eq!(
        reserve["responses"]["202"]["content"]["application/json"]["schema"],
        schema_ref("catalog.Ack")
    );

    let files = &paths["/files/{path}"]["get"];
    assert_eq!(files["parameters"][0]["name"], "path");
    assert_eq!(files["parameters"][0]["in"], "path");
    assert_eq!(files["parameters"][0]["required"], true);
    let responses: Vec<&String> = files["responses"].as_object().unwrap().keys().collect();
    assert_eq!(responses, ["default"]);
    assert!(files["responses"]["default"]["description"].as_str().unwrap().contains("`catalog.Items`"));

    let summary = &document["components"]["schemas"]["catalog.Summary"]["properties"];
    assert_eq!(summary["status"], json!({ "type": "string", "enum": ["UNKNOWN", "ACTIVE", "RETIRED"] }));
    assert_eq!(summary["sold"], json!({ "type": "integer", "format": "int64" }));
    assert_eq!(summary["rating"], json!({ "type": "number", "format": "double" }));
    assert_eq!(summary["price"], schema_ref("catalog.Price"));
    assert_eq!(summary["history"], json!({ "type": "array", "items": schema_ref("catalog.Price") }));
}

/// A configuration over every kind of field, a recursive message and a map, with the codecs,
/// methods and statuses the examples do not use.
fn write_kinds_config(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("kinds.proto"),
        r#"
syntax = "proto3";
package kinds;

enum Shade {
  DARK = 0;
  LIGHT = 1;
}

message Tree {
  string id = 1;
  double height = 2;
  float girth = 3;
  int32 rings = 4;
  sint32 tilt = 5;
  sfixed32 offset = 6;
  uint32 leaves = 7;
  fixed32 seeds = 8;
  int64 age = 9;
  sint64 drift = 10;
  sfixed64 stamp = 11;
  uint64 cells = 12;
  fixed64 atoms = 13;
  bool alive = 14;
  bytes photo = 15;
  Shade shade = 16;
  repeated Shade shades = 17;
  repeated Tree children = 18;
  map<string, Tree> grafts = 19;
  map<string, int32> counts = 20;
  string path = 21;
}
"#,
    )
    .unwrap();
    let config = dir.join("forest.hcl");
    std::fs::write(
        &config,
        r#"
protobuffers = ["./*.proto"]

http {
  address = ":8080"
}

endpoint "plant" "http" {
  endpoint       = "/trees/:id"
  method         = "PUT"
  status         = 201
  request_codec  = "proto"
  response_codec = "form-urlencoded"
}

endpoint "plant" "http" {
  endpoint = "/forest/*path"
  method   = "POST"
}

endpoint "fell" "http" {
  endpoint = "/trees/:id"
  method   = "DELETE"
}

flow "plant" {
  input "kinds.Tree" {}

  output "kinds.Tree" {
    id = "{{ input:id }}"
  }
}

flow "fell" {
  input "kinds.Tree" {}
}
"#,
    )
    .unwrap();
    config
}

#[test]
fn every_field_kind_maps_to_its_json_schema_and_recursion_is_a_ref() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_kinds_config(dir.path());
    let document = generate(&config, &["--title", "Forest", "--version", "2.1.0"]);
    assert_eq!(document["info"], json!({ "title": "Forest", "version": "2.1.0" }));
    assert_eq!(document["servers"], json!([{ "url": "http://localhost:8080" }]));

    let tree = &document["components"]["schemas"]["kinds.Tree"]["properties"];
    let int32 = json!({ "type": "integer", "format": "int32" });
    let uint32 = json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u32 });
    let int64 = json!({ "type": "integer", "format": "int64" });
    for (field, schema) in [
        ("id", json!({ "type": "string" })),
        ("height", json!({ "type": "number", "format": "double" })),
        ("girth", json!({ "type": "number", "format": "float" })),
        ("rings", int32.clone()),
        ("tilt", int32.clone()),
        ("offset", int32.clone()),
        ("leaves", uint32.clone()),
        ("seeds", uint32),
        ("age", int64.clone()),
        ("drift", int64.clone()),
        ("stamp", int64.clone()),
        ("cells", int64.clone()),
        ("atoms", int64),
        ("alive", json!({ "type": "boolean" })),
        ("photo", json!({ "type": "string", "format": "byte" })),
        ("shade", json!({ "type": "string", "enum": ["DARK", "LIGHT"] })),
        ("shades", json!({ "type": "array", "items": { "type": "string", "enum": ["DARK", "LIGHT"] } })),
        ("children", json!({ "type": "array", "items": schema_ref("kinds.Tree") })),
        ("grafts", json!({ "type": "object", "additionalProperties": schema_ref("kinds.Tree") })),
        ("counts", json!({ "type": "object", "additionalProperties": int32 })),
    ] {
        assert_eq!(tree[field], schema, "field {field}");
    }
    let schemas: Vec<&String> = document["components"]["schemas"].as_object().unwrap().keys().collect();
    assert_eq!(schemas, ["kinds.Tree"], "map entries are not schemas of their own");

    let put = &document["paths"]["/trees/{id}"]["put"];
    assert_eq!(put["operationId"], "plant");
    assert_eq!(put["requestBody"]["content"]["application/protobuf"]["schema"], schema_ref("kinds.Tree"));
    assert_eq!(
        put["responses"]["201"]["content"]["application/x-www-form-urlencoded"]["schema"],
        schema_ref("kinds.Tree")
    );

    let post = &document["paths"]["/forest/{path}"]["post"];
    assert_eq!(post["operationId"], "plant_2", "operation ids stay unique");
    assert_eq!(post["parameters"][0]["name"], "path");
    assert_eq!(post["parameters"][0]["in"], "path");

    let delete = &document["paths"]["/trees/{id}"]["delete"];
    assert_eq!(delete["operationId"], "fell");
    assert!(delete.get("requestBody").is_none());
    let query: Vec<&str> = delete["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    // Messages and maps cannot be written as query text; `id` comes from the path.
    assert_eq!(
        query,
        [
            "height", "girth", "rings", "tilt", "offset", "leaves", "seeds", "age", "drift", "stamp",
            "cells", "atoms", "alive", "photo", "shade", "shades", "path"
        ]
    );
    assert_eq!(
        delete["responses"]["200"]["content"]["application/json"]["schema"],
        json!({ "type": "object" }),
        "a flow without output answers {{}}"
    );
}

#[test]
fn yaml_to_a_file_is_the_same_document() {
    let dir = tempfile::tempdir().unwrap();
    let config = workspace_root().join("examples/checkout/config.hcl");
    let file = dir.path().join("openapi.yaml");
    let output = semaphore(&[
        "generate",
        "openapi3",
        config.to_str().unwrap(),
        "--format",
        "yaml",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty());
    let yaml: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(yaml, generate(&config, &[]));
}

#[test]
fn a_configuration_that_does_not_compile_or_an_unwritable_output_is_an_error() {
    let output = semaphore(&["generate", "openapi3", "no-such-config.hcl"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("could not compile no-such-config.hcl"));

    let config = workspace_root().join("examples/getuser/config.hcl");
    let output =
        semaphore(&["generate", "openapi3", config.to_str().unwrap(), "-o", "/no-such-dir/openapi.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("error: cannot write /no-such-dir/openapi.json"));
}

/// `OPENAPI_SPEC_VALIDATOR` (which `cargo xtask test` sets), else the one in the workspace's
/// `.venv`.
fn validator() -> PathBuf {
    let validator = match std::env::var_os("OPENAPI_SPEC_VALIDATOR") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join(".venv/bin/openapi-spec-validator"),
    };
    assert!(
        validator.is_file(),
        "openapi-spec-validator is not installed ({} does not exist): run `cargo xtask test`, or \
         `cargo xtask setup`, which install it into the workspace's .venv",
        validator.display()
    );
    validator
}

fn configs(pattern: &str) -> Vec<PathBuf> {
    let pattern = workspace_root().join(pattern);
    let found: Vec<PathBuf> = glob::glob(pattern.to_str().unwrap()).unwrap().map(Result::unwrap).collect();
    assert!(!found.is_empty(), "nothing matches {}", pattern.display());
    found
}

#[test]
fn openapi_spec_validator_accepts_every_generated_document() {
    let validator = validator();
    let dir = tempfile::tempdir().unwrap();
    let mut configs: Vec<PathBuf> = [
        "examples/*/config.hcl",
        "compiler/tests/fixtures/pass/*.hcl",
        "compiler/tests/fixtures/seeds/*.hcl",
    ]
    .iter()
    .flat_map(|pattern| configs(pattern))
    .collect();
    configs.push(write_kinds_config(dir.path()));

    let mut documents = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        for format in ["json", "yaml"] {
            let document = dir.path().join(format!("{index}.{format}"));
            let output = semaphore(&[
                "generate",
                "openapi3",
                config.to_str().unwrap(),
                "--format",
                format,
                "-o",
                document.to_str().unwrap(),
            ]);
            assert!(
                output.status.success(),
                "{}: {}",
                config.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            documents.push(document);
        }
    }

    let output = Command::new(&validator).args(&documents).output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let listing: Vec<String> =
        configs.iter().enumerate().map(|(index, config)| format!("{index}: {}", config.display())).collect();
    assert!(
        output.status.success(),
        "openapi-spec-validator rejects a document ({}):\n{report}{}",
        listing.join(", "),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report.lines().filter(|line| line.ends_with(": OK")).count(), documents.len(), "{report}");
}

/// An endpoint that writes 64-bit integers as strings answers schemas of its own saying so;
/// what it reads (either form) keeps the default schemas.
#[test]
fn int64_as_string_endpoints_answer_string_schemas() {
    let dir = tempfile::tempdir().unwrap();
    write_kinds_config(dir.path());
    let config = dir.path().join("strings.hcl");
    std::fs::write(
        &config,
        r#"
protobuffers = ["./*.proto"]

endpoint "grow" "http" {
  endpoint        = "/trees"
  method          = "POST"
  int64_as_string = true
}

flow "grow" {
  input "kinds.Tree" {}

  output "kinds.Tree" {
    age = "{{ input:age }}"
  }
}
"#,
    )
    .unwrap();
    let document = generate(&config, &[]);
    let post = &document["paths"]["/trees"]["post"];
    assert_eq!(post["requestBody"]["content"]["application/json"]["schema"], schema_ref("kinds.Tree"));
    assert_eq!(
        post["responses"]["200"]["content"]["application/json"]["schema"],
        schema_ref("kinds.Tree.Int64AsString")
    );
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["kinds.Tree"]["properties"]["age"], json!({ "type": "integer", "format": "int64" }));
    let strings = &schemas["kinds.Tree.Int64AsString"]["properties"];
    assert_eq!(strings["age"], json!({ "type": "string", "format": "int64" }));
    assert_eq!(strings["rings"], json!({ "type": "integer", "format": "int32" }));
    assert_eq!(strings["children"]["items"], schema_ref("kinds.Tree.Int64AsString"));
}
