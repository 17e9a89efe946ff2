//! JSON bodies. Encoding writes the proto field names as keys, as Semaphore always wrote them,
//! 64-bit integers as numbers (exactly, also beyond 2^53) unless the endpoint or service asks for
//! strings, enums by name and bytes as base64; decoding accepts both the field name and its
//! lowerCamelCase JSON name, and 64-bit integers as numbers or strings.

use std::borrow::Cow;

use semaphore_plan::{FieldLayout, Kind, MessageLayout, Plan};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::typing::{map_value_field, message, normalize_message, normalize_single, CodecError, MAX_DEPTH};
use super::Outgoing;

/// Parses a JSON body into a message of the given layout. Unknown fields are ignored.
pub fn decode_json(plan: &Plan, layout: u32, body: &[u8]) -> Result<Map<String, Value>, CodecError> {
    decode_json_fields(plan, layout, body, None)
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

/// As [`encode_json`], for a message some of whose fields are held elsewhere.
pub fn encode_json_outgoing(plan: &Plan, layout: u32, message: &Outgoing, int64: Int64Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let field = |index: usize, field: &FieldLayout| message.field(index, field);
    JsonWriter { plan, int64 }.fields(layout, &field, &mut out, 0);
    out
}

struct JsonWriter<'p> {
    plan: &'p Plan,
    int64: Int64Json,
}

impl JsonWriter<'_> {
    fn message(&self, layout: u32, message: &Map<String, Value>, out: &mut Vec<u8>, depth: usize) {
        self.fields(layout, &|_, field| message.get(&field.name), out, depth);
    }

    /// Written straight to bytes in the layout's order, with no intermediate map; `value` gives
    /// each field's value by its index and layout.
    fn fields<'v>(
        &self,
        layout: u32,
        value: &dyn Fn(usize, &FieldLayout) -> Option<&'v Value>,
        out: &mut Vec<u8>,
        depth: usize,
    ) {
        let plan = self.plan;
        out.push(b'{');
        let layout = self::message(plan, layout).filter(|_| depth <= MAX_DEPTH);
        let mut first = true;
        for (index, field) in layout.map(|l| l.fields.as_slice()).unwrap_or_default().iter().enumerate() {
            let Some(value) = value(index, field) else { continue };
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
                Value::Number(_),
            ) if self.int64 == Int64Json::String => {
                out.push(b'"');
                write_plain(value, out);
                out.push(b'"');
            }
            // Integers are held as i64 or u64, never as floats, so they are written exactly.
            _ => write_plain(value, out),
        }
    }
}

/// Most text needs no escapes, and is copied as it is.
fn write_string(text: &str, out: &mut Vec<u8>) {
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Whether any byte is a control character, `"` or `\\`: eight bytes at a time, since every
/// string of every JSON body written passes through here.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `word` is zero exactly where the high bit of its byte in the result is set.
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        // Below 0x20 when subtracting 0x20 borrows into a byte that had no high bit.
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        if control | has_zero(word ^ (ONES * u64::from(b'"'))) | has_zero(word ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Any value as compact JSON text. For values in messages and logs: serde_json's `Display`
/// would bring a second and a third copy of its writer into the module.
pub fn json_text(value: &Value) -> String {
    let mut out = Vec::new();
    write_plain(value, &mut out);
    // serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn write_plain(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(text) => write_string(text, out),
        _ => {
            let _ = serde_json::to_writer(&mut *out, value);
        }
    }
}

/// As [`decode_json`], reading only `fields` (indices in the layout) of the object when given:
/// the others are skipped as they are parsed, never built. For an upstream's answer, of which a
/// flow often reads a few fields.
///
/// One pass: each value is typed as it is parsed, by the field it lands in. When anything is
/// wrong the body is decoded again the plain way, parsed and then typed, whose errors name the
/// field and the value: failures are rare and need not be fast, answers are neither.
pub fn decode_json_fields(
    plan: &Plan,
    layout: u32,
    body: &[u8],
    fields: Option<&[u32]>,
) -> Result<Map<String, Value>, CodecError> {
    if let Some(message) = message(plan, layout) {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let typed = TypedMessage { plan, message, fields, depth: 0 }
            .deserialize(&mut deserializer)
            .and_then(|typed| deserializer.end().map(|()| typed));
        if let Ok(typed) = typed {
            return Ok(typed);
        }
    }
    decode_json_plainly(plan, layout, body, fields)
}

/// Parsed whole, the fields not read dropped, then typed: the reference the one-pass decoder
/// agrees with, and the source of its error messages. An empty body is an empty message.
pub fn decode_json_plainly(
    plan: &Plan,
    layout: u32,
    body: &[u8],
    fields: Option<&[u32]>,
) -> Result<Map<String, Value>, CodecError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| CodecError::new(format!("invalid JSON: {e}")))?;
    if let (Some(fields), Some(message), Value::Object(object)) = (fields, message(plan, layout), &mut value)
    {
        object.retain(|key, _| {
            let index = message.fields.iter().position(|f| f.name == *key || f.json_name == *key);
            index.is_some_and(|index| fields.contains(&(index as u32)))
        });
    }
    match normalize_message(plan, layout, value, 0)? {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}

