//! GraphQL endpoints, through the real filter in a real Envoy: queries projecting the flows'
//! outputs, aliases, fragments, variables, namespaces, mutations run in order, errors per field,
//! validation errors, limits, GET, and introspection checked by graphql-core (GraphQL's
//! reference implementation, from PyPI), which builds a client schema from it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use semaphore_e2e::{http_client, start_semaphore, workspace_root, Envoy, Reply, Upstream};
use serde_json::{json, Value};

const CONFIG: &str = "tests/fixtures/graphql/config.hcl";

/// The accounts upstream: user 7 exists, `s<status>` answers that status, `slow<ms>` waits.
fn accounts() -> Upstream {
    Upstream::builder()
        .route("GET", "/users/{id}", |request| {
            let id = request.param("id").unwrap_or_default().to_string();
            if let Some(status) = id.strip_prefix('s').and_then(|s| s.parse().ok()) {
                return Reply::json(status, json!({ "message": format!("status {status} for you") }));
            }
            let user = json!({
                "id": id, "name": "Ada", "visits": 9007199254740993u64, "tags": ["a", "b"],
                "role": "ADMIN", "address": {"city": "London", "country": "UK"},
                "labels": {"team": "core"}, "previous": [{"city": "Paris"}, {"city": "Rome"}]
            });
            match id.strip_prefix("slow").and_then(|s| s.parse().ok()) {
                Some(ms) => Reply::json(200, user).delay(Duration::from_millis(ms)),
                None if id == "7" || id == "8" => Reply::json(200, user),
                None => Reply::json(404, json!({ "message": format!("no user {id}") })),
            }
        })
        .route("POST", "/users", |request| {
            let body = request.body_json().unwrap_or_default();
            let name = body["name"].as_str().unwrap_or_default().to_string();
            let reply = Reply::json(201, json!({ "id": format!("u-{name}"), "position": name.len() }));
            if name == "slow" {
                reply.delay(Duration::from_millis(300))
            } else if name == "broken" {
                Reply::json(409, json!({ "message": "taken" }))
            } else {
                reply
            }
        })
        .start()
}

async fn start(upstream: &Upstream) -> Envoy {
    start_semaphore(CONFIG, &[("accounts.v1.Users", upstream.addr())]).await.unwrap()
}

/// POSTs `body` to `/graphql`: the status, the content type and the JSON answer.
async fn post(envoy: &Envoy, body: Value) -> (u16, String, Value) {
    let response = http_client().post(envoy.url("/graphql")).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    (status, content_type, response.json().await.unwrap())
}

async fn query(envoy: &Envoy, document: &str) -> Value {
    let (status, content_type, body) = post(envoy, json!({ "query": document })).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    body
}

