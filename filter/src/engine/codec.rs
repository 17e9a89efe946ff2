//! The one codec: moves values between their wire forms (JSON bodies, path and query text) and
//! the engine's typed values, walking the plan's message layouts.
//!
//! Inside the engine a message is a JSON object keyed by proto field names, holding values
//! already coerced to the field's type: integers and floats as numbers, enums by name, bytes as
//! base64 text. Encoding to JSON writes the proto field names as keys, as Semaphore always wrote
//! them, 64-bit integers as numbers (exactly, also beyond 2^53) unless the endpoint or service
//! asks for strings, enums by name and bytes as base64; decoding accepts both the field name and
//! its lowerCamelCase JSON name, and 64-bit integers as numbers or strings.

use semaphore_plan::{Codec, FieldLayout, Kind, MessageLayout, Plan};
use serde_json::{Map, Number, Value};

/// Deeper JSON is refused rather than walked, so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct CodecError {
    /// Dotted field path from the message root, empty for the root itself.
    pub field: String,
    pub message: String,
}

impl CodecError {
    fn new(message: impl Into<String>) -> Self {
        CodecError { field: String::new(), message: message.into() }
    }

    fn within(mut self, field: &str) -> Self {
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

pub fn kind(field: &FieldLayout) -> Kind {
    Kind::try_from(field.kind).unwrap_or(Kind::String)
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

/// Parses a JSON body into a message of the given layout. Unknown fields are ignored.
pub fn decode_json(plan: &Plan, layout: u32, body: &[u8]) -> Result<Map<String, Value>, CodecError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| CodecError::new(format!("invalid JSON: {e}")))?;
    match normalize_message(plan, layout, value, 0)? {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
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

fn normalize_single(
    plan: &Plan,
    field: &FieldLayout,
    value: Value,
    depth: usize,
) -> Result<Value, CodecError> {
    match kind(field) {
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
                Value::String(s) => parse_float(s).and_then(|v| v.as_f64()),
                _ => None,
            };
            let Some(number) = number else {
                return Err(mismatch("a number", &value));
            };
            // A float holds what an f32 holds, as the proto3 JSON mapping writes it.
            let number = if kind(field) == Kind::Float { f64::from(number as f32) } else { number };
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
    match kind(field) {
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

fn parse_float(s: &str) -> Option<Value> {
    let f: f64 = s.trim().parse().ok()?;
    Number::from_f64(f).map(Value::Number)
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

/// How JSON writes 64-bit integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Int64Json {
    /// As numbers, as Semaphore wrote them and as JSON clients compare them.
    #[default]
    Number,
    /// As strings, the proto3 JSON mapping, for clients that read every JSON number as a double.
    String,
}

impl Int64Json {
    pub fn strings_if(int64_as_string: bool) -> Int64Json {
        if int64_as_string {
            Int64Json::String
        } else {
            Int64Json::Number
        }
    }
}

/// The JSON form of a typed message: proto field names, fields in schema order, absent fields
/// omitted.
pub fn encode_json(plan: &Plan, layout: u32, message: &Map<String, Value>, int64: Int64Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    JsonWriter { plan, int64 }.message(layout, message, &mut out, 0);
    out
}

struct JsonWriter<'p> {
    plan: &'p Plan,
    int64: Int64Json,
}

impl JsonWriter<'_> {
    /// Written straight to bytes in the layout's order, with no intermediate map.
    fn message(&self, layout: u32, message: &Map<String, Value>, out: &mut Vec<u8>, depth: usize) {
        let plan = self.plan;
        out.push(b'{');
        let layout = self::message(plan, layout).filter(|_| depth <= MAX_DEPTH);
        let mut first = true;
        for field in layout.map(|l| l.fields.as_slice()).unwrap_or_default() {
            let Some(value) = message.get(&field.name) else { continue };
            if !first {
                out.push(b',');
            }
            first = false;
            write_string(&field.name, out);
            out.push(b':');
            match value {
                Value::Object(entries) if field.map => {
                    let value_field = map_value_field(plan, field);
                    out.push(b'{');
                    for (index, (key, entry)) in entries.iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        write_string(key, out);
                        out.push(b':');
                        match value_field {
                            Some(value_field) => self.single(value_field, entry, out, depth),
                            None => write_plain(entry, out),
                        }
                    }
                    out.push(b'}');
                }
                Value::Array(items) if field.repeated => {
                    out.push(b'[');
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        self.single(field, item, out, depth);
                    }
                    out.push(b']');
                }
                other => self.single(field, other, out, depth),
            }
        }
        out.push(b'}');
    }

    fn single(&self, field: &FieldLayout, value: &Value, out: &mut Vec<u8>, depth: usize) {
        match (kind(field), value) {
            (Kind::Message, Value::Object(nested)) => self.message(field.message, nested, out, depth + 1),
            (
                Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64,
                Value::Number(n),
            ) if self.int64 == Int64Json::String => {
                out.push(b'"');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'"');
            }
            // Integers are held as i64 or u64, never as floats, so they are written exactly.
            _ => write_plain(value, out),
        }
    }
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_plain(value: &Value, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A typed value as text, for interpolation, headers, paths and query strings.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Scalars and repeated scalars as `key=value` pairs; nested messages with dotted keys.
pub fn encode_form(plan: &Plan, layout: u32, message: &Map<String, Value>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    append_pairs(plan, layout, message, "", &mut serializer, 0);
    serializer.finish()
}

fn append_pairs(
    plan: &Plan,
    layout: u32,
    message: &Map<String, Value>,
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
            match (kind(field), item) {
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
pub fn decode_form(
    plan: &Plan,
    layout: u32,
    text: &str,
    into: &mut Map<String, Value>,
) -> Result<(), CodecError> {
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

/// A body in the given codec into a message.
pub fn decode_body(
    plan: &Plan,
    layout: u32,
    codec: Codec,
    body: &[u8],
) -> Result<Map<String, Value>, CodecError> {
    match codec {
        Codec::Json => decode_json(plan, layout, body),
        Codec::Proto => super::proto::decode(plan, layout, body),
        Codec::FormUrlencoded => {
            let text =
                std::str::from_utf8(body).map_err(|_| CodecError::new("the form body is not valid UTF-8"))?;
            let mut out = Map::new();
            decode_form(plan, layout, text, &mut out)?;
            Ok(out)
        }
        Codec::Xml => super::xml::decode(plan, layout, body),
    }
}

/// A message as a body in the given codec, with its content type.
pub fn encode_body(
    plan: &Plan,
    layout: u32,
    codec: Codec,
    int64: Int64Json,
    message: &Map<String, Value>,
) -> (&'static str, Vec<u8>) {
    let body = match codec {
        Codec::Json => encode_json(plan, layout, message, int64),
        Codec::Proto => super::proto::encode(plan, layout, message),
        Codec::FormUrlencoded => encode_form(plan, layout, message).into_bytes(),
        Codec::Xml => super::xml::encode(plan, layout, message),
    };
    (codec.content_type(), body)
}
