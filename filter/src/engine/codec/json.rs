//! JSON bodies. Encoding writes the proto field names as keys, as Semaphore always wrote them,
//! 64-bit integers as numbers (exactly, also beyond 2^53) unless the endpoint or service asks for
//! strings, enums by name and bytes as base64; decoding accepts both the field name and its
//! lowerCamelCase JSON name, and 64-bit integers as numbers or strings.

use std::borrow::Cow;

use crate::engine::value::{Map, Value};
use semaphore_plan::{FieldLayout, Kind, MessageLayout, Plan};

use super::typing::{map_value_field, message, normalize_message, normalize_single, CodecError, MAX_DEPTH};
use super::Outgoing;

/// Parses a JSON body into a message of the given layout. Unknown fields are ignored.
pub fn decode_json(plan: &Plan, layout: u32, body: &[u8]) -> Result<Map, CodecError> {
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
pub fn encode_json(plan: &Plan, layout: u32, message: &Map, int64: Int64Json) -> Vec<u8> {
    // Most bodies fit in a KiB, which the module's allocator hands out from its largest class;
    // a body written into a smaller start grew by copies.
    let mut out = Vec::with_capacity(1024);
    JsonWriter { plan, int64 }.message(layout, message, &mut out, 0);
    out
}

/// As [`encode_json`], for a message some of whose fields are held elsewhere.
pub fn encode_json_outgoing(plan: &Plan, layout: u32, message: &Outgoing, int64: Int64Json) -> Vec<u8> {
    // As in `encode_json`.
    let mut out = Vec::with_capacity(1024);
    let field = |index: usize, field: &FieldLayout| message.field(index, field);
    JsonWriter { plan, int64 }.fields(layout, &field, &mut out, 0);
    out
}

struct JsonWriter<'p> {
    plan: &'p Plan,
    int64: Int64Json,
}

impl JsonWriter<'_> {
    fn message(&self, layout: u32, message: &Map, out: &mut Vec<u8>, depth: usize) {
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
    string_length(bytes) < bytes.len()
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
) -> Result<Map, CodecError> {
    match in_one_pass(plan, layout, body, fields) {
        Some(typed) => Ok(typed),
        None => decode_json_plainly(plan, layout, body, fields),
    }
}

/// The body's message read in one pass (see [`OnePass`]), or `None` when the reader refuses it.
fn in_one_pass(plan: &Plan, layout: u32, body: &[u8], fields: Option<&[u32]>) -> Option<Map> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = OnePass { plan, text, body, at: 0, nesting: 0 };
    let typed = reader.message(message(plan, layout)?, fields, 0)?;
    reader.peek().is_none().then_some(typed)
}

