//! The GraphQL schema as documents: its `__schema` introspection answer (which the plan carries
//! for the filter to answer introspection queries from) and its SDL (`semaphore generate
//! graphql`), printed from that same answer so that the two never disagree.
//!
//! In `__schema.types` every type is whole; wherever a type is referred to (a field's `type`,
//! `ofType`, `queryType`) it is `{kind, name, ofType}` only, which the filter completes from
//! `types` when a query selects more of it.

use serde_json::{json, Value};

/// The scalar 64-bit integers (and `uint32`) are: written as a string, read from a string or an
/// integer.
pub const INT64: &str = "Int64";
const INT64_DESCRIPTION: &str = "A 64-bit integer (or an unsigned 32-bit one), written as a string as \
     protobuf's JSON mapping writes it; a string or an integer is accepted as input.";

/// A reference to a type, as introspection writes it.
#[derive(Clone, Debug)]
pub struct TypeRef(Value);

impl TypeRef {
    pub fn named(kind: &str, name: &str) -> TypeRef {
        TypeRef(json!({"kind": kind, "name": name, "ofType": null}))
    }

    pub fn object(name: &str) -> TypeRef {
        TypeRef::named("OBJECT", name)
    }

    pub fn list(of: TypeRef) -> TypeRef {
        TypeRef(json!({"kind": "LIST", "name": null, "ofType": of.0}))
    }

    pub fn non_null(of: TypeRef) -> TypeRef {
        TypeRef(json!({"kind": "NON_NULL", "name": null, "ofType": of.0}))
    }
}

pub fn object_type(name: &str, fields: Vec<Value>) -> Value {
    json!({
        "kind": "OBJECT", "name": name, "description": null, "specifiedByURL": null,
        "fields": fields, "inputFields": null, "interfaces": [], "enumValues": null,
        "possibleTypes": null, "isOneOf": null,
    })
}

pub fn field(name: &str, type_ref: TypeRef, args: Vec<Value>) -> Value {
    json!({
        "name": name, "description": null, "args": args, "type": type_ref.0,
        "isDeprecated": false, "deprecationReason": null,
    })
}

pub fn input_value(name: &str, type_ref: TypeRef) -> Value {
    input_value_with_default(name, type_ref, None)
}

fn input_value_with_default(name: &str, type_ref: TypeRef, default: Option<&str>) -> Value {
    json!({
        "name": name, "description": null, "type": type_ref.0, "defaultValue": default,
        "isDeprecated": false, "deprecationReason": null,
    })
}

pub fn enum_type(name: &str, values: &[String]) -> Value {
    let values: Vec<Value> = values
        .iter()
        .map(|v| json!({"name": v, "description": null, "isDeprecated": false, "deprecationReason": null}))
        .collect();
    json!({
        "kind": "ENUM", "name": name, "description": null, "specifiedByURL": null, "fields": null,
        "inputFields": null, "interfaces": null, "enumValues": values, "possibleTypes": null,
        "isOneOf": null,
    })
}

pub fn input_object_type(name: &str, fields: Vec<Value>) -> Value {
    json!({
        "kind": "INPUT_OBJECT", "name": name, "description": null, "specifiedByURL": null,
        "fields": null, "inputFields": fields, "interfaces": null, "enumValues": null,
        "possibleTypes": null, "isOneOf": false,
    })
}

fn scalar_type(name: &str, description: Option<&str>) -> Value {
    json!({
        "kind": "SCALAR", "name": name, "description": description, "specifiedByURL": null,
        "fields": null, "inputFields": null, "interfaces": null, "enumValues": null,
        "possibleTypes": null, "isOneOf": null,
    })
}

/// `__schema`: the schema's own types, the built-in scalars, introspection's types and the
/// standard directives.
pub fn schema_document(
    mut types: Vec<Value>,
    query: &str,
    mutation: Option<&str>,
    uses_int64: bool,
) -> Value {
    for scalar in ["String", "Int", "Float", "Boolean"] {
        types.push(scalar_type(scalar, None));
    }
    if uses_int64 {
        types.push(scalar_type(INT64, Some(INT64_DESCRIPTION)));
    }
    types.extend(introspection_types());
    json!({
        "description": null,
        "queryType": TypeRef::object(query).0,
        "mutationType": mutation.map(|m| TypeRef::object(m).0),
        "subscriptionType": null,
        "types": types,
        "directives": directives(),
    })
}

