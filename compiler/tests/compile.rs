//! The compiler on whole configurations: what a correct one becomes, and how mistakes are told.

use std::path::{Path, PathBuf};

use semaphore_compiler::compile_file;
use semaphore_plan::{Segment, ValueKind};

fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Writes `files` into a fresh directory beside a copy of the getuser proto, and compiles
/// `config.hcl` there.
fn compile_with(files: &[(&str, &str)]) -> Result<semaphore_compiler::Compiled, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proto")).unwrap();
    std::fs::copy(workspace("examples/getuser/proto/users.proto"), dir.path().join("proto/users.proto"))
        .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    compile_file(&dir.path().join("config.hcl"))
        .map_err(|d| d.rendered.replace(&dir.path().display().to_string(), "DIR"))
}

const HEADER: &str = r#"
protobuffers = ["./proto/*.proto"]
services {
  select "proto.*" {
    host = "http://users.svc:9090"
  }
}
"#;

#[test]
fn the_getuser_example_compiles_into_its_plan() {
    let compiled = compile_file(&workspace("examples/getuser/config.hcl")).unwrap();
    assert_eq!(compiled.listener.address.as_deref(), Some("127.0.0.1:8080"));
    let plan = &compiled.plan;
    assert_eq!(plan.services.len(), 1);
    assert_eq!(plan.services[0].name, "proto.Users");
    assert_eq!(plan.services[0].cluster, "127.0.0.1:9090");
    assert_eq!(plan.endpoints.len(), 1);
    assert_eq!(plan.endpoints[0].method, "GET");
    assert_eq!(plan.endpoints[0].route, "/user/:id");
    let flow = &plan.flows[0];
    assert_eq!(flow.name, "GetUser");
    assert_eq!(plan.messages[flow.input as usize].name, "proto.Query");
    let call = flow.nodes[0].call.as_ref().unwrap();
    assert_eq!(call.http_method, "GET");
    assert_eq!(call.path[1].segment, Some(Segment::Param("id".into())));
    let id = call.request.as_ref().unwrap().fields[0].value.as_ref().unwrap();
    let Some(ValueKind::Reference(reference)) = &id.kind else { panic!("{id:?}") };
    assert_eq!((reference.slot, reference.path.as_slice()), (0, ["id".to_string()].as_slice()));
    assert!(compiled.warnings.is_empty(), "{}", compiled.warnings);
}

#[test]
fn the_test_fixtures_compile() {
    compile_file(&workspace("tests/fixtures/shop/config.hcl")).unwrap();
}

#[test]
fn semaphores_earlier_payload_spelling_compiles_to_the_same_plan() {
    let current = compile_file(&workspace("tests/fixtures/compat/grpc/config.hcl")).unwrap();
    let earlier = compile_file(&workspace("tests/fixtures/compat/grpc-payload/config.hcl")).unwrap();
    assert_eq!(earlier.plan.flows, current.plan.flows);
    assert_eq!(earlier.plan.endpoints, current.plan.endpoints);
    assert_eq!(earlier.plan.messages, current.plan.messages);
    assert_eq!(earlier.warnings, "", "{}", earlier.warnings);
}

#[test]
fn a_service_without_a_host_says_where_to_set_one() {
    let config = "protobuffers = [\"./proto/*.proto\"]\nflow \"F\" {\n  resource \"u\" {\n    request \"proto.Users\" \"Get\" {}\n  }\n}\n";
    let rendered = compile_with(&[("config.hcl", config)]).unwrap_err();
    assert!(rendered.contains("service `proto.Users` has no host"), "{rendered}");
    assert!(rendered.contains("select \"proto.*\""), "{rendered}");
}

#[test]
fn includes_resolve_relative_to_the_including_file_and_daemon_blocks_warn() {
    let config = format!("{HEADER}\ninclude = [\"flows/*.hcl\"]\nprometheus {{\n  address = \":5000\"\n}}\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proto")).unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::copy(workspace("examples/getuser/proto/users.proto"), dir.path().join("proto/users.proto"))
        .unwrap();
    std::fs::write(dir.path().join("config.hcl"), config).unwrap();
    std::fs::copy(workspace("examples/getuser/flow.hcl"), dir.path().join("flows/getuser.hcl")).unwrap();
    let compiled = compile_file(&dir.path().join("config.hcl")).unwrap();
    assert_eq!(compiled.plan.flows.len(), 1);
    assert_eq!(compiled.plan.endpoints.len(), 1);
    assert!(
        compiled.warnings.contains("`prometheus` configures the standalone daemon"),
        "{}",
        compiled.warnings
    );
}