/// Parsed whole, the fields not read dropped, then typed: the reference the one-pass decoder
/// agrees with, and the source of its error messages. An empty body is an empty message.
pub fn decode_json_plainly(
    plan: &Plan,
    layout: u32,
    body: &[u8],
    fields: Option<&[u32]>,
) -> Result<Map, CodecError> {
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

/// A JSON body read once, each value typed as it is read by the field it lands in, and the
/// values of fields not read checked but not built. `None` refuses the body, for the plain
/// decoder to say why: the reader gives up on anything the plain decoder might refuse (the
/// parser's nesting limit, a malformed or out-of-range number, invalid UTF-8, a lone
/// surrogate) and on anything not of its field's type, and otherwise builds what it builds.
struct OnePass<'b, 'p> {
    plan: &'p Plan,
    /// The body, which the reader refuses unless it is UTF-8, as JSON is: its strings are
    /// then slices of it, with no check of their own.
    text: &'b str,
    body: &'b [u8],
    at: usize,
    /// Arrays and objects open around the reader, which serde_json's parser bounds.
    nesting: usize,
}

/// serde_json refuses a document nested this deep.
const PARSER_NESTING_LIMIT: usize = 128;

impl<'b> OnePass<'b, '_> {
    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.body.get(self.at) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    #[inline]
    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    /// Past the end of an array or an object, or past the comma before its next member.
    /// `Some(true)` when there is a next member.
    #[inline]
    fn next_member(&mut self, close: u8) -> Option<bool> {
        let byte = self.peek()?;
        self.at += 1;
        match byte {
            b',' => Some(true),
            _ if byte == close => {
                self.nesting = self.nesting.saturating_sub(1);
                Some(false)
            }
            _ => None,
        }
    }

    /// Into an array or an object, whose first byte is next. `Some(true)` when it has members.
    fn open(&mut self, open: u8, close: u8) -> Option<bool> {
        self.eat(open)?;
        self.nesting += 1;
        if self.nesting >= PARSER_NESTING_LIMIT {
            return None;
        }
        if self.peek()? == close {
            self.at += 1;
            self.nesting = self.nesting.saturating_sub(1);
            return Some(false);
        }
        Some(true)
    }

    #[inline]
    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.at.checked_add(text.len())?;
        (self.body.get(self.at..end)? == text).then(|| self.at = end)
    }

    /// The typed message of an object, its fields outside `fields` (when given) skipped.
    fn message(&mut self, message: &MessageLayout, fields: Option<&[u32]>, depth: usize) -> Option<Map> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut typed = Map::new();
        let mut more = self.open(b'{', b'}')?;
        // Keys mostly come in the schema's order: the field after the last one found is tried
        // first.
        let mut next = 0;
        while more {
            let key = self.string()?;
            self.eat(b':')?;
            let named = |field: &FieldLayout| field.name == key || field.json_name == key;
            let found = match message.fields.get(next) {
                Some(field) if named(field) => Some((next, field)),
                _ => message.fields.iter().enumerate().find(|(_, field)| named(field)),
            };
            match found {
                Some((index, field)) if fields.is_none_or(|fields| fields.contains(&(index as u32))) => {
                    next = index + 1;
                    match self.field(field, depth, false)? {
                        Some(value) => typed.insert(field.name.clone(), value),
                        None => typed.remove(&field.name),
                    };
                }
                _ => self.skip()?,
            }
            more = self.next_member(b'}')?;
        }
        Some(typed)
    }

    /// The value of `field`, or one element of it (`element`); `Some(None)` for a null, which
    /// leaves the field absent.
    fn field(&mut self, field: &FieldLayout, depth: usize, element: bool) -> Option<Option<Value>> {
        let single = element || !(field.map || field.repeated);
        match self.peek()? {
            b'n' if !element => self.literal(b"null").map(|()| None),
            b'[' if !single && !field.map => {
                let mut items = Vec::new();
                let mut more = self.open(b'[', b']')?;
                while more {
                    items.push(self.field(field, depth + 1, true)??);
                    more = self.next_member(b']')?;
                }
                Some(Some(Value::Array(items)))
            }
            b'{' if field.map && !element => {
                let value_field = map_value_field(self.plan, field)?;
                let mut entries = Map::new();
                let mut more = self.open(b'{', b'}')?;
                while more {
                    let key = self.string()?.into_owned();
                    self.eat(b':')?;
                    match self.field(value_field, depth + 1, false)? {
                        Some(value) => entries.insert(key, value),
                        None => entries.remove(&key),
                    };
                    more = self.next_member(b'}')?;
                }
                Some(Some(Value::Object(entries)))
            }
            b'{' if single && field.kind() == Kind::Message => {
                let nested = message(self.plan, field.message)?;
                self.message(nested, None, depth + 1).map(|typed| Some(Value::Object(typed)))
            }
            // What normalizing would make of it, without the detour.
            b'"' if single && field.kind() == Kind::String => {
                Some(Some(Value::String(self.string()?.into_owned())))
            }
            b'"' | b't' | b'f' | b'-' | b'0'..=b'9' if single && field.kind() != Kind::Message => {
                let value = self.scalar()?;
                normalize_single(self.plan, field, value, depth).ok().map(Some)
            }
            _ => None,
        }
    }

    fn scalar(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => Some(Value::String(self.string()?.into_owned())),
            b't' => self.literal(b"true").map(|()| Value::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Value::Bool(false)),
            _ => self.number(),
        }
    }

    /// A value nobody reads, checked as the plain decoder's parser checks it, not built.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'{' => {
                let mut more = self.open(b'{', b'}')?;
                while more {
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip()?;
                    more = self.next_member(b'}')?;
                }
            }
            b'[' => {
                let mut more = self.open(b'[', b']')?;
                while more {
                    self.skip()?;
                    more = self.next_member(b']')?;
                }
            }
            b'n' => self.literal(b"null")?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'"' => self.skip_string()?,
            _ => self.skip_number()?,
        }
        Some(())
    }

    /// A number as serde_json reads it: short ones here, computed as serde_json computes them,
    /// anything else (exponents, long integers) by serde_json itself.
    fn number(&mut self) -> Option<Value> {
        let number = self.scan_number()?;
        if number.exponent || number.integer + number.fraction > 18 {
            return match serde_json::from_slice(number.text).ok()? {
                parsed @ Value::Number(_) => Some(parsed),
                _ => None,
            };
        }
        // At most 18 digits: no overflow, in u64 nor in i64.
        let significand = number
            .text
            .iter()
            .filter(|b| b.is_ascii_digit())
            .fold(0, |n: u64, d| n * 10 + u64::from(d - b'0'));
        match (number.fraction, number.negative) {
            (0, false) => return Some(Value::from(significand)),
            // serde_json reads `-0` as a float.
            (0, true) if significand > 0 => return Some(Value::from(-(significand as i64))),
            _ => {}
        }
        // serde_json's own arithmetic (without its `float_roundtrip` feature): one division by
        // a power of ten that a double holds exactly.
        let magnitude = significand as f64 / EXACT_POWERS_OF_TEN.get(number.fraction)?;
        serde_json::Number::from_f64(if number.negative { -magnitude } else { magnitude }).map(Value::Number)
    }

    /// A number nobody reads: only what serde_json might refuse as out of range (an exponent,
    /// or more than 300 digits before the point) goes to it to check.
    fn skip_number(&mut self) -> Option<()> {
        let number = self.scan_number()?;
        if number.exponent || number.integer > 300 {
            serde_json::from_slice::<Value>(number.text).ok()?;
        }
        Some(())
    }

    /// Past a number of JSON's grammar, whose parts it returns.
    fn scan_number(&mut self) -> Option<NumberText<'b>> {
        let body = self.body;
        let start = self.at;
        let mut at = start;
        let negative = body.get(at) == Some(&b'-');
        if negative {
            at += 1;
        }
        let integer = digits(body, &mut at);
        if integer == 0 || (integer > 1 && body.get(at - integer) == Some(&b'0')) {
            return None;
        }
        let mut fraction = 0;
        if body.get(at) == Some(&b'.') {
            at += 1;
            fraction = digits(body, &mut at);
            if fraction == 0 {
                return None;
            }
        }
        let exponent = matches!(body.get(at), Some(b'e' | b'E'));
        if exponent {
            at += 1;
            if matches!(body.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            if digits(body, &mut at) == 0 {
                return None;
            }
        }
        self.at = at;
        Some(NumberText { text: body.get(start..at)?, negative, integer, fraction, exponent })
    }

    /// A string, borrowed from the body unless it has escapes.
    fn string(&mut self) -> Option<Cow<'b, str>> {
        let (text, body) = (self.text, self.text.as_bytes());
        self.eat(b'"')?;
        let mut owned: Option<String> = None;
        loop {
            let start = self.at;
            let end = start + string_length(body.get(start..)?);
            // Both ends are next to ASCII bytes, so on character boundaries.
            let segment = text.get(start..end)?;
            self.at = end + 1;
            match body.get(end)? {
                b'"' => {
                    return Some(match owned {
                        None => Cow::Borrowed(segment),
                        Some(mut owned) => {
                            owned.push_str(segment);
                            Cow::Owned(owned)
                        }
                    })
                }
                b'\\' => {
                    let owned = owned.get_or_insert_with(String::new);
                    owned.push_str(segment);
                    owned.push(self.escape()?);
                }
                // A control character, which JSON strings escape.
                _ => return None,
            }
        }
    }

    /// Past a string nobody reads, checked as `string` checks it.
    fn skip_string(&mut self) -> Option<()> {
        let body = self.body;
        self.eat(b'"')?;
        loop {
            let end = self.at + string_length(body.get(self.at..)?);
            self.at = end + 1;
            match body.get(end)? {
                b'"' => return Some(()),
                b'\\' => {
                    self.escape()?;
                }
                _ => return None,
            }
        }
    }

    /// The character of an escape, whose `\` is read.
    fn escape(&mut self) -> Option<char> {
        let letter = *self.body.get(self.at)?;
        self.at += 1;
        match letter {
            b'u' => self.unicode_escape(),
            _ => escaped_char(letter),
        }
    }

    /// The character of a `\u` escape, whose `u` is read: a surrogate pair makes one.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                self.literal(b"\\u")?;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                0x1_0000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            other => other,
        };
        // A lone trailing surrogate is no character.
        char::from_u32(code)
    }

    fn hex4(&mut self) -> Option<u32> {
        let end = self.at.checked_add(4)?;
        let digits = self.body.get(self.at..end)?;
        self.at = end;
        digits.iter().try_fold(0, |code, &digit| Some(code << 4 | char::from(digit).to_digit(16)?))
    }
}

