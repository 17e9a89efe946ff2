//! A parsed document checked against the plan's schema and made ready to run: the operation
//! picked, fragments and directives resolved, fields of one response key merged, arguments
//! typed into flow inputs, introspection answered. What is left to do at run time is to run
//! the flows and project their outputs (`respond.rs`).

use std::collections::{HashMap, HashSet};

use crate::engine::value::{Map, Value};
use semaphore_plan::{FieldLayout, Graphql, GraphqlSource, Kind, Plan};

use super::parse::{self, Directive, Document, OperationKind, Pos, Selection};
use super::GraphqlError;
use crate::engine::codec;

/// One key of a response object, and where its value comes from.
#[derive(Debug)]
pub struct Selected {
    pub key: String,
    pub what: Source,
}

#[derive(Debug)]
pub enum Source {
    /// `__typename`, or any value known before a flow runs (introspection's).
    Known(Value),
    /// The output of run `run` (index into `Prepared::runs`), projected.
    Flow { run: usize, children: Vec<Selected> },
    /// A namespace: an object of its own fields.
    Object(Vec<Selected>),
    /// A field of a flow's output message, by its name there.
    Field { name: String, leaf: Leaf, children: Vec<Selected> },
}

/// How a message field's value is written: as it is, or, for `Int64`, as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    Plain,
    Int64,
    /// A map: its object becomes a list of `{key, value}` entries.
    Map,
    Object,
}

/// A flow to run, with its input.
#[derive(Debug)]
pub struct Run {
    pub flow: usize,
    pub input: Map,
    /// The response path of its field, for its errors.
    pub path: Vec<String>,
    pub pos: Pos,
}

#[derive(Debug)]
pub struct Prepared {
    pub mutation: bool,
    pub selection: Vec<Selected>,
    /// In document order; a mutation's run one after the other.
    pub runs: Vec<Run>,
}

/// The compiler's `__schema` document, with its types indexed by name once per plan.
pub struct Introspection {
    pub document: Value,
    types: HashMap<String, usize>,
}

impl Introspection {
    pub fn new(document: Value) -> Introspection {
        let types = document
            .get("types")
            .and_then(Value::as_array)
            .map(|types| {
                types
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| Some((t.get("name")?.as_str()?.to_string(), i)))
                    .collect()
            })
            .unwrap_or_default();
        Introspection { document, types }
    }

    fn type_named(&self, name: &str) -> Option<&Value> {
        let index = *self.types.get(name)?;
        self.document.get("types")?.as_array()?.get(index)
    }
}

struct Context<'a> {
    plan: &'a Plan,
    schema: &'a Graphql,
    introspection: Option<&'a Introspection>,
    fragments: HashMap<&'a str, &'a parse::Fragment>,
    variables: Map,
    runs: Vec<Run>,
    fields: u32,
    /// Values the introspection answers hold so far.
    introspected: u32,
    /// Selections looked at so far, fragments' as often as they are spread.
    visited: u32,
}

type Checked<T> = Result<T, GraphqlError>;

/// A selection set's fields by response key, as they are collected.
struct Grouped<'a> {
    keys: HashMap<&'a str, usize>,
    fields: Vec<(String, Vec<&'a parse::Field>)>,
    /// Fragments spread in this selection set already.
    spread: HashSet<&'a str>,
}

/// How many fragments may spread one inside the other.
const MAX_SPREAD_CHAIN: usize = 32;
/// How deep a query may nest, whatever the schema allows: bounds the checker's recursion.
const MAX_DEPTH: u32 = 64;
/// How deep an introspection query may nest: the usual ones (`ofType` seven times) take 14.
const MAX_INTROSPECTION_DEPTH: u32 = 32;
/// Selections the checker looks at in one request: bounds its work whatever the document.
const MAX_VISITED: u32 = 200_000;
/// The most values an introspection answer may hold. Introspection is not bound by the
/// schema's limits, as clients' own introspection queries nest deeply, but a query that
/// selects `fields { type { fields ... } }` over and over grows its answer exponentially.
const MAX_INTROSPECTION_VALUES: u32 = 100_000;

fn error<T>(message: impl Into<String>, pos: Pos) -> Checked<T> {
    Err(GraphqlError::at(message, pos))
}