#[test]
fn environment_variables_expand_in_strings() {
    std::env::set_var("SEMAPHORE_TEST_USERS_HOST", "http://users.from.env:7000");
    let config = "protobuffers = [\"./proto/*.proto\"]\nservices {\n  select \"proto.*\" {\n    host = \"$SEMAPHORE_TEST_USERS_HOST\"\n  }\n}\nflow \"F\" {\n  input \"proto.Query\" {}\n  resource \"u\" {\n    request \"proto.Users\" \"Get\" {\n      id = \"{{ input:id }}\"\n    }\n  }\n}\n";
    let compiled = compile_with(&[("config.hcl", config)]).unwrap();
    assert_eq!(compiled.plan.services[0].cluster, "users.from.env:7000");
}

#[test]
fn xml_is_a_codec_of_endpoints_and_services() {
    let config = "protobuffers = [\"./proto/*.proto\"]\nservices {\n  select \"proto.*\" {\n    host = \"http://users.svc:9090\"\n    codec = \"xml\"\n  }\n}\nendpoint \"F\" \"http\" {\n  endpoint = \"/f\"\n  method = \"POST\"\n  codec = \"xml\"\n}\nflow \"F\" {\n  input \"proto.Query\" {}\n  resource \"u\" {\n    request \"proto.Users\" \"Get\" {\n      id = \"{{ input:id }}\"\n    }\n  }\n}\n";
    let plan = compile_with(&[("config.hcl", config)]).unwrap().plan;
    let xml = semaphore_plan::Codec::Xml as i32;
    assert_eq!((plan.services[0].request_codec, plan.services[0].response_codec), (xml, xml));
    assert_eq!((plan.endpoints[0].request_codec, plan.endpoints[0].response_codec), (xml, xml));
}

#[test]
fn a_proxy_compiles_with_its_forward_and_a_bootstrap_route_to_reach_it() {
    use semaphore_compiler::envoy::{bootstrap, EnvoyOptions};
    let options = EnvoyOptions {
        wasm: "semaphore_filter.wasm".into(),
        listen: None,
        admin: "127.0.0.1:9901".into(),
        upstream_overrides: Default::default(),
        ..Default::default()
    };
    let language = compile_file(&workspace("compiler/tests/fixtures/pass/language.hcl")).unwrap();
    let proxy = language.plan.flows.iter().find(|flow| flow.name == "files").unwrap();
    let forward = proxy.forward.as_ref().unwrap();
    assert_eq!(language.plan.services[forward.service as usize].name, "catalog.Items");
    assert_eq!(forward.headers[0].name, "x-item");
    assert_eq!(forward.rewrites[0].anchored_pattern(), "^(?:/files/(?P<path>.*))$");

    let yaml: serde_json::Value = serde_norway::from_str(&bootstrap(&language, &options)).unwrap();
    let routes = &yaml["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"];
    let header = semaphore_plan::FORWARD_CLUSTER_HEADER;
    let hop = semaphore_plan::GRPC_HOP_CLUSTER;
    assert_eq!(
        routes,
        &serde_json::json!([
            {
                "name": hop,
                "match": { "prefix": "/", "headers": [{ "name": header, "string_match": { "exact": hop } }] },
                "route": { "cluster": hop, "timeout": "0s" },
                "request_headers_to_remove": [header],
            },
            {
                "name": "semaphore_forward",
                "match": { "prefix": "/", "headers": [{ "name": header, "present_match": true }] },
                "route": { "cluster_header": header },
                "request_headers_to_remove": [header],
            }
        ]),
        "only requests that carry the header, which never goes upstream; the gRPC hop's first"
    );
    // The gRPC endpoint's hop: an internal listener running the same filter, and its cluster.
    let listeners = &yaml["static_resources"]["listeners"];
    assert_eq!(listeners[1]["name"], hop);
    assert_eq!(listeners[1]["internal_listener"], serde_json::json!({}));
    let inner = &listeners[1]["filter_chains"][0]["filters"][0]["typed_config"];
    let outer = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(inner["http_filters"][0], outer["http_filters"][0], "the same filter and plan");
    assert_eq!(inner["route_config"]["virtual_hosts"][0]["routes"], serde_json::json!([]));
    let clusters = yaml["static_resources"]["clusters"].as_array().unwrap();
    let cluster = clusters.iter().find(|c| c["name"] == hop).unwrap();
    assert_eq!(
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
        serde_json::json!({ "envoy_internal_address": { "server_listener_name": hop } })
    );
    assert_eq!(yaml["bootstrap_extensions"][0]["name"], "envoy.bootstrap.internal_listener");

    let getuser = compile_file(&workspace("examples/getuser/config.hcl")).unwrap();
    assert!(bootstrap(&getuser, &options).contains("routes: []"), "no proxy, no route");
}

