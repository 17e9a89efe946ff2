//! Lowering GraphQL endpoints: every flow with `endpoint "<flow>" "graphql" { path base name }`
//! becomes a field of one schema, served at one HTTP path (`graphql { path }`, `/graphql`).
//!
//! Names follow Semaphore's GraphQL listener, so that clients' queries and fragments keep
//! working: a flow's field sits at its dotted `path` (the flow's name unless set) under `Query`
//! or `Mutation` (`base`); its type is named `name` (the flow's name unless set); a message
//! field's object type is `<parent>_<field>` and an enum `<parent>_<Enum>`. Namespaces of a
//! dotted path are `<parent>_<segment>` (Semaphore named them `<segment>`, which clashed across
//! roots). Arguments are the input message's fields; their message fields are input objects
//! named `<name>_input_<field>`. 64-bit integers (and `uint32`, which `Int` cannot hold) are the
//! `Int64` scalar, written as a string.
//!
//! The filter executes against `plan::Graphql`; the introspection answer and the SDL come from
//! the `__schema` document built here beside it (`crate::graphql`).

use std::collections::HashMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use semaphore_plan as plan;
use serde_json::Value;

use super::Lowering;
use crate::config::{EndpointDef, Literal, Spanned};
use crate::diagnostics::Span;
use crate::graphql::{self as document, TypeRef};

/// The HTTP path the schema is served at unless `graphql { path }` says otherwise.
pub const DEFAULT_PATH: &str = "/graphql";
pub const DEFAULT_MAX_DEPTH: u32 = 15;
pub const DEFAULT_MAX_FIELDS: u32 = 500;
pub const DEFAULT_MAX_FLOWS: u32 = 50;
/// The deepest `max_depth` may allow: the filter checks queries recursively.
pub const MAX_DEPTH: u32 = 64;

/// What the GraphQL endpoints come to: the schema the filter runs, the endpoints that serve it,
/// and its `__schema` document.
pub(super) struct Lowered {
    pub schema: plan::Graphql,
    pub endpoints: Vec<plan::Endpoint>,
    pub document: Value,
}

/// What a type name was given to, so that one name is one type.
#[derive(PartialEq, Clone)]
enum Named {
    Object(String),
    Input(String),
    Enum(String),
    Namespace,
    Root,
    /// The built-in scalars' names, and `Int64`.
    Scalar,
}

struct Builder {
    objects: Vec<plan::GraphqlObject>,
    /// `__schema.types`, but for the built-in scalars and introspection's own types.
    types: Vec<Value>,
    /// Index into `types` of each object type's entry, by object index.
    object_types: Vec<usize>,
    named: HashMap<String, (Named, usize)>,
    uses_int64: bool,
}