/// Anything the one-pass decoder does not take: the plain decoder says what is wrong.
fn refused<E: serde::de::Error>() -> E {
    E::custom("not of the field's type")
}

/// A JSON object typed as a message, its unread fields skipped.
struct TypedMessage<'p> {
    plan: &'p Plan,
    message: &'p MessageLayout,
    fields: Option<&'p [u32]>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for TypedMessage<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TypedMessage<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(refused());
        }
        let mut typed = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let found =
                self.message.fields.iter().enumerate().find(|(_, f)| f.name == key || f.json_name == key);
            let read = |index: usize| self.fields.is_none_or(|fields| fields.contains(&(index as u32)));
            match found {
                Some((index, field)) if read(index) => {
                    let seed = TypedField { plan: self.plan, field, depth: self.depth, element: false };
                    match map.next_value_seed(seed)? {
                        Some(value) => typed.insert(field.name.clone(), value),
                        None => typed.remove(&field.name),
                    };
                }
                _ => map.next_value_seed(Skipped)?,
            }
        }
        Ok(typed)
    }
}

/// A value nobody reads, parsed but not built. Through `deserialize_any`, as a value is parsed,
/// so that it meets the parser's nesting limit as it does there.
struct Skipped;

impl<'de> DeserializeSeed<'de> for Skipped {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Skipped)
    }
}

impl<'de> Visitor<'de> for Skipped {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skipped)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skipped)?.is_some() {
            map.next_value_seed(Skipped)?;
        }
        Ok(())
    }
}

/// A JSON value typed by the field it lands in: the whole field (`None` for a null, which
/// leaves it absent), or one element of a list.
#[derive(Clone, Copy)]
struct TypedField<'p> {
    plan: &'p Plan,
    field: &'p FieldLayout,
    depth: usize,
    element: bool,
}

impl TypedField<'_> {
    fn single(&self) -> bool {
        self.element || !(self.field.map || self.field.repeated)
    }

    fn scalar<E: serde::de::Error>(self, value: Value) -> Result<Option<Value>, E> {
        if !self.single() || self.field.kind() == Kind::Message {
            return Err(refused());
        }
        normalize_single(self.plan, self.field, value, self.depth).map(Some).map_err(|_| refused())
    }
}