/// What the filter cannot serve is left out of the plan, and only that.
#[test]
fn unservable_endpoints_and_flows_are_left_out_of_the_plan() {
    let routes = |fixture: &str| {
        let compiled =
            compile_file(&workspace(&format!("compiler/tests/fixtures/pass/{fixture}.hcl"))).unwrap();
        let flows: Vec<String> = compiled.plan.flows.iter().map(|f| f.name.clone()).collect();
        let endpoints: Vec<String> =
            compiled.plan.endpoints.iter().map(|e| format!("{} {}", e.method, e.route)).collect();
        (flows, endpoints)
    };
    assert_eq!(
        routes("unservable_endpoints"),
        (vec!["item".to_string()], vec!["GET /items/:id".to_string()])
    );
    for fixture in ["unservable_transport", "unservable_service_codec"] {
        assert_eq!(
            routes(fixture),
            (vec!["other".to_string()], vec!["GET /other/:id".to_string()]),
            "{fixture}"
        );
    }
}

#[test]
fn values_referenced_with_the_fields_own_type_are_marked_typed() {
    let config = format!(
        r#"{HEADER}
endpoint "user" "http" {{
  endpoint = "/user/:id"
  method   = "GET"
}}

flow "user" {{
  input "proto.Query" {{
    header = ["X-User"]
  }}

  resource "user" {{
    request "proto.Users" "Get" {{
      id = "{{{{ input:id }}}}"
    }}
  }}

  output "proto.User" {{
    id       = "{{{{ user:id }}}}"
    name     = "Dr. {{{{ user:name }}}}"
    username = "{{{{ input.header:X-User }}}}"
    email    = "{{{{ user:email }}}}"
  }}
}}
"#
    );
    let compiled = compile_with(&[("config.hcl", &config)]).unwrap();
    let flow = &compiled.plan.flows[0];
    let output = flow.output.as_ref().and_then(|o| o.body.as_ref()).unwrap();
    let typed: Vec<(u32, bool)> = output.fields.iter().map(|f| (f.field, f.typed)).collect();
    // A plain reference to text is typed as held; an interpolation builds new text. A header
    // is text too, read from the request's headers.
    assert_eq!(typed, [(0, true), (1, false), (2, true), (3, true)]);
    let request = flow.nodes[0].call.as_ref().and_then(|c| c.request.as_ref()).unwrap();
    assert!(request.fields[0].typed);
}

/// `endpoint "<flow>" "grpc" { package service method }` is the method
/// `/<package>.<service>/<method>`, in protobuf; what is missing or malformed is named.
/// One flow, `user`, over the getuser proto.
const USER_FLOW: &str = r#"
flow "user" {
  input "proto.Query" {}
  resource "user" {
    request "proto.Users" "Get" {
      id = "{{ input:id }}"
    }
  }
  output "proto.User" {
    name = "{{ user:name }}"
  }
}
"#;