impl Lowering<'_> {
    pub(super) fn graphql(
        &mut self,
        flow_index: &HashMap<String, usize>,
        flows: &[plan::Flow],
    ) -> Option<Lowered> {
        let endpoints: Vec<&EndpointDef> =
            self.config.endpoints.iter().filter(|e| e.kind.value == "graphql").collect();
        if endpoints.is_empty() {
            if let Some(address) = &self.config.graphql.address {
                self.reporter
                    .warning(&address.span, "no flow has a graphql endpoint: there is no schema to serve")
                    .label("no listener written");
            }
            return None;
        }
        let mut builder = Builder {
            objects: Vec::new(),
            types: Vec::new(),
            object_types: Vec::new(),
            named: HashMap::new(),
            uses_int64: false,
        };
        for scalar in ["String", "Int", "Float", "Boolean", "ID", document::INT64, "Mutation"] {
            let named = if scalar == "Mutation" { Named::Root } else { Named::Scalar };
            builder.named.insert(scalar.to_string(), (named, usize::MAX));
        }
        let query = builder.object("Query", Named::Root);
        let mut mutation: Option<u32> = None;
        for endpoint in endpoints {
            let Some(&flow) = flow_index.get(&endpoint.flow.value) else { continue };
            let Some(plan_flow) = flows.get(flow) else { continue };
            if plan_flow.forward.is_some() {
                self.reporter
                    .warning(
                        &endpoint.kind.span,
                        "a proxy cannot be a GraphQL field: it forwards an HTTP request",
                    )
                    .label("endpoint skipped");
                continue;
            }
            let base = endpoint.base.as_ref().map(|b| b.value.as_str()).unwrap_or("query");
            let root = match base {
                "query" => query,
                "mutation" => *mutation.get_or_insert_with(|| builder.object("Mutation", Named::Root)),
                other => {
                    let span =
                        endpoint.base.as_ref().map(|b| b.span.clone()).unwrap_or(endpoint.span.clone());
                    self.reporter
                        .error(&span, format!("unknown base `{other}`, expected `query` or `mutation`"))
                        .label("not a GraphQL root");
                    continue;
                }
            };
            let path =
                endpoint.field_path.as_ref().map(|p| p.value.clone()).unwrap_or(endpoint.flow.value.clone());
            let path_span =
                endpoint.field_path.as_ref().map(|p| p.span.clone()).unwrap_or(endpoint.span.clone());
            let segments: Vec<&str> = path.split('.').collect();
            if let Some(bad) = segments.iter().find(|s| !is_name(s)) {
                self.reporter
                    .error(&path_span, format!("`{bad}` is not a GraphQL field name"))
                    .label("letters, digits and `_`, not starting with a digit or `__`");
                continue;
            }
            let name = endpoint.name.as_ref().map(|n| n.value.clone()).unwrap_or(endpoint.flow.value.clone());
            let name_span = endpoint.name.as_ref().map(|n| n.span.clone()).unwrap_or(endpoint.span.clone());
            if !is_name(&name) {
                self.reporter
                    .error(&name_span, format!("`{name}` is not a GraphQL type name"))
                    .label("letters, digits and `_`, not starting with a digit or `__`");
                continue;
            }
            let output =
                plan_flow.output.as_ref().and_then(|o| self.layouts.messages.get(o.message as usize));
            let output = output.and_then(|layout| self.schemas.message(&layout.name));
            let object = match &output {
                Some(message) => builder.output_object(self, &name, message, &mut Vec::new()),
                None => builder.empty_object(&name),
            };
            let Some(object) = object.map_err(|clash| self.clash(&name_span, &clash)).ok() else { continue };
            let input = self
                .layouts
                .messages
                .get(plan_flow.input as usize)
                .and_then(|layout| self.schemas.message(&layout.name));
            let args = match &input {
                Some(message) => message
                    .fields()
                    .map(|field| builder.input_value(&format!("{name}_input"), &field, &mut Vec::new()))
                    .collect::<Result<Vec<_>, String>>(),
                None => Ok(Vec::new()),
            };
            let Some(args) = args.map_err(|clash| self.clash(&name_span, &clash)).ok() else { continue };
            let field = plan::GraphqlField {
                name: String::new(),
                object: Some(object),
                source: Some(plan::GraphqlSource::Flow(flow as u32)),
            };
            let type_ref = TypeRef::object(&builder.objects[object as usize].name);
            if let Err(reason) = builder.place(root, &segments, field, type_ref, args) {
                self.reporter.error(&path_span, reason).label("field taken");
            }
        }
        builder.fill_empty(query);
        let options = &self.config.graphql;
        let introspection = self.option_bool(&options.introspection, "introspection", true)?;
        let max_depth = self.option_u32(&options.max_depth, "max_depth", DEFAULT_MAX_DEPTH, MAX_DEPTH)?;
        let max_fields = self.option_u32(&options.max_fields, "max_fields", DEFAULT_MAX_FIELDS, u32::MAX)?;
        let max_flows = self.option_u32(&options.max_flows, "max_flows", DEFAULT_MAX_FLOWS, u32::MAX)?;
        let path = self.config.graphql.path.as_ref().map(|p| p.value.clone()).unwrap_or(DEFAULT_PATH.into());
        if !path.starts_with('/') || path.contains(['?', '#', ':', '*']) {
            if let Some(spanned) = &self.config.graphql.path {
                self.reporter
                    .error(&spanned.span, format!("`{path}` is not a plain HTTP path"))
                    .label("e.g. \"/graphql\"");
            }
            return None;
        }
        let document = document::schema_document(
            builder.types,
            "Query",
            mutation.map(|_| "Mutation"),
            builder.uses_int64,
        );
        let schema = plan::Graphql {
            objects: builder.objects,
            query,
            mutation,
            introspection: if introspection { document.to_string().into_bytes() } else { Vec::new() },
            max_depth,
            max_fields,
            max_flows,
            own_listener: self.config.graphql.address.is_some(),
        };
        let endpoints = ["POST", "GET"]
            .map(|method| plan::Endpoint {
                method: method.into(),
                path: super::parse_path(&path),
                flow: u32::MAX,
                status: 200,
                request_codec: plan::Codec::Json as i32,
                response_codec: plan::Codec::Json as i32,
                route: path.clone(),
                int64_as_string: true,
                kind: plan::EndpointKind::Graphql as i32,
            })
            .into();
        Some(Lowered { schema, endpoints, document })
    }

    fn clash(&mut self, span: &Span, reason: &str) {
        self.reporter.error(span, reason.to_string()).label("GraphQL type names must be unique").note(
            "set the endpoint's `name` so that its output type (and the types named after it) \
             differ from the others'",
        );
    }

    /// A `graphql { }` setting that is true or false.
    fn option_bool(&mut self, literal: &Option<Spanned<Literal>>, name: &str, default: bool) -> Option<bool> {
        match literal {
            None => Some(default),
            Some(spanned) => match &spanned.value {
                Literal::Bool(value) => Some(*value),
                _ => {
                    self.reporter.error(&spanned.span, format!("`{name}` must be true or false"));
                    None
                }
            },
        }
    }

    /// A `graphql { }` setting that is a whole number from 1 to `most`.
    fn option_u32(
        &mut self,
        literal: &Option<Spanned<Literal>>,
        name: &str,
        default: u32,
        most: u32,
    ) -> Option<u32> {
        match literal {
            None => Some(default),
            Some(spanned) => match &spanned.value {
                Literal::Int(value) if *value > 0 && *value <= i64::from(most) => Some(*value as u32),
                _ => {
                    self.reporter
                        .error(&spanned.span, format!("`{name}` must be a whole number from 1 to {most}"));
                    None
                }
            },
        }
    }
}