/// Checks and prepares the operation `operation_name` (the only one, when `None`).
// Apart from its one caller: see "Small functions" in the crate's documentation.
#[inline(never)]
pub fn prepare(
    plan: &Plan,
    schema: &Graphql,
    introspection: Option<&Introspection>,
    document: &Document,
    operation_name: Option<&str>,
    variables: Map,
) -> Checked<Prepared> {
    let fragments = check_fragments(document)?;
    let operation = match operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|o| o.name.as_deref() == Some(name))
            .ok_or_else(|| GraphqlError::new(format!("Unknown operation named \"{name}\".")))?,
        None => match document.operations.as_slice() {
            [only] => only,
            [] => return Err(GraphqlError::new("Must provide an operation.")),
            _ => {
                return Err(GraphqlError::new(
                    "Must provide operation name if query contains multiple operations.",
                ))
            }
        },
    };
    let root = match operation.kind {
        OperationKind::Query => schema.query,
        OperationKind::Mutation => match schema.mutation {
            Some(mutation) => mutation,
            None => return error("Schema is not configured for mutations.", operation.pos),
        },
        OperationKind::Subscription => {
            return error("Schema is not configured for subscriptions.", operation.pos)
        }
    };
    let mut context = Context {
        plan,
        schema,
        introspection,
        fragments,
        variables: Map::new(),
        runs: Vec::new(),
        fields: 0,
        introspected: 0,
        visited: 0,
    };
    context.variables = coerce_variables(operation, variables)?;
    let top: Vec<&Selection> = operation.selection.iter().collect();
    let selection = context.object(root, &top, &[], 1, operation.pos)?;
    Ok(Prepared { mutation: operation.kind == OperationKind::Mutation, selection, runs: context.runs })
}

/// The document's fragments by name, each defined once, none spreading itself (directly or
/// through others, anywhere in its selection), no chain of them longer than
/// `MAX_SPREAD_CHAIN`; operations named once each.
fn check_fragments(document: &Document) -> Checked<HashMap<&str, &parse::Fragment>> {
    let mut names = HashSet::new();
    for operation in &document.operations {
        if let Some(name) = &operation.name {
            if !names.insert(name.as_str()) {
                return error(format!("There can be only one operation named \"{name}\"."), operation.pos);
            }
        }
    }
    let mut fragments: HashMap<&str, &parse::Fragment> = HashMap::new();
    for fragment in &document.fragments {
        if fragments.insert(&fragment.name, fragment).is_some() {
            return Err(GraphqlError::new(format!(
                "There can be only one fragment named \"{}\".",
                fragment.name
            )));
        }
    }
    let spreads: HashMap<&str, Vec<(&str, Pos)>> = document
        .fragments
        .iter()
        .map(|f| {
            let mut found = Vec::new();
            spreads_in(&f.selection, &mut found);
            (f.name.as_str(), found)
        })
        .collect();
    let mut heights: HashMap<&str, usize> = HashMap::new();
    for fragment in &document.fragments {
        let mut path = Vec::new();
        chain_height(&fragment.name, &spreads, &mut path, &mut heights)?;
    }
    Ok(fragments)
}

/// The fragments a selection set spreads, at any depth.
fn spreads_in<'d>(selection: &'d [Selection], found: &mut Vec<(&'d str, Pos)>) {
    for item in selection {
        match item {
            Selection::Field(field) => spreads_in(&field.selection, found),
            Selection::Inline { selection, .. } => spreads_in(selection, found),
            Selection::Spread { name, pos, .. } => found.push((name, *pos)),
        }
    }
}