fn nn(of: TypeRef) -> TypeRef {
    TypeRef::non_null(of)
}

fn scalar(name: &str) -> TypeRef {
    TypeRef::named("SCALAR", name)
}

fn list_of(name_kind: (&str, &str)) -> TypeRef {
    TypeRef::list(nn(TypeRef::named(name_kind.0, name_kind.1)))
}

fn include_deprecated() -> Vec<Value> {
    vec![input_value_with_default("includeDeprecated", scalar("Boolean"), Some("false"))]
}

/// The types introspection itself is made of, as the GraphQL specification defines them.
fn introspection_types() -> Vec<Value> {
    let plain = |name: &str, t: TypeRef| field(name, t, Vec::new());
    let ty = || TypeRef::object("__Type");
    vec![
        object_type(
            "__Schema",
            vec![
                plain("description", scalar("String")),
                plain("types", nn(list_of(("OBJECT", "__Type")))),
                plain("queryType", nn(ty())),
                plain("mutationType", ty()),
                plain("subscriptionType", ty()),
                plain("directives", nn(list_of(("OBJECT", "__Directive")))),
            ],
        ),
        object_type(
            "__Type",
            vec![
                plain("kind", nn(TypeRef::named("ENUM", "__TypeKind"))),
                plain("name", scalar("String")),
                plain("description", scalar("String")),
                plain("specifiedByURL", scalar("String")),
                field("fields", list_of(("OBJECT", "__Field")), include_deprecated()),
                plain("interfaces", list_of(("OBJECT", "__Type"))),
                plain("possibleTypes", list_of(("OBJECT", "__Type"))),
                field("enumValues", list_of(("OBJECT", "__EnumValue")), include_deprecated()),
                field("inputFields", list_of(("OBJECT", "__InputValue")), include_deprecated()),
                plain("ofType", ty()),
                plain("isOneOf", scalar("Boolean")),
            ],
        ),
        enum_type(
            "__TypeKind",
            &["SCALAR", "OBJECT", "INTERFACE", "UNION", "ENUM", "INPUT_OBJECT", "LIST", "NON_NULL"]
                .map(String::from),
        ),
        object_type(
            "__Field",
            vec![
                plain("name", nn(scalar("String"))),
                plain("description", scalar("String")),
                field("args", nn(list_of(("OBJECT", "__InputValue"))), include_deprecated()),
                plain("type", nn(ty())),
                plain("isDeprecated", nn(scalar("Boolean"))),
                plain("deprecationReason", scalar("String")),
            ],
        ),
        object_type(
            "__InputValue",
            vec![
                plain("name", nn(scalar("String"))),
                plain("description", scalar("String")),
                plain("type", nn(ty())),
                plain("defaultValue", scalar("String")),
                plain("isDeprecated", nn(scalar("Boolean"))),
                plain("deprecationReason", scalar("String")),
            ],
        ),
        object_type(
            "__EnumValue",
            vec![
                plain("name", nn(scalar("String"))),
                plain("description", scalar("String")),
                plain("isDeprecated", nn(scalar("Boolean"))),
                plain("deprecationReason", scalar("String")),
            ],
        ),
        object_type(
            "__Directive",
            vec![
                plain("name", nn(scalar("String"))),
                plain("description", scalar("String")),
                plain("isRepeatable", nn(scalar("Boolean"))),
                plain("locations", nn(list_of(("ENUM", "__DirectiveLocation")))),
                field("args", nn(list_of(("OBJECT", "__InputValue"))), include_deprecated()),
            ],
        ),
        enum_type(
            "__DirectiveLocation",
            &[
                "QUERY",
                "MUTATION",
                "SUBSCRIPTION",
                "FIELD",
                "FRAGMENT_DEFINITION",
                "FRAGMENT_SPREAD",
                "INLINE_FRAGMENT",
                "VARIABLE_DEFINITION",
                "SCHEMA",
                "SCALAR",
                "OBJECT",
                "FIELD_DEFINITION",
                "ARGUMENT_DEFINITION",
                "INTERFACE",
                "UNION",
                "ENUM",
                "ENUM_VALUE",
                "INPUT_OBJECT",
                "INPUT_FIELD_DEFINITION",
            ]
            .map(String::from),
        ),
    ]
}