impl Builder {
    /// A new object type without fields; `add_field` fills it and its `__schema` entry.
    fn object(&mut self, name: &str, named: Named) -> u32 {
        let index = self.objects.len() as u32;
        self.objects.push(plan::GraphqlObject { name: name.to_string(), fields: Vec::new() });
        self.object_types.push(self.types.len());
        self.types.push(document::object_type(name, Vec::new()));
        self.named.insert(name.to_string(), (named, index as usize));
        index
    }

    /// Claims `name` for `what`: `Ok(Some(index))` when it already is that type, `Ok(None)`
    /// when it is free, an error naming the clash otherwise.
    fn claim(&self, name: &str, what: &Named) -> Result<Option<usize>, String> {
        match self.named.get(name) {
            None => Ok(None),
            Some((existing, index)) if existing == what => Ok(Some(*index)),
            Some(_) => Err(format!("two different GraphQL types would be named `{name}`")),
        }
    }

    fn add_field(&mut self, object: u32, field: plan::GraphqlField, entry: Value) {
        if let Some(target) = self.objects.get_mut(object as usize) {
            target.fields.push(field);
        }
        let at = self.object_types.get(object as usize).copied().unwrap_or(usize::MAX);
        if let Some(fields) =
            self.types.get_mut(at).and_then(|t| t.get_mut("fields")).and_then(Value::as_array_mut)
        {
            fields.push(entry);
        }
    }