/// The longest chain of spreads from fragment `name`, itself included; a cycle, or a chain
/// longer than `MAX_SPREAD_CHAIN`, is refused. `heights` keeps each fragment's, so that each
/// is walked once.
fn chain_height<'d>(
    name: &'d str,
    spreads: &HashMap<&'d str, Vec<(&'d str, Pos)>>,
    path: &mut Vec<&'d str>,
    heights: &mut HashMap<&'d str, usize>,
) -> Checked<usize> {
    if let Some(&height) = heights.get(name) {
        return Ok(height);
    }
    path.push(name);
    let mut height = 1;
    for (inner, pos) in spreads.get(name).map(Vec::as_slice).unwrap_or_default() {
        if path.contains(inner) {
            return error(format!("Cannot spread fragment \"{inner}\" within itself."), *pos);
        }
        // Bounds the recursion too, whatever order the fragments are met in.
        if path.len() >= MAX_SPREAD_CHAIN {
            return error(format!("Fragments spread more than {MAX_SPREAD_CHAIN} deep."), *pos);
        }
        let below =
            if spreads.contains_key(inner) { chain_height(inner, spreads, path, heights)? } else { 0 };
        height = height.max(below + 1);
        if height > MAX_SPREAD_CHAIN {
            return error(format!("Fragments spread more than {MAX_SPREAD_CHAIN} deep."), *pos);
        }
    }
    path.pop();
    heights.insert(name, height);
    Ok(height)
}

/// The request's variables, with the operation's defaults; a required one must be there.
fn coerce_variables(operation: &parse::OperationDef, given: Map) -> Checked<Map> {
    let mut out = Map::new();
    for definition in &operation.variables {
        let value = match given.get(&definition.name) {
            Some(value) => value.clone(),
            None => match &definition.default {
                Some(default) => constant(default)?,
                None => Value::Null,
            },
        };
        if value.is_null() && definition.non_null {
            let verb =
                if given.contains_key(&definition.name) { "must not be null" } else { "was not provided" };
            return error(
                format!(
                    "Variable \"${}\" of required type \"{}\" {verb}.",
                    definition.name, definition.type_text
                ),
                definition.pos,
            );
        }
        out.insert(definition.name.clone(), value);
    }
    Ok(out)
}

/// A default value, which holds no variables, as JSON.
fn constant(value: &parse::Value) -> Checked<Value> {
    let empty = Map::new();
    to_json(value, &empty, Pos::default())
}

/// A GraphQL value as JSON, its variables replaced; enum values become their names.
fn to_json(value: &parse::Value, variables: &Map, pos: Pos) -> Checked<Value> {
    Ok(match value {
        parse::Value::Variable(name) => match variables.get(name) {
            Some(value) => value.clone(),
            None => return error(format!("Variable \"${name}\" is not defined."), pos),
        },
        parse::Value::Int(text) => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => match text.parse::<u64>() {
                Ok(n) => Value::from(n),
                // Beyond 64 bits: kept as text for the field's type to refuse with its range.
                Err(_) => Value::String(text.clone()),
            },
        },
        // As a JSON variable's number is read, which `str::parse` would not always agree with in
        // the last digit.
        parse::Value::Float(text) => codec::float_from_text(text)
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        parse::Value::String(text) => Value::String(text.clone()),
        parse::Value::Boolean(b) => Value::Bool(*b),
        parse::Value::Null => Value::Null,
        parse::Value::Enum(name) => Value::String(name.clone()),
        parse::Value::List(items) => {
            Value::Array(items.iter().map(|item| to_json(item, variables, pos)).collect::<Checked<_>>()?)
        }
        parse::Value::Object(fields) => {
            let mut object = Map::new();
            for (key, value) in fields {
                object.insert(key.clone(), to_json(value, variables, pos)?);
            }
            Value::Object(object)
        }
    })
}

impl<'a> Context<'a> {
    fn object_name(&self, object: u32) -> &str {
        self.schema.objects.get(object as usize).map(|o| o.name.as_str()).unwrap_or("")
    }

    /// Whether `@skip` and `@include` let a selection in.
    fn included(&self, directives: &[Directive]) -> Checked<bool> {
        for directive in directives {
            let wanted = match directive.name.as_str() {
                "skip" => false,
                "include" => true,
                other => return error(format!("Unknown directive \"@{other}\"."), directive.pos),
            };
            let condition = directive.arguments.iter().find(|(name, _)| name == "if").map(|(_, v)| v);
            let Some(condition) = condition else {
                return error(
                    format!("Directive \"@{}\" argument \"if\" of type \"Boolean!\" is required, but it was not provided.", directive.name),
                    directive.pos,
                );
            };
            match to_json(condition, &self.variables, directive.pos)? {
                Value::Bool(value) if value != wanted => return Ok(false),
                Value::Bool(_) => {}
                other => {
                    return error(
                        format!("Boolean cannot represent a non boolean value: {}", codec::json_text(&other)),
                        directive.pos,
                    )
                }
            }
        }
        Ok(true)
    }