#[tokio::test]
async fn a_query_projects_each_flow_output_on_its_selection() {
    let upstream = accounts();
    let envoy = start(&upstream).await;

    let body = query(
        &envoy,
        r#"
        query {
          user(id: "7") { id name visits tags role ...Where labels { key value } previous { city } }
          other: user(id: "8") { __typename name }
          accounts { __typename ping { _empty } user(id: "7") { name } }
        }
        fragment Where on User { address { city ... on User_address { country } } }
        "#,
    )
    .await;
    assert_eq!(
        body,
        json!({"data": {
            "user": {
                "id": "7", "name": "Ada", "visits": "9007199254740993", "tags": ["a", "b"], "role": "ADMIN",
                "address": {"city": "London", "country": "UK"},
                "labels": [{"key": "team", "value": "core"}], "previous": [{"city": "Paris"}, {"city": "Rome"}]
            },
            "other": {"__typename": "User", "name": "Ada"},
            "accounts": {"__typename": "Query_accounts", "ping": {"_empty": null}, "user": {"name": "Ada"}}
        }})
    );
    // Response keys keep the order the query asked them in.
    let text = http_client()
        .post(envoy.url("/graphql"))
        .json(&json!({"query": r#"{ z: user(id: "7") { role id } a: user(id: "8") { name } }"#}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, r#"{"data":{"z":{"role":"ADMIN","id":"7"},"a":{"name":"Ada"}}}"#);
    let paths: Vec<String> = upstream.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 5, "{paths:?}");
    assert!(paths.iter().all(|p| p == "/users/7" || p == "/users/8"), "{paths:?}");

    // The same flow over its HTTP endpoint.
    let http: Value = http_client().get(envoy.url("/users/7")).send().await.unwrap().json().await.unwrap();
    assert_eq!(http["name"], "Ada");
}

#[tokio::test]
async fn variables_operation_names_and_get_requests() {
    let upstream = accounts();
    let envoy = start(&upstream).await;
    let document =
        "query A($id: String!) { user(id: $id) { name } } query B { accounts { user(id: \"8\") { id } } }";

    let (status, _, body) =
        post(&envoy, json!({"query": document, "operationName": "A", "variables": {"id": "7"}})).await;
    assert_eq!((status, body), (200, json!({"data": {"user": {"name": "Ada"}}})));

    let (_, _, body) = post(&envoy, json!({"query": document})).await;
    assert_eq!(
        body,
        json!({"errors": [{"message": "Must provide operation name if query contains multiple operations."}]})
    );

    let (_, _, body) = post(&envoy, json!({"query": document, "operationName": "A"})).await;
    assert_eq!(
        body,
        json!({"errors": [{"message": "Variable \"$id\" of required type \"String!\" was not provided.", "locations": [{"line": 1, "column": 9}]}]})
    );

    let response = http_client()
        .get(envoy.url("/graphql"))
        .query(&[("query", document), ("operationName", "B")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"data": {"accounts": {"user": {"id": "8"}}}}));

    // A mutation is refused over GET, which must not change anything.
    let response = http_client()
        .get(envoy.url("/graphql"))
        .query(&[("query", r#"mutation { createUser(name: "x") { id } }"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(upstream.requests().iter().all(|r| r.method != "POST"));
}

#[tokio::test]
async fn query_fields_run_at_once_and_mutations_one_after_the_other() {
    let upstream = accounts();
    let envoy = start(&upstream).await;

    let body = query(&envoy, r#"{ a: user(id: "slow300") { id } b: user(id: "slow300") { id } }"#).await;
    assert_eq!(body, json!({"data": {"a": {"id": "slow300"}, "b": {"id": "slow300"}}}));
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let apart = requests[1].received_at.duration_since(requests[0].received_at);
    assert!(apart < Duration::from_millis(250), "the second call waited for the first: {apart:?}");

    let body = query(
        &envoy,
        r#"mutation {
          first: createUser(name: "slow", role: ADMIN, address: {city: "Oslo"}, tags: ["x"], visits: "12") { id position }
          second: createUser(name: "quick") { id }
        }"#,
    )
    .await;
    assert_eq!(
        body,
        json!({"data": {"first": {"id": "u-slow", "position": 4}, "second": {"id": "u-quick"}}})
    );
    let posts: Vec<_> = upstream.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].body_json().unwrap(),
        json!({"name": "slow", "role": "ADMIN", "address": {"city": "Oslo"}, "tags": ["x"], "visits": 12})
    );
    assert_eq!(posts[1].body_json().unwrap(), json!({"name": "quick", "tags": []}));
    let apart = posts[1].received_at.duration_since(posts[0].received_at);
    assert!(
        apart >= Duration::from_millis(300),
        "the second mutation started before the first answered: {apart:?}"
    );
}

#[tokio::test]
async fn a_failed_field_is_null_with_its_error_and_the_others_answer() {
    let upstream = accounts();
    let envoy = start(&upstream).await;

    let body =
        query(&envoy, "{\n  ok: user(id: \"7\") { name }\n  missing: user(id: \"9\") { name }\n}").await;
    assert_eq!(
        body,
        json!({
            "errors": [{
                "message": "resource `user`: upstream answered 404: no user 9", "locations": [{"line": 3, "column": 3}], "path": ["missing"],
                "extensions": {"status": 404}
            }],
            "data": {"ok": {"name": "Ada"}, "missing": null}
        })
    );

    let body = query(
        &envoy,
        r#"mutation { a: createUser(name: "broken") { id } b: createUser(name: "fine") { id } }"#,
    )
    .await;
    assert_eq!(body["data"], json!({"a": null, "b": {"id": "u-fine"}}));
    assert_eq!(body["errors"][0]["path"], json!(["a"]));
    assert_eq!(body["errors"][0]["extensions"], json!({"status": 409}));
}

#[tokio::test]
async fn invalid_documents_are_refused_before_any_flow_runs() {
    let upstream = accounts();
    let envoy = start(&upstream).await;
    let cases = [
        ("{ user(id: \"7\") { nope } }", "Cannot query field \"nope\" on type \"User\".", 1, 19),
        ("{ user(id: \"7\") }", "Field \"user\" of type \"User\" must have a selection of subfields. Did you mean \"user { ... }\"?", 1, 3),
        ("{ user(id: \"7\") { name { x } } }", "Field \"name\" must not have a selection since it has no subfields.", 1, 19),
        ("{ user(ids: \"7\") { name } }", "Unknown argument \"ids\" on field \"Query.user\".", 1, 3),
        ("{ user(id: 7) { name } }", "Argument \"id\": String cannot represent 7.", 1, 3),
        ("{ user(id: \"7\") { ...F } }", "Unknown fragment \"F\".", 1, 19),
        ("{ user(id: \"7\") { name }", "Syntax Error: Expected Name, found <EOF>.", 1, 25),
        ("subscription { user { id } }", "Schema is not configured for subscriptions.", 1, 1),
    ];
    for (document, message, line, column) in cases {
        let body = query(&envoy, document).await;
        assert_eq!(
            body,
            json!({"errors": [{"message": message, "locations": [{"line": line, "column": column}]}]}),
            "{document}"
        );
    }
    assert!(upstream.requests().is_empty());

    // As the specification's own media type, they are 400.
    let response = http_client()
        .post(envoy.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({"query": "{ nope }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/graphql-response+json");

    // Not a GraphQL request at all.
    let response = http_client().post(envoy.url("/graphql")).body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = http_client()
        .post(envoy.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{ a }")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn limits_bound_how_much_a_query_selects() {
    let upstream = accounts();
    let envoy = start(&upstream).await;
    // The fixture allows 40 fields...
    let many: String = (0..41).map(|i| format!("f{i}: __typename ")).collect();
    let body = query(&envoy, &format!("{{ {many} }}")).await;
    assert_eq!(body["errors"][0]["message"], "The query selects more than 40 fields.");
    let body = query(&envoy, "query { accounts { accounts: __typename } }").await;
    assert_eq!(body, json!({"data": {"accounts": {"accounts": "Query_accounts"}}}));
    let cyclic = "{ user(id: \"7\") { ...A } } fragment A on User { ...B } fragment B on User { ...A }";
    let body = query(&envoy, cyclic).await;
    assert_eq!(body["errors"][0]["message"], "Cannot spread fragment \"A\" within itself.");
    let chain: String = (0..40).map(|i| format!("fragment F{i} on User {{ ...F{} }} ", i + 1)).collect();
    let body =
        query(&envoy, &format!("{{ user(id: \"7\") {{ ...F0 }} }} {chain} fragment F40 on User {{ id }}"))
            .await;
    assert_eq!(body["errors"][0]["message"], "Fragments spread more than 32 deep.");
    // And 3 levels.
    let body = query(&envoy, r#"{ accounts { user(id: "7") { address { city } } } }"#).await;
    assert_eq!(body["errors"][0]["message"], "The query nests deeper than 3 levels.");
    assert_eq!(body["errors"][0]["locations"], json!([{"line": 1, "column": 40}]));
    assert!(upstream.requests().is_empty());
}

/// graphql-core's Python, which `cargo xtask test` names in `GRAPHQL_PYTHON`.
fn graphql_python() -> PathBuf {
    let python = std::env::var_os("GRAPHQL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(python.is_file(), "no Python with graphql-core at {}: run `cargo xtask setup`", python.display());
    python
}

#[tokio::test]
async fn introspection_builds_a_client_schema_that_checks_queries_and_matches_the_sdl() {
    let upstream = accounts();
    let envoy = start(&upstream).await;
    // What `semaphore generate graphql` prints.
    let compiled = semaphore_compiler::compile_file(&workspace_root().join(CONFIG)).unwrap();
    let sdl = semaphore_compiler::graphql::sdl(compiled.graphql.as_ref().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let sdl_path = dir.path().join("schema.graphql");
    std::fs::write(&sdl_path, sdl).unwrap();

    // graphql-core asks its own introspection query, the one its clients send, and builds a
    // schema from the answer; that schema checks queries as the server does.
    let script = r#"
import json, sys, urllib.request
from graphql import (build_client_schema, build_ast_schema, get_introspection_query, parse,
                     print_schema, validate)

url, sdl_path = sys.argv[1], sys.argv[2]
query = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                schema_description=True, input_value_deprecation=True)
request = urllib.request.Request(url, json.dumps({"query": query}).encode(), {"content-type": "application/json"})
answer = json.load(urllib.request.urlopen(request))
assert "errors" not in answer, answer
schema = build_client_schema(answer["data"])
good = 'query($id: String) { user(id: $id) { name visits role address { city } labels { key value } } accounts { ping { _empty } } }'
assert validate(schema, parse(good)) == [], validate(schema, parse(good))
bad = validate(schema, parse('{ user { nope } }'))
print(json.dumps([e.message for e in bad]))
mutation = 'mutation { createUser(name: "a", role: MEMBER, address: {city: "x"}, visits: "1") { id position } }'
assert validate(schema, parse(mutation)) == [], validate(schema, parse(mutation))
from_sdl = build_ast_schema(parse(open(sdl_path).read()))
assert print_schema(schema) == print_schema(from_sdl), (print_schema(schema), print_schema(from_sdl))
"#;
    let output = Command::new(graphql_python())
        .args(["-c", script, &envoy.url("/graphql"), sdl_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let messages: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(messages, json!(["Cannot query field 'nope' on type 'User'. Did you mean 'name' or 'role'?"]));

    // `__type` and `__typename` answer too.
    let body =
        query(&envoy, r#"{ __typename __type(name: "User_Role") { kind enumValues { name } } }"#).await;
    assert_eq!(
        body,
        json!({"data": {"__typename": "Query", "__type": {"kind": "ENUM", "enumValues": [{"name": "GUEST"}, {"name": "MEMBER"}, {"name": "ADMIN"}]}}})
    );
    let body = query(
        &envoy,
        r#"{ __type(name: "User") { fields { name type { kind ofType { name fields { name } } } } } }"#,
    )
    .await;
    assert_eq!(
        body["data"]["__type"]["fields"][7],
        json!({"name": "previous", "type": {"kind": "LIST", "ofType": {"name": null, "fields": null}}})
    );
}

#[tokio::test]
async fn an_introspection_query_that_grows_without_bound_is_refused() {
    let upstream = accounts();
    let envoy = start(&upstream).await;
    // An introspection query of a usual size answers.
    let nested = "name fields { name type { ofType { name } } args { type { name } } }";
    let body = query(&envoy, &format!("{{ __schema {{ types {{ {nested} }} }} }}")).await;
    assert!(body["data"]["__schema"]["types"].as_array().is_some_and(|t| t.len() > 20), "{body}");

    // Introspection's own types refer to each other (`__Type.fields` are `__Field`s whose
    // `type` is a `__Type`): a query can go round for as long as its text does.
    let mut exploding = String::from("name");
    for _ in 0..6 {
        exploding = format!(
            "name fields {{ type {{ {exploding} ofType {{ {exploding} ofType {{ {exploding} }} }} }} }}"
        );
    }
    let body = query(&envoy, &format!("{{ __schema {{ types {{ {exploding} }} }} }}")).await;
    assert_eq!(body["errors"][0]["message"], "The introspection answer would hold more than 100000 values.");
}

#[tokio::test]
async fn introspection_switched_off_is_refused_and_queries_still_answer() {
    let upstream = accounts();
    let envoy =
        start_semaphore("tests/fixtures/graphql/closed.hcl", &[("accounts.v1.Users", upstream.addr())])
            .await
            .unwrap();
    let body = query(&envoy, "{ __schema { types { name } } }").await;
    assert_eq!(
        body,
        json!({"errors": [{
            "message": "GraphQL introspection is not allowed here: the schema turns it off.",
            "locations": [{"line": 1, "column": 3}]
        }]})
    );
    let body = query(&envoy, r#"{ __type(name: "User") { name } }"#).await;
    assert_eq!(
        body["errors"][0]["message"],
        "GraphQL introspection is not allowed here: the schema turns it off."
    );
    let body = query(&envoy, r#"{ __typename user(id: "7") { name } }"#).await;
    assert_eq!(body, json!({"data": {"__typename": "Query", "user": {"name": "Ada"}}}));
}

#[tokio::test]
async fn documents_built_to_cost_more_than_their_size_are_cut_short() {
    let upstream = accounts();
    let envoy = start(&upstream).await;

    // Each fragment spreads the one before twice: spread once per selection set, as the
    // specification collects fields, this is n fragments' worth of work, not 2^n; and more
    // than 32 are more than a chain may hold.
    let chain = |n: usize| {
        let mut document =
            format!("{{ accounts {{ ...F{} }} }} fragment F0 on Query_accounts {{ __typename }}", n - 1);
        for i in 1..n {
            document.push_str(&format!(" fragment F{i} on Query_accounts {{ ...F{} ...F{} }}", i - 1, i - 1));
        }
        document
    };
    let body = query(&envoy, &chain(32)).await;
    assert_eq!(body, json!({"data": {"accounts": {"__typename": "Query_accounts"}}}));
    let body = query(&envoy, &chain(33)).await;
    assert_eq!(body["errors"][0]["message"], "Fragments spread more than 32 deep.");

    // A fragment that spreads itself inside a field of its own is a cycle too.
    let cycle = r#"{ __type(name: "__Type") { ...F } } fragment F on __Type { name fields { type { ...F } } ofType { ...F } }"#;
    let body = query(&envoy, cycle).await;
    assert_eq!(body["errors"][0]["message"], "Cannot spread fragment \"F\" within itself.");

    // The fixture lets one request run 5 flows.
    let six: String = (0..6).map(|i| format!("u{i}: user(id: \"7\") {{ id }} ")).collect();
    let body = query(&envoy, &format!("{{ {six} }}")).await;
    assert_eq!(body["errors"][0]["message"], "The query runs more than 5 flows.");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn a_client_cannot_mark_its_request_as_the_graphql_listeners() {
    let upstream = accounts();
    let envoy = start(&upstream).await;
    // The fixture has no `graphql { address }`: the mark means nothing, and the path is the
    // router's (which has no route for it).
    let response = http_client()
        .post(envoy.url("/users/7"))
        .header("x-semaphore-graphql-listener", "true")
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405, "the HTTP endpoint's GET route, not GraphQL");
}