    /// The object type showing `message`, named `name`.
    fn output_object(
        &mut self,
        lowering: &mut Lowering,
        name: &str,
        message: &MessageDescriptor,
        ancestors: &mut Vec<(String, u32)>,
    ) -> Result<u32, String> {
        // A recursive message refers back to the type of its first appearance.
        if let Some((_, index)) = ancestors.iter().find(|(full, _)| full == message.full_name()) {
            return Ok(*index);
        }
        let named = Named::Object(message.full_name().to_string());
        if let Some(index) = self.claim(name, &named)? {
            return Ok(index as u32);
        }
        let object = self.object(name, named);
        ancestors.push((message.full_name().to_string(), object));
        for (index, field) in message.fields().enumerate() {
            let type_ref = self.output_type(lowering, name, &field, ancestors)?;
            self.add_field(
                object,
                plan::GraphqlField {
                    name: field.name().to_string(),
                    object: type_ref.object_index,
                    source: Some(plan::GraphqlSource::Field(index as u32)),
                },
                document::field(field.name(), type_ref.type_ref, Vec::new()),
            );
        }
        ancestors.pop();
        if message.fields().len() == 0 {
            self.fill_empty(object);
        }
        Ok(object)
    }

    /// A flow without an output shows an object with one field, `_empty`, always null, as
    /// Semaphore's did: GraphQL has no object types without fields.
    fn empty_object(&mut self, name: &str) -> Result<u32, String> {
        let named = Named::Object(String::new());
        if let Some(index) = self.claim(name, &named)? {
            return Ok(index as u32);
        }
        let object = self.object(name, named);
        self.fill_empty(object);
        Ok(object)
    }

    fn fill_empty(&mut self, object: u32) {
        if self.objects.get(object as usize).is_some_and(|o| o.fields.is_empty()) {
            self.add_field(
                object,
                plan::GraphqlField { name: "_empty".into(), object: None, source: None },
                document::field("_empty", TypeRef::named("SCALAR", "Boolean"), Vec::new()),
            );
        }
    }

    fn output_type(
        &mut self,
        lowering: &mut Lowering,
        parent: &str,
        field: &FieldDescriptor,
        ancestors: &mut Vec<(String, u32)>,
    ) -> Result<OutputType, String> {
        let (named, object_index) = match field.kind() {
            Kind::Message(message) => {
                let object =
                    self.output_object(lowering, &format!("{parent}_{}", field.name()), &message, ancestors)?;
                let name = self.objects.get(object as usize).map(|o| o.name.clone()).unwrap_or_default();
                (TypeRef::object(&name), Some(object))
            }
            Kind::Enum(descriptor) => (self.enum_type(parent, &descriptor)?, None),
            _ if is_map_key(field) => (TypeRef::named("SCALAR", "String"), None),
            kind => (self.scalar(&kind), None),
        };
        let type_ref =
            if field.is_list() || field.is_map() { TypeRef::list(TypeRef::non_null(named)) } else { named };
        Ok(OutputType { type_ref, object_index })
    }

    fn scalar(&mut self, kind: &Kind) -> TypeRef {
        let name = match kind {
            Kind::Double | Kind::Float => "Float",
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "Int",
            Kind::Bool => "Boolean",
            Kind::String | Kind::Bytes => "String",
            _ => {
                self.uses_int64 = true;
                document::INT64
            }
        };
        TypeRef::named("SCALAR", name)
    }

    fn enum_type(&mut self, parent: &str, descriptor: &EnumDescriptor) -> Result<TypeRef, String> {
        let name = format!("{parent}_{}", descriptor.name());
        let named = Named::Enum(descriptor.full_name().to_string());
        if self.claim(&name, &named)?.is_none() {
            self.named.insert(name.clone(), (named, usize::MAX));
            let values: Vec<String> = descriptor.values().map(|v| v.name().to_string()).collect();
            self.types.push(document::enum_type(&name, &values));
        }
        Ok(TypeRef::named("ENUM", &name))
    }

