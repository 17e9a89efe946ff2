//! The response's `data`: the prepared selection sets, filled from the flows' outputs. Written
//! as JSON text directly, so that keys keep the order the query asked them in, as GraphQL
//! responses do.

use crate::engine::value::{Map, Value};

use super::prepare::{Leaf, Selected, Source};
use crate::engine::codec;

/// An object of the response; `results` holds each run's output, `None` for a run that failed.
pub fn object(selection: &[Selected], results: &[Option<&Value>], out: &mut String) {
    out.push('{');
    for (i, selected) in selection.iter().enumerate() {
        key(i, &selected.key, out);
        match &selected.what {
            Source::Known(value) => leaf(value, out),
            Source::Object(children) => object(children, results, out),
            Source::Flow { run, children } => match results.get(*run).copied().flatten() {
                Some(output) => message(children, output, out),
                None => out.push_str("null"),
            },
            // Fields of a message appear only under a flow's output.
            Source::Field { .. } => out.push_str("null"),
        }
    }
    out.push('}');
}

fn key(index: usize, name: &str, out: &mut String) {
    if index > 0 {
        out.push(',');
    }
    leaf(&Value::String(name.to_string()), out);
    out.push(':');
}

fn leaf(value: &Value, out: &mut String) {
    out.push_str(&codec::json_text(value));
}

/// A message of a flow's output (as its JSON), projected on its selection set.
fn message(selection: &[Selected], value: &Value, out: &mut String) {
    out.push('{');
    for (i, selected) in selection.iter().enumerate() {
        key(i, &selected.key, out);
        match &selected.what {
            Source::Known(known) => leaf(known, out),
            Source::Field { name, leaf: kind, children } => match value.get(name) {
                None | Some(Value::Null) => out.push_str("null"),
                Some(field) => field_value(*kind, children, field, out),
            },
            Source::Object(_) | Source::Flow { .. } => out.push_str("null"),
        }
    }
    out.push('}');
}

fn field_value(kind: Leaf, children: &[Selected], value: &Value, out: &mut String) {
    match (kind, value) {
        (_, Value::Array(items)) if kind != Leaf::Map => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                field_value(kind, children, item, out);
            }
            out.push(']');
        }
        (Leaf::Object, Value::Object(_)) => message(children, value, out),
        (Leaf::Map, Value::Object(entries)) => {
            out.push('[');
            for (i, (entry_key, entry)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let mut pair = Map::new();
                pair.insert("key".into(), Value::String(entry_key.clone()));
                pair.insert("value".into(), entry.clone());
                message(children, &Value::Object(pair), out);
            }
            out.push(']');
        }
        (Leaf::Int64, Value::Number(n)) => leaf(&Value::String(n.to_string()), out),
        (_, other) => leaf(other, out),
    }
}