/// The character a one-letter escape stands for: the same in JSON strings as in GraphQL's
/// (`\u` aside, which each reads its own way).
pub fn escaped_char(letter: u8) -> Option<char> {
    Some(match letter {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    })
}

/// How many bytes of `bytes` come before a `"`, a `\` or a control character (all of them if
/// none does): eight bytes at a time, as most of a JSON body is strings.
#[inline]
fn string_length(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut length = 0;
    for chunk in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        let special = special_bytes(u64::from_le_bytes(word));
        if special != 0 {
            // The first special byte is the lowest marked one, in little-endian order.
            return length + (special.trailing_zeros() / 8) as usize;
        }
        length += 8;
    }
    length + words.remainder().iter().take_while(|&&b| b >= 0x20 && b != b'"' && b != b'\\').count()
}

/// A number's text and the parts the reader needs.
struct NumberText<'b> {
    text: &'b [u8],
    negative: bool,
    /// Digits before the point, and after it.
    integer: usize,
    fraction: usize,
    exponent: bool,
}

/// 10^0 to 10^22: the powers of ten a double holds exactly, as serde_json's table has them.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// How many digits start at `at`, which it moves past them.
#[inline]
fn digits(body: &[u8], at: &mut usize) -> usize {
    let from = *at;
    while body.get(*at).is_some_and(u8::is_ascii_digit) {
        *at += 1;
    }
    *at - from
}