#[test]
fn grpc_endpoints_are_methods_of_a_service() {
    let config = |endpoints: &str| format!("{HEADER}{endpoints}{USER_FLOW}");
    let compiled = compile_with(&[(
        "config.hcl",
        &config(
            r#"
endpoint "user" "grpc" {
  package = "people.v1"
  service = "Directory"
  method  = "GetUser"
}
endpoint "user" "grpc" {
  service = "Plain"
  method  = "Get"
}
"#,
        ),
    )])
    .unwrap();
    let endpoints: Vec<(semaphore_plan::EndpointKind, &str, &str)> =
        compiled.plan.endpoints.iter().map(|e| (e.kind(), e.method.as_str(), e.route.as_str())).collect();
    let grpc = semaphore_plan::EndpointKind::Grpc;
    let reflection = semaphore_plan::EndpointKind::GrpcReflection;
    assert_eq!(
        endpoints,
        [
            (grpc, "POST", "/people.v1.Directory/GetUser"),
            (grpc, "POST", "/Plain/Get"),
            (reflection, "POST", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            (reflection, "POST", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
        ]
    );
    let proto = semaphore_plan::Codec::Proto as i32;
    assert!(compiled.plan.endpoints.iter().all(|e| e.request_codec == proto && e.response_codec == proto));

    // Reflection: each served service in a file of its own, named after it, that imports the
    // files of its messages; every file with all it imports, each once.
    let reflection = compiled.plan.reflection.as_ref().unwrap();
    let names: Vec<&str> = reflection.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "google/protobuf/descriptor.proto",
            "api/annotations.proto",
            "users.proto",
            "Plain.proto",
            "people.v1.Directory.proto"
        ]
    );
    let directory = &reflection.files[4];
    assert_eq!(directory.imports, [0, 1, 2]);
    assert_eq!(directory.symbols, ["people.v1.Directory.GetUser", "people.v1.Directory"]);
    let file = <prost_types::FileDescriptorProto as prost::Message>::decode(directory.descriptor.as_slice())
        .unwrap();
    assert_eq!(file.package(), "people.v1");
    assert_eq!(file.dependency, ["users.proto"]);
    let method = &file.service[0].method[0];
    assert_eq!((method.input_type(), method.output_type()), (".proto.Query", ".proto.User"));
    assert!(reflection.files[2].symbols.contains(&"proto.User".to_string()));

    let refused = compile_with(&[(
        "config.hcl",
        &config(
            r#"
endpoint "user" "grpc" {
  package = "people.v1"
  method  = "GetUser"
}
endpoint "user" "grpc" {
  package = "people-v1"
  service = "Directory"
  method  = "GetUser"
}
endpoint "user" "grpc" {
  package = "people.v1"
  service = "Directory"
  method  = "GetUser"
}
endpoint "user" "grpc" {
  package = "people.v1"
  service = "Directory"
  method  = "GetUser"
}
"#,
        ),
    )])
    .unwrap_err();
    assert!(refused.contains("error: grpc endpoint without `service`"), "{refused}");
    assert!(refused.contains("error: `people-v1` is not a protobuf package name"), "{refused}");
    assert!(
        refused.contains("error: two endpoints serve the gRPC method /people.v1.Directory/GetUser"),
        "{refused}"
    );
}

#[test]
fn graphql_endpoints_are_checked_where_they_are_written() {
    let cases = [
        ("endpoint \"user\" \"graphql\" {\n  base = \"subscription\"\n}\n", "unknown base `subscription`, expected `query` or `mutation`"),
        ("endpoint \"user\" \"graphql\" {\n  path = \"users.2nd\"\n}\n", "`2nd` is not a GraphQL field name"),
        ("endpoint \"user\" \"graphql\" {\n  name = \"__User\"\n}\n", "`__User` is not a GraphQL type name"),
        (
            "endpoint \"user\" \"graphql\" {}\nendpoint \"user\" \"graphql\" {\n  name = \"Other\"\n}\n",
            "two endpoints are the field `Query.user`",
        ),
        (
            "endpoint \"user\" \"graphql\" {\n  path = \"a.b\"\n}\nendpoint \"user\" \"graphql\" {\n  path = \"a.b.c\"\n  name = \"Other\"\n}\n",
            "`Query_a.b` is a flow's field, not a namespace",
        ),
        ("graphql {\n  path = \"graphql\"\n}\nendpoint \"user\" \"graphql\" {}\n", "`graphql` is not a plain HTTP path"),
        ("graphql {\n  max_depth = 0\n}\nendpoint \"user\" \"graphql\" {}\n", "`max_depth` must be a whole number from 1 to 64"),
    ];
    for (endpoints, message) in cases {
        let config = format!("{HEADER}{USER_FLOW}{endpoints}");
        let rendered = compile_with(&[("config.hcl", &config)]).unwrap_err();
        assert!(rendered.contains(message), "{endpoints}\n{rendered}");
    }

    // One name for two messages is refused, with what to change.
    let clash = format!(
        "{HEADER}{USER_FLOW}flow \"Q\" {{\n  input \"proto.Query\" {{}}\n  output \"proto.Query\" {{\n    id = \"{{{{ input:id }}}}\"\n  }}\n}}\nendpoint \"user\" \"graphql\" {{}}\nendpoint \"Q\" \"graphql\" {{\n  name = \"user\"\n}}\n"
    );
    let rendered = compile_with(&[("config.hcl", &clash)]).unwrap_err();
    assert!(rendered.contains("two different GraphQL types would be named `user`"), "{rendered}");
    assert!(rendered.contains("set the endpoint's `name`"), "{rendered}");

    // One flow at two paths shares its type.
    let twice = format!("{HEADER}{USER_FLOW}endpoint \"user\" \"graphql\" {{}}\nendpoint \"user\" \"graphql\" {{\n  path = \"again\"\n}}\n");
    let compiled = compile_with(&[("config.hcl", &twice)]).unwrap();
    let schema = compiled.plan.graphql.unwrap();
    let query = &schema.objects[schema.query as usize];
    assert_eq!(query.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["user", "again"]);
}