impl<'de> DeserializeSeed<'de> for TypedField<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TypedField<'_> {
    type Value = Option<Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a value of the field's type")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        if self.element {
            return Err(refused());
        }
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.scalar(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.scalar(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.scalar(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.scalar(serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(refused)?)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.scalar(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.scalar(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.single() || self.field.map {
            return Err(refused());
        }
        let element = TypedField { element: true, depth: self.depth + 1, ..self };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(element)? {
            items.push(item.ok_or_else(refused)?);
        }
        Ok(Some(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.field.map && !self.element {
            let value_field = map_value_field(self.plan, self.field).ok_or_else(refused)?;
            let entry =
                TypedField { plan: self.plan, field: value_field, depth: self.depth + 1, element: false };
            let mut entries = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                match map.next_value_seed(entry)? {
                    Some(value) => entries.insert(key, value),
                    None => entries.remove(&key),
                };
            }
            return Ok(Some(Value::Object(entries)));
        }
        if !self.single() || self.field.kind() != Kind::Message {
            return Err(refused());
        }
        let message = message(self.plan, self.field.message).ok_or_else(refused)?;
        let nested = TypedMessage { plan: self.plan, message, fields: None, depth: self.depth + 1 };
        nested.visit_map(map).map(|typed| Some(Value::Object(typed)))
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
    use semaphore_plan::{Codec, FieldLayout};
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
        decode_json_fields(&plan(), 0, body.as_bytes(), Some(&[0, 1]))
            .map(Value::Object)
            .map_err(|e| e.to_string())
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

    /// `User` with a nested user, a map and an enum besides.
    fn nested_plan() -> Plan {
        let mut plan = plan();
        let mut friend = field("friend", 5, Kind::Message);
        friend.message = 0;
        let mut scores = field("scores", 6, Kind::Message);
        (scores.message, scores.repeated, scores.map) = (1, true, true);
        let mut status = field("status", 7, Kind::Enum);
        status.enum_values = vec![
            semaphore_plan::EnumValue { name: "ACTIVE".into(), number: 0 },
            semaphore_plan::EnumValue { name: "GONE".into(), number: 1 },
        ];
        plan.messages[0].fields.extend([friend, scores, status]);
        let entry = vec![field("key", 1, Kind::String), field("value", 2, Kind::Int64)];
        plan.messages.push(MessageLayout { name: "ScoresEntry".into(), fields: entry });
        plan
    }

    #[test]
    fn one_pass_decoding_agrees_with_plain_decoding() {
        let plan = nested_plan();
        let deep_unknown = format!(r#"{{"unknown": {}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let bodies = [
            r#"{"id": "1", "fullName": "Ada", "age": "36", "tags": ["a", "b"], "status": 1}"#,
            r#"{"friend": {"id": 2, "friend": {"full_name": "Bo", "tags": []}}, "scores": {"x": "9007199254740993", "y": null}}"#,
            r#"{"age": 2.0, "status": "GONE", "unknown": {"deep": [1, {"a": null}]}, "id": null}"#,
            r#"{"id": "1", "id": "2", "tags": null, "friend": null}"#,
            r#"{"age": 2.5}"#,
            r#"{"age": 4294967296}"#,
            r#"{"tags": ["a", null]}"#,
            r#"{"tags": "a"}"#,
            r#"{"friend": [1]}"#,
            r#"{"scores": {"x": "nine"}}"#,
            r#"{"status": "LOST"}"#,
            r#"{"id": "1"} trailing"#,
            &deep_unknown,
            r#"[1]"#,
            "null",
            " ",
        ];
        for body in bodies {
            for fields in [None, Some(&[0, 4, 5][..])] {
                let one_pass = decode_json_fields(&plan, 0, body.as_bytes(), fields);
                assert_eq!(one_pass, decode_json_plainly(&plan, 0, body.as_bytes(), fields), "{body}");
            }
        }
        let decoded = decode_json_fields(&plan, 0, bodies[1].as_bytes(), None).map(Value::Object);
        let scores = json!({"x": 9007199254740993_i64});
        assert_eq!(
            decoded,
            Ok(json!({"friend": {"id": "2", "friend": {"full_name": "Bo", "tags": []}}, "scores": scores}))
        );
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let long = "a rather longer title, of several words";
        let mut texts: Vec<String> =
            ["plain", "quote \" inside", "back\\slash", "tab\tand\u{1}", "ünïcödé ✓", "del\u{7f}", ""]
                .map(String::from)
                .to_vec();
        // Every special character at every place within and across eight-byte words.
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..=long.len() {
                let mut text = long.to_string();
                text.insert(at, special);
                texts.push(text);
            }
        }
        // Bytes just past the special ones, which must not count as them.
        let near = " !#[]^_`\u{7f}\u{80}ÿ".repeat(3);
        assert!(!needs_escape(near.as_bytes()) && !needs_escape(long.as_bytes()));
        texts.push(near);
        for text in &texts {
            let mut out = Vec::new();
            write_string(text, &mut out);
            assert_eq!(String::from_utf8(out).ok(), serde_json::to_string(text).ok(), "{text:?}");
        }
    }

    #[test]
    fn scalars_are_written_as_serde_json_writes_them() {
        let values = [
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(9007199254740993_u64),
            json!(12.5),
            json!(-0.001),
            json!(1e300),
            json!(true),
            json!(false),
            Value::Null,
        ];
        for value in &values {
            let mut out = Vec::new();
            write_plain(value, &mut out);
            assert_eq!(String::from_utf8(out).ok(), serde_json::to_string(value).ok(), "{value}");
        }
    }

    #[test]
    fn held_values_are_written_as_if_they_were_copied_in() {
        let plan = nested_plan();
        let friend = json!({"id": "2", "tags": ["x"]});
        let tags = json!(["a", "b"]);
        let built = match json!({"id": "1", "age": 3}) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let outgoing = Outgoing { built, held: vec![(4, &friend), (3, &tags)] };
        let written = encode_json_outgoing(&plan, 0, &outgoing, Int64Json::Number);
        let copied = encode_json(&plan, 0, &outgoing.clone().into_map(&plan, 0), Int64Json::Number);
        assert_eq!(String::from_utf8(written.clone()).ok(), String::from_utf8(copied).ok());
        let expected = r#"{"id":"1","age":3,"tags":["a","b"],"friend":{"id":"2","tags":["x"]}}"#;
        assert_eq!(String::from_utf8(written).ok().as_deref(), Some(expected));
        // Every codec: as if copied in.
        let whole = outgoing.clone().into_map(&plan, 0);
        for codec in [Codec::Proto, Codec::FormUrlencoded, Codec::Xml] {
            let written =
                crate::engine::codec::encode_outgoing(&plan, 0, codec, Int64Json::Number, &outgoing);
            let copied = crate::engine::codec::encode_body(&plan, 0, codec, Int64Json::Number, &whole);
            assert_eq!(written, copied, "{codec:?}");
        }
        // Read and left out by name, built or held.
        assert_eq!(outgoing.get(&plan, 0, "tags"), Some(&tags));
        assert_eq!(outgoing.get(&plan, 0, "age"), Some(&json!(3)));
        assert_eq!(outgoing.get(&plan, 0, "nothing"), None);
        let rest = outgoing.without(&plan, 0, &["tags", "id"]).into_map(&plan, 0);
        assert_eq!(Value::Object(rest), json!({"age": 3, "friend": {"id": "2", "tags": ["x"]}}));
    }
}