/// The high bit of each byte of `word` that is a control character, `"` or `\\`, and
/// perhaps of bytes after the first such one.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `word` is zero exactly where the high bit of its byte in the result is set,
    // up to the first zero byte.
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    // Below 0x20 when subtracting 0x20 borrows into a byte that had no high bit.
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    control | has_zero(word ^ (ONES * u64::from(b'"'))) | has_zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::value::json;
    use semaphore_plan::{Codec, FieldLayout};

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
        let ratio = field("ratio", 8, Kind::Double);
        status.enum_values = vec![
            semaphore_plan::EnumValue { name: "ACTIVE".into(), number: 0 },
            semaphore_plan::EnumValue { name: "GONE".into(), number: 1 },
        ];
        plan.messages[0].fields.extend([friend, scores, status, ratio]);
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

    /// Nested `depth` levels deep, the outer object counted, in a field nobody reads.
    fn nested_unknown(depth: usize) -> String {
        format!(r#"{{"unknown": {}1{}}}"#, "[".repeat(depth - 1), "]".repeat(depth - 1))
    }

    #[test]
    fn the_one_pass_reader_takes_every_body_plain_decoding_takes() {
        let plan = nested_plan();
        let deepest = nested_unknown(127);
        let bodies = [
            r#"{"id": "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\u0000", "fullName": "ünïcödé ✓ 😀"}"#,
            " \n{ \"id\" :\t\"1\" ,\r\n \"tags\" : [ \"a\" , \"b\" ] , \"friend\" : { } } \n",
            r#"{"tags": [], "friend": {"tags": [], "friend": {}}, "scores": {}}"#,
            r#"{"age": 0, "scores": {"a": 1, "b": -9007199254740993, "c": "12", "d": 123456789012345678}}"#,
            r#"{"age": -5, "ratio": 0.1}"#,
            r#"{"age": 12.0, "ratio": -12.5}"#,
            r#"{"ratio": -0}"#,
            r#"{"ratio": -0.0}"#,
            r#"{"ratio": 3}"#,
            r#"{"ratio": 1e-7}"#,
            r#"{"ratio": 123456789.123456789}"#,
            r#"{"ratio": 0.30000000000000004}"#,
            r#"{"ratio": 0.3, "unknown": [1.1, 4.35]}"#,
            r#"{"ratio": 4.35}"#,
            r#"{"ratio": 123.456}"#,
            r#"{"ratio": -9.87654321}"#,
            r#"{"ratio": 1234567890123456789.5}"#,
            r#"{"ratio": 9007199254740993}"#,
            r#"{"ratio": 0.0000000000000000000001}"#,
            r#"{"ratio": 1.7976931348623157e308}"#,
            r#"{"unknown": [0, -0, 0.1, -12.5e-3, 1E+2, 123456789012345678901234567890, true, false, null]}"#,
            r#"{"unknown": {"a": {"b": ["\u00e9", "\ud83d\ude00", "\"", {}]}}, "id": "x"}"#,
            r#"{"id": "1", "id": "2", "tags": null, "friend": null, "ratio": null}"#,
            r#"{"ratio": 1, "status": "GONE", "scores": {"x": 1}, "friend": {"id": "f"}, "age": 3, "id": "i"}"#,
            &deepest,
        ];
        for body in bodies {
            for fields in [None, Some(&[0, 4, 5, 7][..])] {
                let plain = decode_json_plainly(&plan, 0, body.as_bytes(), fields);
                assert!(plain.is_ok(), "{body}: {plain:?}");
                let one_pass = in_one_pass(&plan, 0, body.as_bytes(), fields);
                // As text too, which tells -0.0 from 0.
                let text = |message: &Option<Map>| message.clone().map(|m| json_text(&Value::Object(m)));
                assert_eq!(text(&one_pass), text(&plain.as_ref().ok().cloned()), "{body}");
                assert_eq!(one_pass, plain.ok(), "{body}");
            }
        }
    }

    #[test]
    fn the_one_pass_reader_refuses_every_body_plain_decoding_refuses() {
        let plan = nested_plan();
        let mut bodies: Vec<Vec<u8>> = [
            r#"{"id": "\ud800"}"#,
            r#"{"id": "\udc00"}"#,
            r#"{"id": "\ud800\u0041"}"#,
            r#"{"id": "\ud800x"}"#,
            r#"{"id": "\u00g0"}"#,
            r#"{"id": "\x"}"#,
            "{\"id\": \"a\tb\"}",
            "{\"unknown\": \"a\u{1}b\"}",
            r#"{"unknown": 1e400}"#,
            r#"{"unknown": -1e400}"#,
            r#"{"ratio": 1e400}"#,
            r#"{"unknown": 01}"#,
            r#"{"unknown": 1.}"#,
            r#"{"unknown": 1.e5}"#,
            r#"{"unknown": 1e}"#,
            r#"{"unknown": -}"#,
            r#"{"unknown": .5}"#,
            r#"{"unknown": +1}"#,
            r#"{"unknown": tru}"#,
            r#"{"unknown": nul}"#,
            r#"{"unknown": [1,]}"#,
            r#"{"id": "1",}"#,
            r#"{"id" "1"}"#,
            r#"{"id": "1"}}"#,
            r#"{"id": "1""#,
            r#"{"id": "1"#,
            r#"{id: "1"}"#,
            "\u{feff}{}",
        ]
        .iter()
        .map(|body| body.as_bytes().to_vec())
        .collect();
        bodies.push(nested_unknown(128).into_bytes());
        bodies.push(format!(r#"{{"unknown": 4{}}}"#, "0".repeat(400)).into_bytes());
        bodies.push(b"{\"unknown\": \"\xff\"}".to_vec());
        bodies.push(b"{\"id\": \"caf\xe9\"}".to_vec());
        for body in &bodies {
            let shown = String::from_utf8_lossy(body);
            for fields in [None, Some(&[0, 4, 5, 7][..])] {
                let plain = decode_json_plainly(&plan, 0, body, fields);
                assert!(plain.is_err(), "{shown}: {plain:?}");
                assert_eq!(in_one_pass(&plan, 0, body, fields), None, "{shown}");
                assert_eq!(decode_json_fields(&plan, 0, body, fields), plain, "{shown}");
            }
        }
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
            let special = |b: &u8| *b < 0x20 || *b == b'"' || *b == b'\\';
            let first = text.bytes().position(|b| special(&b)).unwrap_or(text.len());
            assert_eq!(string_length(text.as_bytes()), first, "{text:?}");
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
