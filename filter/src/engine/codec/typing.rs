//! The engine's typed values, and how a value is coerced into the type of the field it lands
//! in: the rules every codec reads by.
//!
//! Inside the engine a message is a JSON object keyed by proto field names, holding values
//! already coerced to the field's type: integers and floats as numbers, enums by name, bytes as
//! base64 text.

use crate::engine::value::{Map, Number, Value};
use semaphore_plan::{FieldLayout, Kind, MessageLayout, Plan};

/// Deeper JSON is refused rather than walked, so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct CodecError {
    /// Dotted field path from the message root, empty for the root itself.
    pub field: String,
    pub message: String,
}

impl CodecError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        CodecError { field: String::new(), message: message.into() }
    }

    pub(super) fn within(mut self, field: &str) -> Self {
        self.field =
            if self.field.is_empty() { field.to_string() } else { format!("{field}.{}", self.field) };
        self
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "field `{}`: {}", self.field, self.message)
        }
    }
}

pub fn message(plan: &Plan, index: u32) -> Option<&MessageLayout> {
    plan.messages.get(index as usize)
}

/// The `value` field of a map's entry message.
pub fn map_value_field<'p>(plan: &'p Plan, field: &FieldLayout) -> Option<&'p FieldLayout> {
    message(plan, field.message)?.fields.iter().find(|f| f.number == 2)
}

/// The `key` field of a map's entry message.
pub fn map_key_field<'p>(plan: &'p Plan, field: &FieldLayout) -> Option<&'p FieldLayout> {
    message(plan, field.message)?.fields.iter().find(|f| f.number == 1)
}

pub fn field_by_name<'m>(layout: &'m MessageLayout, name: &str) -> Option<&'m FieldLayout> {
    layout.fields.iter().find(|f| f.name == name || f.json_name == name)
}

