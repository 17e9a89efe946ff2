//! JSON bodies. Encoding writes the proto field names as keys, as Semaphore always wrote them,
//! 64-bit integers as numbers (exactly, also beyond 2^53) unless the endpoint or service asks for
//! strings, enums by name and bytes as base64; decoding accepts both the field name and its
//! lowerCamelCase JSON name, and 64-bit integers as numbers or strings.

use std::borrow::Cow;

use semaphore_plan::{FieldLayout, Kind, MessageLayout, Plan};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
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

/// As [`decode_json`], reading only `fields` (indices in the layout) of the object: the others
/// are skipped as they are parsed, never built. For an upstream's answer, of which a flow
/// often reads a few fields.
pub fn decode_json_fields(
    plan: &Plan,
    layout: u32,
    body: &[u8],
    fields: &[u32],
) -> Result<Map<String, Value>, CodecError> {
    let Some(message) = message(plan, layout) else { return decode_json(plan, layout, body) };
    // Anything but an object is refused by `decode_json`, in its words.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return decode_json(plan, layout, body);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = Projection { message, fields }
        .deserialize(&mut deserializer)
        .and_then(|read| deserializer.end().map(|()| read))
        .map_err(|e| CodecError::new(format!("invalid JSON: {e}")))?;
    match normalize_message(plan, layout, Value::Object(read), 0)? {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}

/// The fields of an object that are wanted, as parsed values; the rest skipped.
struct Projection<'p> {
    message: &'p MessageLayout,
    fields: &'p [u32],
}

impl Projection<'_> {
    fn wants(&self, key: &str) -> bool {
        let index = self.message.fields.iter().position(|f| f.name == key || f.json_name == key);
        index.is_some_and(|index| self.fields.contains(&(index as u32)))
    }
}

impl<'de> DeserializeSeed<'de> for Projection<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Projection<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut read = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if self.wants(&key) {
                read.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(read)
    }
}

/// An object's key, borrowed from the body unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semaphore_plan::FieldLayout;
    use serde_json::json;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn field(name: &str, number: u32, kind: Kind) -> FieldLayout {
        let json_name = if name == "full_name" { "fullName" } else { name };
        FieldLayout {
            name: name.into(),
            json_name: json_name.into(),
            number,
            kind: kind as i32,
            ..Default::default()
        }
    }

    /// `User { id, full_name, age, tags }`, of which a flow reads `id` and `full_name`.
    fn plan() -> Plan {
        let mut tags = field("tags", 4, Kind::String);
        tags.repeated = true;
        Plan {
            messages: vec![MessageLayout {
                name: "User".into(),
                fields: vec![
                    field("id", 1, Kind::String),
                    field("full_name", 2, Kind::String),
                    field("age", 3, Kind::Int32),
                    tags,
                ],
            }],
            ..Default::default()
        }
    }

    fn read(body: &str) -> Result<Value, String> {
        decode_json_fields(&plan(), 0, body.as_bytes(), &[0, 1]).map(Value::Object).map_err(|e| e.to_string())
    }

    #[test]
    fn only_the_fields_read_are_decoded_and_typed() {
        let body = r#"{"id": 7, "fullName": "Ada", "age": 36, "tags": ["a"], "other": {"deep": [1]}}"#;
        assert_eq!(read(body), Ok(json!({"id": "7", "full_name": "Ada"})));
    }

    #[test]
    fn a_field_not_read_is_not_checked_but_the_json_still_is() {
        assert_eq!(read(r#"{"id": "1", "age": "not a number"}"#), Ok(json!({"id": "1"})));
        assert!(read(r#"{"id": "1", "age": [1, }"#).unwrap_err().starts_with("invalid JSON"));
        assert!(read(r#"{"id": "1"} trailing"#).unwrap_err().starts_with("invalid JSON"));
        assert_eq!(read(r#"{"id": ["x"]}"#), Err("field `id`: expected a string, found a list".into()));
    }

    #[test]
    fn keys_with_escapes_and_bodies_that_are_no_objects_read_as_decode_json_reads_them() {
        assert_eq!(read(r#"{"i\u0064": "1"}"#), Ok(json!({"id": "1"})));
        assert_eq!(read("  "), Ok(json!({})));
        let everything = decode_json(&plan(), 0, b"[1]").map_err(|e| e.to_string());
        assert_eq!(read("[1]"), everything.map(Value::Object));
    }
}