    /// An argument, or an input object's field, for `field` of a message under `parent`.
    fn input_value(
        &mut self,
        parent: &str,
        field: &FieldDescriptor,
        ancestors: &mut Vec<(String, String)>,
    ) -> Result<Value, String> {
        let named = match field.kind() {
            Kind::Message(message) => {
                let name = format!("{parent}_{}", field.name());
                TypeRef::named("INPUT_OBJECT", &self.input_object(&name, &message, ancestors)?)
            }
            Kind::Enum(descriptor) => self.enum_type(parent, &descriptor)?,
            _ if is_map_key(field) => TypeRef::named("SCALAR", "String"),
            kind => self.scalar(&kind),
        };
        let type_ref =
            if field.is_list() || field.is_map() { TypeRef::list(TypeRef::non_null(named)) } else { named };
        Ok(document::input_value(field.name(), type_ref))
    }

    fn input_object(
        &mut self,
        name: &str,
        message: &MessageDescriptor,
        ancestors: &mut Vec<(String, String)>,
    ) -> Result<String, String> {
        if let Some((_, name)) = ancestors.iter().find(|(full, _)| full == message.full_name()) {
            return Ok(name.clone());
        }
        let named = Named::Input(message.full_name().to_string());
        if self.claim(name, &named)?.is_some() {
            return Ok(name.to_string());
        }
        self.named.insert(name.to_string(), (named, usize::MAX));
        ancestors.push((message.full_name().to_string(), name.to_string()));
        let fields =
            message.fields().map(|f| self.input_value(name, &f, ancestors)).collect::<Result<Vec<_>, _>>()?;
        ancestors.pop();
        self.types.push(document::input_object_type(name, fields));
        Ok(name.to_string())
    }

    /// Puts a flow's field at its dotted path under `root`, opening namespaces on the way.
    fn place(
        &mut self,
        root: u32,
        segments: &[&str],
        mut field: plan::GraphqlField,
        type_ref: TypeRef,
        args: Vec<Value>,
    ) -> Result<(), String> {
        let mut object = root;
        let Some((last, namespaces)) = segments.split_last() else { return Err("empty path".into()) };
        for segment in namespaces {
            let parent = self.objects.get(object as usize).map(|o| o.name.clone()).unwrap_or_default();
            let existing =
                self.objects.get(object as usize).and_then(|o| o.fields.iter().find(|f| f.name == *segment));
            object = match existing {
                Some(plan::GraphqlField {
                    source: Some(plan::GraphqlSource::Namespace(_)),
                    object: Some(inner),
                    ..
                }) => *inner,
                Some(_) => return Err(format!("`{parent}.{segment}` is a flow's field, not a namespace")),
                None => {
                    let name = format!("{parent}_{segment}");
                    if self.claim(&name, &Named::Namespace)?.is_some() {
                        return Err(format!("two different GraphQL types would be named `{name}`"));
                    }
                    let inner = self.object(&name, Named::Namespace);
                    self.add_field(
                        object,
                        plan::GraphqlField {
                            name: segment.to_string(),
                            object: Some(inner),
                            source: Some(plan::GraphqlSource::Namespace(true)),
                        },
                        document::field(segment, TypeRef::object(&name), Vec::new()),
                    );
                    inner
                }
            };
        }
        let parent = self.objects.get(object as usize).map(|o| o.name.clone()).unwrap_or_default();
        if self.objects.get(object as usize).is_some_and(|o| o.fields.iter().any(|f| f.name == *last)) {
            return Err(format!("two endpoints are the field `{parent}.{last}`"));
        }
        field.name = last.to_string();
        self.add_field(object, field, document::field(last, type_ref, args));
        Ok(())
    }
}

struct OutputType {
    type_ref: TypeRef,
    object_index: Option<u32>,
}

/// A map entry's key: a string in GraphQL whatever its protobuf type, as JSON keys are.
fn is_map_key(field: &FieldDescriptor) -> bool {
    field.parent_message().is_map_entry() && field.number() == 1
}

/// A GraphQL name, not one of introspection's (`__`).
fn is_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}