    /// The fields a selection set selects on an object named `type_name`, fragments spread
    /// (each once, as the specification's CollectFields does), grouped by response key in the
    /// order they first appear.
    fn collect(
        &mut self,
        type_name: &str,
        selection: &[&'a Selection],
    ) -> Checked<Vec<(String, Vec<&'a parse::Field>)>> {
        let mut grouped = Grouped { keys: HashMap::new(), fields: Vec::new(), spread: HashSet::new() };
        self.collect_into(type_name, selection.iter().copied(), &mut grouped)?;
        Ok(grouped.fields)
    }

    fn collect_into(
        &mut self,
        type_name: &str,
        selection: impl Iterator<Item = &'a Selection>,
        into: &mut Grouped<'a>,
    ) -> Checked<()> {
        for item in selection {
            self.visited += 1;
            if self.visited > MAX_VISITED {
                return Err(GraphqlError::new(format!(
                    "The query is too large to check: it selects more than {MAX_VISITED} times."
                )));
            }
            match item {
                Selection::Field(field) => {
                    if !self.included(&field.directives)? {
                        continue;
                    }
                    match into.keys.get(field.key()) {
                        Some(&index) => {
                            if let Some((_, fields)) = into.fields.get_mut(index) {
                                fields.push(field);
                            }
                        }
                        None => {
                            if into.fields.len() >= self.schema.max_fields as usize {
                                let max = self.schema.max_fields;
                                return error(
                                    format!("The query selects more than {max} fields."),
                                    field.pos,
                                );
                            }
                            into.keys.insert(field.key(), into.fields.len());
                            into.fields.push((field.key().to_string(), vec![field]));
                        }
                    }
                }
                Selection::Inline { type_condition, directives, selection, pos } => {
                    if let Some(condition) = type_condition {
                        self.check_condition(type_name, condition, None, *pos)?;
                    }
                    if self.included(directives)? {
                        self.collect_into(type_name, selection.iter(), into)?;
                    }
                }
                Selection::Spread { name, directives, pos } => {
                    let Some(&fragment) = self.fragments.get(name.as_str()) else {
                        return error(format!("Unknown fragment \"{name}\"."), *pos);
                    };
                    self.check_condition(type_name, &fragment.type_condition, Some(name), *pos)?;
                    if !into.spread.insert(&fragment.name) {
                        continue;
                    }
                    if self.included(directives)? && self.included(&fragment.directives)? {
                        self.collect_into(type_name, fragment.selection.iter(), into)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_condition(
        &self,
        type_name: &str,
        condition: &str,
        fragment: Option<&str>,
        pos: Pos,
    ) -> Checked<()> {
        if condition == type_name {
            return Ok(());
        }
        let known = self.schema.objects.iter().any(|o| o.name == condition)
            || self.introspection_type(condition).is_some();
        let what = fragment.map(|f| format!("Fragment \"{f}\"")).unwrap_or_else(|| "Fragment".into());
        if known {
            error(
                format!("{what} cannot be spread here as objects of type \"{type_name}\" can never be of type \"{condition}\"."),
                pos,
            )
        } else {
            error(format!("Unknown type \"{condition}\"."), pos)
        }
    }

    fn count(&mut self, pos: Pos, depth: u32) -> Checked<()> {
        self.fields += 1;
        if self.fields > self.schema.max_fields {
            return error(format!("The query selects more than {} fields.", self.schema.max_fields), pos);
        }
        let max_depth = self.schema.max_depth.min(MAX_DEPTH);
        if depth > max_depth {
            return error(format!("The query nests deeper than {max_depth} levels."), pos);
        }
        Ok(())
    }

    /// A root or namespace object: its fields run flows, open namespaces, or introspect.
    fn object(
        &mut self,
        object: u32,
        selection: &[&'a Selection],
        path: &[String],
        depth: u32,
        pos: Pos,
    ) -> Checked<Vec<Selected>> {
        let schema = self.schema;
        let Some(definition) = schema.objects.get(object as usize) else {
            return error("the plan's GraphQL schema is inconsistent", pos);
        };
        let grouped = self.collect(&definition.name, selection)?;
        let root = object == schema.query || Some(object) == schema.mutation;
        let mut out = Vec::new();
        for (key, fields) in grouped {
            let Some(first) = same_field(&fields)? else { continue };
            self.count(first.pos, depth)?;
            let path: Vec<String> = path.iter().cloned().chain([key.clone()]).collect();
            let what = match first.name.as_str() {
                "__typename" => leaf_only(first, Source::Known(Value::String(definition.name.clone())))?,
                "__schema" | "__type" if root && object == schema.query => self.introspect(first, &fields)?,
                name => {
                    let Some(field) = definition.fields.iter().find(|f| f.name == name) else {
                        return error(
                            format!("Cannot query field \"{name}\" on type \"{}\".", definition.name),
                            first.pos,
                        );
                    };
                    let children: Vec<&'a Selection> = fields.iter().flat_map(|f| &f.selection).collect();
                    match (&field.source, field.object) {
                        (Some(GraphqlSource::Flow(flow)), Some(output)) => self.flow_field(
                            *flow as usize,
                            output,
                            &definition.name,
                            first,
                            &children,
                            path,
                            depth,
                        )?,
                        (Some(GraphqlSource::Namespace(_)), Some(inner)) => {
                            no_arguments(first)?;
                            needs_selection(first, self.object_name(inner), &children)?;
                            Source::Object(self.object(inner, &children, &path, depth + 1, first.pos)?)
                        }
                        _ => leaf_only(first, Source::Known(Value::Null))?,
                    }
                }
            };
            out.push(Selected { key, what });
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn flow_field(
        &mut self,
        flow: usize,
        output: u32,
        parent: &str,
        field: &parse::Field,
        children: &[&'a Selection],
        path: Vec<String>,
        depth: u32,
    ) -> Checked<Source> {
        let plan = self.plan;
        let Some(definition) = plan.flows.get(flow) else {
            return error("the plan's GraphQL schema names no flow", field.pos);
        };
        let mut input = Map::new();
        let layout = codec::message(plan, definition.input);
        for (name, value) in &field.arguments {
            let Some(argument) = layout.and_then(|l| l.fields.iter().find(|f| &f.name == name)) else {
                return error(
                    format!("Unknown argument \"{name}\" on field \"{parent}.{}\".", field.name),
                    field.pos,
                );
            };
            let json = to_json(value, &self.variables, field.pos)?;
            let json = self.input_value(argument, json, field.pos, name)?;
            if !json.is_null() {
                input.insert(name.clone(), json);
            }
        }
        let input = match codec::normalize_message(plan, definition.input, Value::Object(input), 0) {
            Ok(Value::Object(input)) => input,
            Ok(_) => Map::new(),
            Err(e) => {
                return error(format!("Argument of field \"{}\" is invalid: {e}", field.name), field.pos)
            }
        };
        let object_name = self.object_name(output).to_string();
        needs_selection(field, &object_name, children)?;
        let output_layout = definition.output.as_ref().map(|o| o.message);
        let run = self.runs.len();
        if run >= self.schema.max_flows as usize {
            return error(format!("The query runs more than {} flows.", self.schema.max_flows), field.pos);
        }
        self.runs.push(Run { flow, input, path, pos: field.pos });
        let children = self.message(output, output_layout, children, depth + 1, field.pos)?;
        Ok(Source::Flow { run, children })
    }

    /// An argument or input field's value checked against its type as GraphQL sees it: a
    /// map's entries become an object, enums are names, and scalars must be of their kind.
    fn input_value(&self, field: &FieldLayout, value: Value, pos: Pos, name: &str) -> Checked<Value> {
        if value.is_null() {
            return Ok(value);
        }
        if field.repeated {
            // A single value where a list is expected is a list of one, as GraphQL coerces it.
            let items = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            if field.map {
                let entries = codec::map_value_field(self.plan, field);
                let mut object = Map::new();
                for item in items {
                    let key = item.get("key").map(|k| match k {
                        Value::String(s) => s.clone(),
                        other => codec::json_text(other),
                    });
                    let (Some(key), Some(value_field)) = (key, entries) else {
                        return error(
                            format!("Argument \"{name}\" takes a list of {{key, value}} entries."),
                            pos,
                        );
                    };
                    let value = item.get("value").cloned().unwrap_or(Value::Null);
                    object.insert(key, self.single(value_field, value, pos, name)?);
                }
                return Ok(Value::Object(object));
            }
            return items
                .into_iter()
                .map(|item| self.single(field, item, pos, name))
                .collect::<Checked<_>>()
                .map(Value::Array);
        }
        self.single(field, value, pos, name)
    }

    fn single(&self, field: &FieldLayout, value: Value, pos: Pos, name: &str) -> Checked<Value> {
        let refuse = |what: &str| {
            let value = codec::json_text(&value);
            error(format!("Argument \"{name}\": {what} cannot represent {value}."), pos)
        };
        match (field.kind(), &value) {
            (_, Value::Null) => Ok(value),
            (Kind::Message, Value::Object(object)) => {
                let Some(layout) = codec::message(self.plan, field.message) else { return Ok(Value::Null) };
                let mut out = Map::new();
                for (key, inner) in object {
                    let Some(inner_field) = layout.fields.iter().find(|f| &f.name == key) else {
                        return error(format!("Argument \"{name}\" has no field \"{key}\"."), pos);
                    };
                    out.insert(
                        key.clone(),
                        self.input_value(inner_field, inner.clone(), pos, &format!("{name}.{key}"))?,
                    );
                }
                Ok(Value::Object(out))
            }
            (Kind::Message, _) => refuse("an input object"),
            (Kind::String | Kind::Bytes, Value::String(_)) => Ok(value),
            (Kind::String | Kind::Bytes, _) => refuse("String"),
            (Kind::Bool, Value::Bool(_)) => Ok(value),
            (Kind::Bool, _) => refuse("Boolean"),
            (Kind::Enum, Value::String(text)) if field.enum_values.iter().any(|v| &v.name == text) => {
                Ok(value)
            }
            (Kind::Enum, _) => refuse("the enum"),
            (Kind::Double | Kind::Float, Value::Number(_)) => Ok(value),
            (Kind::Double | Kind::Float, _) => refuse("Float"),
            (kind, Value::String(_)) if is_int64(kind) => Ok(value),
            (_, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value),
            (kind, _) if is_int64(kind) => refuse("Int64"),
            _ => refuse("Int"),
        }
    }

    /// An object showing a message: its fields are the message's.
    fn message(
        &mut self,
        object: u32,
        layout: Option<u32>,
        selection: &[&'a Selection],
        depth: u32,
        pos: Pos,
    ) -> Checked<Vec<Selected>> {
        let schema = self.schema;
        let plan = self.plan;
        let Some(definition) = schema.objects.get(object as usize) else {
            return error("the plan's GraphQL schema is inconsistent", pos);
        };
        let grouped = self.collect(&definition.name, selection)?;
        let message = layout.and_then(|l| codec::message(plan, l));
        let mut out = Vec::new();
        for (key, fields) in grouped {
            let Some(first) = same_field(&fields)? else { continue };
            self.count(first.pos, depth)?;
            if first.name == "__typename" {
                out.push(Selected {
                    key,
                    what: leaf_only(first, Source::Known(Value::String(definition.name.clone())))?,
                });
                continue;
            }
            let Some(field) = definition.fields.iter().find(|f| f.name == first.name) else {
                return error(
                    format!("Cannot query field \"{}\" on type \"{}\".", first.name, definition.name),
                    first.pos,
                );
            };
            no_arguments(first)?;
            let children: Vec<&'a Selection> = fields.iter().flat_map(|f| &f.selection).collect();
            let layout_field = match field.source {
                Some(GraphqlSource::Field(index)) => message.and_then(|m| m.fields.get(index as usize)),
                _ => None,
            };
            let what = match (layout_field, field.object) {
                (Some(layout_field), Some(inner)) => {
                    needs_selection(first, self.object_name(inner), &children)?;
                    let (leaf, inner_layout) = if layout_field.map {
                        (Leaf::Map, layout_field.message)
                    } else {
                        (Leaf::Object, layout_field.message)
                    };
                    let children =
                        self.message(inner, Some(inner_layout), &children, depth + 1, first.pos)?;
                    Source::Field { name: layout_field.name.clone(), leaf, children }
                }
                (Some(layout_field), None) => {
                    let leaf = if is_int64(layout_field.kind()) { Leaf::Int64 } else { Leaf::Plain };
                    leaf_only(
                        first,
                        Source::Field { name: layout_field.name.clone(), leaf, children: Vec::new() },
                    )?
                }
                (None, _) => leaf_only(first, Source::Known(Value::Null))?,
            };
            out.push(Selected { key, what });
        }
        Ok(out)
    }

    fn introspection_type(&self, name: &str) -> Option<&'a Value> {
        let introspection: &'a Introspection = self.introspection?;
        introspection.type_named(name)
    }

    /// `__schema` and `__type(name:)`, answered from the compiler's `__schema` document.
    fn introspect(&mut self, field: &parse::Field, fields: &[&'a parse::Field]) -> Checked<Source> {
        let Some(document) = self.introspection.map(|i| &i.document) else {
            return error("GraphQL introspection is not allowed here: the schema turns it off.", field.pos);
        };
        let selection: Vec<&'a Selection> = fields.iter().flat_map(|f| &f.selection).collect();
        if field.name == "__schema" {
            no_arguments(field)?;
            return self.meta(document, "__Schema", &selection, field.pos, 1).map(Source::Known);
        }
        let name = field
            .arguments
            .iter()
            .find(|(n, _)| n == "name")
            .map(|(_, v)| to_json(v, &self.variables, field.pos));
        let Some(Value::String(name)) = name.transpose()? else {
            return error("Field \"__type\" argument \"name\" of type \"String!\" is required.", field.pos);
        };
        match self.introspection_type(&name) {
            Some(found) => self.meta(found, "__Type", &selection, field.pos, 1).map(Source::Known),
            None => Ok(Source::Known(Value::Null)),
        }
    }

    /// `node`, a value of introspection's type `type_name`, projected on a selection set.
    fn meta(
        &mut self,
        node: &'a Value,
        type_name: &str,
        selection: &[&'a Selection],
        pos: Pos,
        depth: u32,
    ) -> Checked<Value> {
        if depth > MAX_INTROSPECTION_DEPTH {
            return error(
                format!("The introspection query nests deeper than {MAX_INTROSPECTION_DEPTH} levels."),
                pos,
            );
        }
        let Some(definition) = self.introspection_type(type_name) else {
            return error(format!("Unknown type \"{type_name}\"."), pos);
        };
        if selection.is_empty() {
            return error(format!("Field of type \"{type_name}\" must have a selection of subfields."), pos);
        }
        let grouped = self.collect(type_name, selection)?;
        // A type referred to (`{kind, name, ofType}`) is completed from `types` when more is
        // selected.
        let full = match node.get("name").and_then(Value::as_str) {
            Some(name)
                if type_name == "__Type" && node.get("kind").is_some() && node.get("fields").is_none() =>
            {
                self.introspection_type(name)
            }
            _ => None,
        };
        let mut out = Map::new();
        for (key, fields) in grouped {
            let Some(first) = same_field(&fields)? else { continue };
            self.introspected += 1;
            if self.introspected > MAX_INTROSPECTION_VALUES {
                return error(
                    format!(
                        "The introspection answer would hold more than {MAX_INTROSPECTION_VALUES} values."
                    ),
                    first.pos,
                );
            }
            if first.name == "__typename" {
                out.insert(key, Value::String(type_name.to_string()));
                continue;
            }
            let field_type = definition
                .get("fields")
                .and_then(Value::as_array)
                .and_then(|all| {
                    all.iter().find(|f| f.get("name").and_then(Value::as_str) == Some(&first.name))
                })
                .and_then(|f| f.get("type"));
            let Some(field_type) = field_type else {
                return error(
                    format!("Cannot query field \"{}\" on type \"{type_name}\".", first.name),
                    first.pos,
                );
            };
            let value: &'a Value = node
                .get(&first.name)
                .or_else(|| full.and_then(|f| f.get(&first.name)))
                .unwrap_or(&Value::Null);
            let named = named_type(field_type);
            let children: Vec<&'a Selection> = fields.iter().flat_map(|f| &f.selection).collect();
            let projected = match named {
                Some(inner) if inner.starts_with("__") && field_type_is_object(field_type) => {
                    self.meta_value(value, &inner, &children, first.pos, depth + 1)?
                }
                _ if !children.is_empty() => {
                    return error(
                        format!(
                            "Field \"{}\" must not have a selection since it has no subfields.",
                            first.name
                        ),
                        first.pos,
                    )
                }
                _ => value.clone(),
            };
            out.insert(key, projected);
        }
        Ok(Value::Object(out))
    }

    fn meta_value(
        &mut self,
        value: &'a Value,
        type_name: &str,
        selection: &[&'a Selection],
        pos: Pos,
        depth: u32,
    ) -> Checked<Value> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| self.meta_value(item, type_name, selection, pos, depth))
                .collect::<Checked<_>>()
                .map(Value::Array),
            Value::Null => Ok(Value::Null),
            node => self.meta(node, type_name, selection, pos, depth),
        }
    }
}

/// The named type under a reference's `NON_NULL` and `LIST` wrappers.
fn named_type(type_ref: &Value) -> Option<String> {
    match type_ref.get("ofType") {
        Some(inner) if !inner.is_null() => named_type(inner),
        _ => type_ref.get("name").and_then(Value::as_str).map(str::to_string),
    }
}

fn field_type_is_object(type_ref: &Value) -> bool {
    match type_ref.get("ofType") {
        Some(inner) if !inner.is_null() => field_type_is_object(inner),
        _ => type_ref.get("kind").and_then(Value::as_str) == Some("OBJECT"),
    }
}

fn is_int64(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Int64
            | Kind::Uint64
            | Kind::Sint64
            | Kind::Fixed64
            | Kind::Sfixed64
            | Kind::Uint32
            | Kind::Fixed32
    )
}

/// Fields merged under one response key must be the same field with the same arguments: the
/// first of them, which stands for all.
fn same_field<'f>(fields: &[&'f parse::Field]) -> Checked<Option<&'f parse::Field>> {
    let Some((&first, others)) = fields.split_first() else { return Ok(None) };
    for other in others {
        if other.name != first.name || !same_arguments(&other.arguments, &first.arguments) {
            return error(
                format!(
                    "Fields \"{}\" conflict because they are different fields or have different arguments. Use different aliases on the fields to fetch both if this was intentional.",
                    first.key()
                ),
                other.pos,
            );
        }
    }
    Ok(Some(first))
}

/// Arguments are the same whatever order they are written in.
fn same_arguments(a: &[(String, parse::Value)], b: &[(String, parse::Value)]) -> bool {
    a.len() == b.len() && a.iter().all(|(name, value)| b.iter().any(|(n, v)| n == name && v == value))
}

fn no_arguments(field: &parse::Field) -> Checked<()> {
    match field.arguments.first() {
        Some((name, _)) => {
            error(format!("Unknown argument \"{name}\" on field \"{}\".", field.name), field.pos)
        }
        None => Ok(()),
    }
}

fn leaf_only(field: &parse::Field, source: Source) -> Checked<Source> {
    if !field.selection.is_empty() {
        return error(
            format!("Field \"{}\" must not have a selection since it has no subfields.", field.name),
            field.pos,
        );
    }
    Ok(source)
}

fn needs_selection(field: &parse::Field, type_name: &str, selection: &[&Selection]) -> Checked<()> {
    if selection.is_empty() {
        return error(
            format!("Field \"{}\" of type \"{type_name}\" must have a selection of subfields. Did you mean \"{} {{ ... }}\"?", field.name, field.name),
            field.pos,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::value::json;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn float_literals_are_read_as_json_numbers_are() {
        let read = |text: &str| to_json(&parse::Value::Float(text.into()), &Map::new(), Pos::default()).ok();
        assert_eq!(read("-1.5e3"), Some(json!(-1500.0)));
        assert_eq!(read("0.1"), Some(json!(0.1)));
        assert_eq!(read("2.5E-3"), Some(json!(0.0025)));
        // Beyond a double: no value, which the field's type then refuses or leaves absent.
        assert_eq!(read("1e400"), Some(Value::Null));
    }
}
