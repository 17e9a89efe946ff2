//! `key=value` pairs: query strings and `application/x-www-form-urlencoded` bodies.

use crate::engine::value::{Map, Value};
use semaphore_plan::{Kind, Plan};

use super::typing::{field_by_name, from_text, message, to_text, CodecError, MAX_DEPTH};

/// Scalars and repeated scalars as `key=value` pairs; nested messages with dotted keys.
pub fn encode_form(plan: &Plan, layout: u32, message: &Map) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    append_pairs(plan, layout, message, "", &mut serializer, 0);
    serializer.finish()
}

fn append_pairs(
    plan: &Plan,
    layout: u32,
    message: &Map,
    prefix: &str,
    out: &mut form_urlencoded::Serializer<String>,
    depth: usize,
) {
    let Some(layout) = self::message(plan, layout) else { return };
    if depth > MAX_DEPTH {
        return;
    }
    for field in &layout.fields {
        let Some(value) = message.get(&field.name) else { continue };
        let key = format!("{prefix}{}", field.name);
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match (field.kind(), item) {
                (Kind::Message, Value::Object(nested)) => {
                    append_pairs(plan, field.message, nested, &format!("{key}."), out, depth + 1)
                }
                (_, item) => {
                    out.append_pair(&key, &to_text(item));
                }
            }
        }
    }
}

/// `key=value` pairs (a query string or a form body) into a message: keys are field names,
/// repeated keys fill repeated fields, values are typed by their field.
pub fn decode_form(plan: &Plan, layout: u32, text: &str, into: &mut Map) -> Result<(), CodecError> {
    let Some(message) = message(plan, layout) else {
        return Ok(());
    };
    let mut repeated: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, text) in form_urlencoded::parse(text.as_bytes()) {
        let Some(field) = field_by_name(message, &key) else { continue };
        let value = from_text(plan, field, &text).map_err(|e| e.within(&field.name))?;
        if field.repeated {
            match repeated.iter_mut().find(|(name, _)| name == &field.name) {
                Some((_, values)) => values.push(value),
                None => repeated.push((field.name.clone(), vec![value])),
            }
        } else {
            into.insert(field.name.clone(), value);
        }
    }
    for (name, values) in repeated {
        into.insert(name, Value::Array(values));
    }
    Ok(())
}