fn directives() -> Vec<Value> {
    let condition = |name: &str, description: &str| {
        json!({
            "name": name, "description": description, "isRepeatable": false,
            "locations": ["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"],
            "args": [input_value("if", nn(scalar("Boolean")))],
        })
    };
    vec![
        condition(
            "include",
            "Directs the executor to include this field or fragment only when the `if` argument is true.",
        ),
        condition(
            "skip",
            "Directs the executor to skip this field or fragment when the `if` argument is true.",
        ),
        json!({
            "name": "deprecated", "description": "Marks an element of a GraphQL schema as no longer supported.",
            "isRepeatable": false,
            "locations": ["FIELD_DEFINITION", "ARGUMENT_DEFINITION", "INPUT_FIELD_DEFINITION", "ENUM_VALUE"],
            "args": [input_value_with_default("reason", scalar("String"), Some("\"No longer supported\""))],
        }),
    ]
}

/// The schema in GraphQL's schema definition language, from its `__schema` document: the
/// schema's own types, without the built-in scalars, introspection's types and directives.
pub fn sdl(schema: &Value) -> String {
    let mut out = String::new();
    let root =
        |key: &str| schema.get(key).and_then(|t| t.get("name")).and_then(Value::as_str).map(str::to_string);
    let (query, mutation) = (root("queryType"), root("mutationType"));
    // Printed only when the roots are not named as the specification's convention names them.
    if query.as_deref() != Some("Query") || mutation.as_deref().is_some_and(|m| m != "Mutation") {
        out.push_str("schema {\n");
        if let Some(query) = &query {
            out.push_str(&format!("  query: {query}\n"));
        }
        if let Some(mutation) = &mutation {
            out.push_str(&format!("  mutation: {mutation}\n"));
        }
        out.push_str("}\n\n");
    }
    let types = schema.get("types").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for ty in types {
        let name = ty.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.starts_with("__") || matches!(name, "String" | "Int" | "Float" | "Boolean" | "ID") {
            continue;
        }
        if let Some(description) = ty.get("description").and_then(Value::as_str) {
            out.push_str(&format!("\"\"\"{description}\"\"\"\n"));
        }
        match ty.get("kind").and_then(Value::as_str).unwrap_or_default() {
            "SCALAR" => out.push_str(&format!("scalar {name}\n\n")),
            "ENUM" => {
                out.push_str(&format!("enum {name} {{\n"));
                for value in ty.get("enumValues").and_then(Value::as_array).into_iter().flatten() {
                    out.push_str(&format!(
                        "  {}\n",
                        value.get("name").and_then(Value::as_str).unwrap_or_default()
                    ));
                }
                out.push_str("}\n\n");
            }
            "INPUT_OBJECT" => {
                out.push_str(&format!("input {name} {{\n"));
                for field in ty.get("inputFields").and_then(Value::as_array).into_iter().flatten() {
                    out.push_str(&format!("  {}\n", input_value_sdl(field)));
                }
                out.push_str("}\n\n");
            }
            _ => {
                out.push_str(&format!("type {name} {{\n"));
                for field in ty.get("fields").and_then(Value::as_array).into_iter().flatten() {
                    let field_name = field.get("name").and_then(Value::as_str).unwrap_or_default();
                    let args: Vec<String> = field
                        .get("args")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(input_value_sdl)
                        .collect();
                    let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
                    let type_name = type_sdl(field.get("type").unwrap_or(&Value::Null));
                    out.push_str(&format!("  {field_name}{args}: {type_name}\n"));
                }
                out.push_str("}\n\n");
            }
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

fn input_value_sdl(value: &Value) -> String {
    let name = value.get("name").and_then(Value::as_str).unwrap_or_default();
    let type_name = type_sdl(value.get("type").unwrap_or(&Value::Null));
    match value.get("defaultValue").and_then(Value::as_str) {
        Some(default) => format!("{name}: {type_name} = {default}"),
        None => format!("{name}: {type_name}"),
    }
}

fn type_sdl(type_ref: &Value) -> String {
    let of = || type_sdl(type_ref.get("ofType").unwrap_or(&Value::Null));
    match type_ref.get("kind").and_then(Value::as_str) {
        Some("NON_NULL") => format!("{}!", of()),
        Some("LIST") => format!("[{}]", of()),
        _ => type_ref.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
    }
}
