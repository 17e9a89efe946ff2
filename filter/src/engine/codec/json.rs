//! JSON bodies. Encoding writes the proto field names as keys, as Semaphore always wrote them,
//! 64-bit integers as numbers (exactly, also beyond 2^53) unless the endpoint or service asks for
//! strings, enums by name and bytes as base64; decoding accepts both the field name and its
//! lowerCamelCase JSON name, and 64-bit integers as numbers or strings.

use semaphore_plan::{FieldLayout, Kind, Plan};
use serde_json::{Map, Value};

use super::typing::{map_value_field, message, normalize_message, CodecError, MAX_DEPTH};

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
        match (field.kind(), value) {
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