/// Coerces a JSON object into the canonical typed form of the message. Takes the value, so
/// that what is already in its form (most of it) moves instead of being copied.
pub fn normalize_message(plan: &Plan, layout: u32, value: Value, depth: usize) -> Result<Value, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::new(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let Some(layout) = message(plan, layout) else {
        return Err(CodecError::new("message layout missing from the plan"));
    };
    let Value::Object(mut object) = value else {
        return Err(CodecError::new(format!(
            "expected an object for `{}`, found {}",
            layout.name,
            describe(&value)
        )));
    };
    // In place: unknown fields and nulls leave, values are typed where they are, and only
    // fields given by their JSON name are moved to their proto name.
    let mut renamed = Vec::new();
    let mut failure = None;
    object.retain(|key, value| {
        if failure.is_some() {
            return false;
        }
        let Some(field) = field_by_name(layout, key) else { return false };
        match normalize_field(plan, field, std::mem::take(value), depth) {
            Ok(Some(typed)) if *key == field.name => {
                *value = typed;
                true
            }
            Ok(Some(typed)) => {
                renamed.push((field.name.clone(), typed));
                false
            }
            Ok(None) => false,
            Err(error) => {
                failure = Some(error.within(&field.name));
                false
            }
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    object.extend(renamed);
    Ok(Value::Object(object))
}

/// `None` for a null, which leaves the field absent.
pub fn normalize_field(
    plan: &Plan,
    field: &FieldLayout,
    value: Value,
    depth: usize,
) -> Result<Option<Value>, CodecError> {
    if value.is_null() {
        return Ok(None);
    }
    if field.map {
        let Value::Object(entries) = value else {
            return Err(CodecError::new(format!("expected an object (a map), found {}", describe(&value))));
        };
        let Some(value_field) = map_value_field(plan, field) else {
            return Err(CodecError::new("map entry layout missing from the plan"));
        };
        let mut out = Map::new();
        for (key, entry) in entries {
            if let Some(entry) =
                normalize_field(plan, value_field, entry, depth + 1).map_err(|e| e.within(&key))?
            {
                out.insert(key, entry);
            }
        }
        return Ok(Some(Value::Object(out)));
    }
    if field.repeated {
        let Value::Array(items) = value else {
            return Err(CodecError::new(format!("expected a list, found {}", describe(&value))));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let item =
                normalize_single(plan, field, item, depth + 1).map_err(|e| e.within(&i.to_string()))?;
            out.push(item);
        }
        return Ok(Some(Value::Array(out)));
    }
    normalize_single(plan, field, value, depth).map(Some)
}

pub(super) fn normalize_single(
    plan: &Plan,
    field: &FieldLayout,
    value: Value,
    depth: usize,
) -> Result<Value, CodecError> {
    match field.kind() {
        Kind::Message => normalize_message(plan, field.message, value, depth + 1),
        Kind::String => match value {
            Value::String(_) => Ok(value),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(mismatch("a string", &value)),
        },
        Kind::Bytes => match value {
            Value::String(_) => Ok(value),
            _ => Err(mismatch("base64 text", &value)),
        },
        Kind::Bool => match &value {
            Value::Bool(_) => Ok(value),
            Value::String(s) => parse_bool(s).map(Value::Bool).ok_or_else(|| mismatch("a bool", &value)),
            _ => Err(mismatch("a bool", &value)),
        },
        Kind::Enum => enum_value(field, &value),
        Kind::Double | Kind::Float => {
            let number = match &value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => float_from_text(s),
                _ => None,
            };
            let Some(number) = number else {
                return Err(mismatch("a number", &value));
            };
            // A float holds what an f32 holds, as the proto3 JSON mapping writes it.
            let number = if field.kind() == Kind::Float { f64::from(number as f32) } else { number };
            Number::from_f64(number).map(Value::Number).ok_or_else(|| mismatch("a finite number", &value))
        }
        integer => {
            let (min, max) = integer_range(integer);
            let parsed = match &value {
                Value::Number(n) => number_as_i128(n),
                Value::String(s) => s.trim().parse::<i128>().ok(),
                _ => None,
            };
            match parsed {
                Some(n) if (min..=max).contains(&n) => Ok(integer_value(n)),
                Some(n) => Err(CodecError::new(format!("{n} is out of range for {}", kind_name(integer)))),
                None => Err(mismatch(&format!("an integer ({})", kind_name(integer)), &value)),
            }
        }
    }
}

/// A path or query parameter, typed by the field it lands in.
pub fn from_text(plan: &Plan, field: &FieldLayout, text: &str) -> Result<Value, CodecError> {
    let value = Value::String(text.to_string());
    match field.kind() {
        Kind::Message => Err(CodecError::new("a message cannot be given as text")),
        _ => normalize_single(plan, field, value, 0),
    }
}

fn enum_value(field: &FieldLayout, value: &Value) -> Result<Value, CodecError> {
    let found = match value {
        Value::String(name) => field.enum_values.iter().find(|v| &v.name == name),
        Value::Number(n) => {
            n.as_i64().and_then(|n| field.enum_values.iter().find(|v| i64::from(v.number) == n))
        }
        _ => None,
    };
    match found {
        Some(v) => Ok(Value::String(v.name.clone())),
        None => {
            let names: Vec<&str> = field.enum_values.iter().map(|v| v.name.as_str()).collect();
            Err(CodecError::new(format!("{} is not one of {}", describe(value), names.join(", "))))
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A number written as text: a path parameter, a string in a double field. Read as serde_json
/// reads a body's numbers, to the same precision: `str::parse::<f64>` would bring core's 20 KiB
/// table of powers of five into the module for these rare strings. A leading `+` is taken, as
/// Go's `strconv.ParseFloat` takes it.
pub fn float_from_text(s: &str) -> Option<f64> {
    let s = s.trim();
    let unsigned = match s.strip_prefix('+') {
        Some(rest) if rest.starts_with('-') => return None,
        Some(rest) => rest,
        None => s,
    };
    // From bytes, as bodies are read: each way of reading brings its own copy of the parser.
    serde_json::from_slice(unsigned.as_bytes()).ok()
}

fn number_as_i128(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    // 1.0 is an integer in JSON's eyes; 1.5 is not.
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1e19).then_some(f as i128)
}

fn integer_value(n: i128) -> Value {
    if let Ok(i) = i64::try_from(n) {
        Value::Number(i.into())
    } else if let Ok(u) = u64::try_from(n) {
        Value::Number(u.into())
    } else {
        Value::Null
    }
}

fn integer_range(kind: Kind) -> (i128, i128) {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => (i32::MIN.into(), i32::MAX.into()),
        Kind::Uint32 | Kind::Fixed32 => (0, u32::MAX.into()),
        Kind::Uint64 | Kind::Fixed64 => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int64 => "int64",
        Kind::Uint64 => "uint64",
        Kind::Int32 => "int32",
        Kind::Fixed64 => "fixed64",
        Kind::Fixed32 => "fixed32",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Message => "message",
        Kind::Bytes => "bytes",
        Kind::Uint32 => "uint32",
        Kind::Enum => "enum",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
    }
}

fn mismatch(expected: &str, found: &Value) -> CodecError {
    CodecError::new(format!("expected {expected}, found {}", describe(found)))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 40 => format!("\"{s}\""),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A typed value as text, for interpolation, headers, paths and query strings.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => super::json::json_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_written_as_text_read_as_json_numbers_and_a_leading_plus() {
        let read = |text: &str| float_from_text(text);
        assert_eq!(read("12.5"), Some(12.5));
        assert_eq!(read(" -3 "), Some(-3.0));
        assert_eq!(read("+2e3"), Some(2000.0));
        assert_eq!(read("0.1"), Some(0.1));
        assert_eq!(read("1.7976931348623157e308"), Some(f64::MAX));
        for refused in ["", "abc", "+-1", "1e400", "NaN", "Infinity", "1.5x", "0x10"] {
            assert_eq!(read(refused), None, "{refused:?}");
        }
    }
}
