//! The XML codec: a message is an element whose child elements are its fields, read and written
//! from the plan's message layouts, to and from the same typed values the JSON codec produces.
//!
//! The document shape is Semaphore's:
//! - the root element is the message, read whatever its name; it is written with the message's
//!   name (`Countries` for `com.semaphore.Countries`). Semaphore wrote the name of its root
//!   property instead, the full message name for some messages and an empty (unwritable) one
//!   for the requests and outputs that flows build;
//! - a field is a child element named as the proto field, written in schema order, absent
//!   fields left out; a repeated field is the element repeated, once per item; a nested message
//!   is a nested element; an enum is its value's name; a scalar is the element's text;
//! - a `map<K, V>`, which Semaphore could not carry, is a repeated entry element named as the
//!   field holding `<key>` and `<value>`: protobuf's own view of a map, a repeated message of
//!   key and value.
//!
//! Reading is lenient where real XML APIs need it: names match by local name (the World Bank's
//! `<wb:country>` is `country`); unknown elements and attributes are skipped (Semaphore failed
//! on an unknown element); comments, CDATA and processing instructions are allowed; and an
//! attribute of a message element fills a singular scalar field of that name
//! (`<wb:country id="ABW">`) unless a child element gives it (Semaphore ignored attributes).
//! Every value is then typed by `typing::normalize_message`: the same rules and the same error
//! messages as JSON. Reading is strict where input could be hostile: no DOCTYPE (so no entity
//! expansion), no undefined entities, elements at most `MAX_DEPTH` deep, end tags must match.

use crate::engine::value::{Map, Number, Value};
use semaphore_plan::{FieldLayout, Kind, MessageLayout, Plan};
use xmlparser::{ElementEnd, Reference, StrSpan, Stream, Token, Tokenizer};

use super::typing::{self, CodecError, MAX_DEPTH};

fn error(message: impl Into<String>) -> CodecError {
    CodecError { field: String::new(), message: message.into() }
}

/// Parses an XML document into a message of the given layout.
pub fn decode(plan: &Plan, layout: u32, body: &[u8]) -> Result<Map, CodecError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(body).map_err(|_| error("the XML body is not valid UTF-8"))?;
    let Some(message) = typing::message(plan, layout) else {
        return Err(error("message layout missing from the plan"));
    };
    let mut document = Document { tokens: Tokenizer::from(text) };
    let root = document.root()?;
    let untyped = document.message(plan, message, root, 1)?;
    document.finish()?;
    match typing::normalize_message(plan, layout, Value::Object(untyped), 0)? {
        Value::Object(typed) => Ok(typed),
        _ => Ok(Map::new()),
    }
}

/// An element's qualified name, as its end tag must repeat it.
#[derive(Clone, Copy)]
struct Name<'x> {
    prefix: StrSpan<'x>,
    local: StrSpan<'x>,
}

impl Name<'_> {
    fn closed_by(&self, prefix: StrSpan, local: StrSpan) -> bool {
        self.prefix.as_str() == prefix.as_str() && self.local.as_str() == local.as_str()
    }

    fn qualified(&self) -> String {
        match self.prefix.as_str() {
            "" => self.local.as_str().to_string(),
            prefix => format!("{prefix}:{}", self.local.as_str()),
        }
    }
}

/// Reads the document into untyped values: text as JSON strings, repeated fields as arrays,
/// maps and messages as objects, which `normalize_message` then types.
struct Document<'x> {
    tokens: Tokenizer<'x>,
}

impl<'x> Document<'x> {
    /// The next token; `None` only at the end of the document.
    fn token(&mut self) -> Result<Option<Token<'x>>, CodecError> {
        match self.tokens.next() {
            None => Ok(None),
            Some(Err(e)) => Err(error(format!("invalid XML: {e}"))),
            Some(Ok(
                Token::DtdStart { .. }
                | Token::EmptyDtd { .. }
                | Token::EntityDeclaration { .. }
                | Token::DtdEnd { .. },
            )) => Err(error("XML with a DOCTYPE declaration is refused")),
            Some(Ok(token)) => Ok(Some(token)),
        }
    }

    /// The next token inside an element, whose end must come before the document's.
    fn content(&mut self) -> Result<Token<'x>, CodecError> {
        self.token()?.ok_or_else(|| error("invalid XML: the document ends inside an element"))
    }

    /// The root element's name, past the declaration, comments and processing instructions.
    fn root(&mut self) -> Result<Name<'x>, CodecError> {
        loop {
            match self.token()? {
                Some(Token::ElementStart { prefix, local, .. }) => return Ok(Name { prefix, local }),
                Some(_) => {}
                None => return Err(error("invalid XML: the document has no root element")),
            }
        }
    }

    /// After the root element only comments and processing instructions may follow, which
    /// the tokenizer checks; reading on surfaces its errors.
    fn finish(&mut self) -> Result<(), CodecError> {
        while self.token()?.is_some() {}
        Ok(())
    }

    fn position(&self, span: StrSpan) -> String {
        self.tokens.stream().gen_text_pos_from(span.start()).to_string()
    }

    fn end_tag(&self, name: Name, prefix: StrSpan, local: StrSpan) -> Result<(), CodecError> {
        if name.closed_by(prefix, local) {
            return Ok(());
        }
        Err(error(format!(
            "invalid XML: expected `</{}>` at {}, found `</{}>`",
            name.qualified(),
            self.position(local),
            Name { prefix, local }.qualified()
        )))
    }

    /// Reads the attributes of the element just started, handing each to `attribute`; `true`
    /// when the element has content to read, `false` when it was empty (`<name/>`).
    fn attributes(
        &mut self,
        mut attribute: impl FnMut(StrSpan<'x>, StrSpan<'x>, StrSpan<'x>) -> Result<(), CodecError>,
    ) -> Result<bool, CodecError> {
        loop {
            match self.content()? {
                Token::Attribute { prefix, local, value, .. } => attribute(prefix, local, value)?,
                Token::ElementEnd { end: ElementEnd::Open, .. } => return Ok(true),
                Token::ElementEnd { end: ElementEnd::Empty, .. } => return Ok(false),
                _ => return Err(error("invalid XML: a start tag does not end")),
            }
        }
    }

    /// The fields of a message element, once its start tag's name has been read.
    fn message(
        &mut self,
        plan: &Plan,
        layout: &MessageLayout,
        name: Name<'x>,
        depth: usize,
    ) -> Result<Map, CodecError> {
        let mut fields = Map::new();
        let has_content = self.attributes(|prefix, local, value| {
            let declares_namespace =
                prefix.as_str() == "xmlns" || (prefix.is_empty() && local.as_str() == "xmlns");
            let field = typing::field_by_name(layout, local.as_str())
                .filter(|f| !declares_namespace && !f.repeated && f.kind() != Kind::Message);
            if let Some(field) = field {
                let mut text = String::new();
                unescape(value.as_str(), Within::Attribute, &mut text)?;
                if let Some(value) = scalar(field, Value::String(text)) {
                    fields.insert(field.name.clone(), value);
                }
            }
            Ok(())
        })?;
        if !has_content {
            return Ok(fields);
        }
        loop {
            match self.content()? {
                Token::ElementStart { prefix, local, .. } => {
                    let child = Name { prefix, local };
                    if depth >= MAX_DEPTH {
                        return Err(error(format!("nested deeper than {MAX_DEPTH} levels")));
                    }
                    match typing::field_by_name(layout, local.as_str()) {
                        Some(field) => self.field(plan, field, child, depth + 1, &mut fields)?,
                        None => self.skip(child, depth + 1)?,
                    }
                }
                Token::ElementEnd { end: ElementEnd::Close(prefix, local), .. } => {
                    self.end_tag(name, prefix, local)?;
                    return Ok(fields);
                }
                // Text between fields (indentation, mostly), comments, CDATA and processing
                // instructions carry no field.
                _ => {}
            }
        }
    }

    /// One element of a field, added to the message's fields: a map entry, a repeated item, or
    /// the field's value (a later element of a singular field replaces an earlier one).
    fn field(
        &mut self,
        plan: &Plan,
        field: &FieldLayout,
        name: Name<'x>,
        depth: usize,
        fields: &mut Map,
    ) -> Result<(), CodecError> {
        if field.map {
            let (key, value) = self.map_entry(plan, field, name, depth)?;
            if let Some(Value::Object(entries)) =
                fields.get_or_insert_with(&field.name, || Value::Object(Map::new()))
            {
                entries.insert(key, value);
            }
            return Ok(());
        }
        let value = match field.kind() {
            Kind::Message => {
                let Some(layout) = typing::message(plan, field.message) else {
                    return Err(error("message layout missing from the plan"));
                };
                Some(Value::Object(self.message(plan, layout, name, depth)?))
            }
            _ => scalar(field, self.text(name, depth)?),
        };
        let Some(value) = value else { return Ok(()) };
        if !field.repeated {
            fields.insert(field.name.clone(), value);
            return Ok(());
        }
        match fields.get_or_insert_with(&field.name, || Value::Array(Vec::new())) {
            Some(Value::Array(items)) => items.push(value),
            Some(other) => *other = Value::Array(vec![value]),
            None => {}
        }
        Ok(())
    }

    /// A map entry element: its `<key>` text and its untyped `<value>`, each the proto3
    /// default when missing, as in protobuf's own encoding of maps.
    fn map_entry(
        &mut self,
        plan: &Plan,
        field: &FieldLayout,
        name: Name<'x>,
        depth: usize,
    ) -> Result<(String, Value), CodecError> {
        let Some(entry) = typing::message(plan, field.message) else {
            return Err(error("map entry layout missing from the plan"));
        };
        let mut read = self.message(plan, entry, name, depth)?;
        let key = match (read.remove("key"), typing::map_key_field(plan, field)) {
            (Some(Value::String(key)), _) => key,
            (_, Some(key_field)) => typing::to_text(&default(key_field)),
            (_, None) => String::new(),
        };
        let value = match (read.remove("value"), typing::map_value_field(plan, field)) {
            (Some(value), _) => value,
            (None, Some(value_field)) => default(value_field),
            (None, None) => Value::Null,
        };
        Ok((key, value))
    }

    /// The text of an element that holds a scalar. An element that holds elements instead
    /// reads as an object, which typing then refuses as JSON would.
    fn text(&mut self, name: Name<'x>, depth: usize) -> Result<Value, CodecError> {
        let mut text = String::new();
        let mut holds_elements = false;
        // Attributes of a scalar (the World Bank's `<wb:region id="LCN">`) have no field.
        if !self.attributes(|_, _, _| Ok(()))? {
            return Ok(Value::String(text));
        }
        loop {
            match self.content()? {
                Token::Text { text: raw } => unescape(raw.as_str(), Within::Text, &mut text)?,
                Token::Cdata { text: raw, .. } => text.push_str(raw.as_str()),
                Token::ElementStart { prefix, local, .. } => {
                    holds_elements = true;
                    if depth >= MAX_DEPTH {
                        return Err(error(format!("nested deeper than {MAX_DEPTH} levels")));
                    }
                    self.skip(Name { prefix, local }, depth + 1)?;
                }
                Token::ElementEnd { end: ElementEnd::Close(prefix, local), .. } => {
                    self.end_tag(name, prefix, local)?;
                    break;
                }
                _ => {}
            }
        }
        Ok(if holds_elements { Value::Object(Map::new()) } else { Value::String(text) })
    }

    /// Reads past an element no field asked for, and everything in it. Iterative, with the
    /// open names on a stack, so that end tags are checked here too.
    fn skip(&mut self, name: Name<'x>, depth: usize) -> Result<(), CodecError> {
        let mut open = vec![name];
        while let Some(&innermost) = open.last() {
            match self.content()? {
                Token::ElementStart { prefix, local, .. } => {
                    if depth + open.len() > MAX_DEPTH {
                        return Err(error(format!("nested deeper than {MAX_DEPTH} levels")));
                    }
                    open.push(Name { prefix, local });
                }
                Token::ElementEnd { end: ElementEnd::Empty, .. } => {
                    open.pop();
                }
                Token::ElementEnd { end: ElementEnd::Close(prefix, local), .. } => {
                    self.end_tag(innermost, prefix, local)?;
                    open.pop();
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What a scalar field's text stands for before typing. Only a string keeps its text exactly;
/// other kinds are trimmed, since pretty-printed XML surrounds values with whitespace, and an
/// empty one is absent (the World Bank sends `<wb:longitude></wb:longitude>`), as a JSON null
/// is: a singular field is left out, a repeated field skips that item.
fn scalar(field: &FieldLayout, value: Value) -> Option<Value> {
    match (field.kind(), value) {
        (Kind::String, value) => Some(value),
        (_, Value::String(text)) => {
            let trimmed = text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'));
            (!trimmed.is_empty()).then(|| Value::String(trimmed.to_string()))
        }
        (_, value) => Some(value),
    }
}

/// The proto3 default of a field, in a form typing accepts.
fn default(field: &FieldLayout) -> Value {
    match field.kind() {
        Kind::Message => Value::Object(Map::new()),
        Kind::String | Kind::Bytes => Value::String(String::new()),
        Kind::Bool => Value::Bool(false),
        _ => Value::Number(Number::from(0)),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Within {
    Text,
    Attribute,
}

/// Resolves character and predefined entity references and normalizes line ends (and, in an
/// attribute, whitespace) as an XML processor must. With DOCTYPEs refused there are no other
/// entities: any other reference is an error.
fn unescape(raw: &str, within: Within, out: &mut String) -> Result<(), CodecError> {
    let mut chars = raw.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '&' => {
                let mut reference = Stream::from(raw.get(at..).unwrap_or_default());
                match reference.consume_reference() {
                    Ok(Reference::Char(c)) => out.push(c),
                    Ok(Reference::Entity(name)) => {
                        return Err(error(format!("invalid XML: undefined entity `&{name};`")))
                    }
                    Err(_) => return Err(error("invalid XML: `&` starts no character or entity reference")),
                }
                let end = at + reference.pos();
                while chars.next_if(|(i, _)| *i < end).is_some() {}
            }
            '\r' => {
                chars.next_if(|(_, c)| *c == '\n');
                out.push(if within == Within::Attribute { ' ' } else { '\n' });
            }
            '\n' | '\t' if within == Within::Attribute => out.push(' '),
            c => out.push(c),
        }
    }
    Ok(())
}

/// The XML form of a typed message: the root element named as the message, fields in schema
/// order, absent fields omitted.
pub fn encode(plan: &Plan, layout: u32, message: &Map) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let full_name = typing::message(plan, layout).map(|m| m.name.as_str()).unwrap_or_default();
    let name = match full_name.rsplit('.').next() {
        Some(name) if !name.is_empty() => name,
        _ => "message",
    };
    open(name, &mut out);
    write_fields(plan, layout, message, &mut out, 0);
    close(name, &mut out);
    out
}

fn open(name: &str, out: &mut Vec<u8>) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

fn close(name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

fn write_fields(plan: &Plan, layout: u32, message: &Map, out: &mut Vec<u8>, depth: usize) {
    let layout = typing::message(plan, layout).filter(|_| depth <= MAX_DEPTH);
    for field in layout.map(|l| l.fields.as_slice()).unwrap_or_default() {
        let Some(value) = message.get(&field.name) else { continue };
        match value {
            Value::Object(entries) if field.map => {
                let value_field = typing::map_value_field(plan, field);
                for (key, entry) in entries {
                    open(&field.name, out);
                    open("key", out);
                    write_text(key, out);
                    close("key", out);
                    open("value", out);
                    if let Some(value_field) = value_field {
                        write_value(plan, value_field, entry, out, depth + 1);
                    }
                    close("value", out);
                    close(&field.name, out);
                }
            }
            Value::Array(items) if field.repeated => {
                for item in items {
                    open(&field.name, out);
                    write_value(plan, field, item, out, depth);
                    close(&field.name, out);
                }
            }
            value => {
                open(&field.name, out);
                write_value(plan, field, value, out, depth);
                close(&field.name, out);
            }
        }
    }
}

fn write_value(plan: &Plan, field: &FieldLayout, value: &Value, out: &mut Vec<u8>, depth: usize) {
    match (field.kind(), value) {
        (Kind::Message, Value::Object(nested)) => write_fields(plan, field.message, nested, out, depth + 1),
        // A float holds an f32: written as the shortest text that reads back to it.
        (Kind::Float, Value::Number(n)) => {
            let _ = serde_json::to_writer(&mut *out, &(n.as_f64().unwrap_or_default() as f32));
        }
        (_, Value::Number(n)) => out.extend_from_slice(n.to_string().as_bytes()),
        (_, Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        (_, Value::String(text)) => write_text(text, out),
        // Typed messages hold nothing else where a scalar goes.
        _ => {}
    }
}

/// Escapes what XML text cannot hold as it is. A carriage return is written as a reference,
/// which a parser keeps (a literal one becomes a line feed); characters XML 1.0 cannot carry
/// at all, even as references (most C0 controls), become U+FFFD.
fn write_text(text: &str, out: &mut Vec<u8>) {
    let mut buffer = [0; 4];
    for c in text.chars() {
        let escaped: &[u8] = match c {
            '&' => b"&amp;",
            '<' => b"&lt;",
            '>' => b"&gt;",
            '\r' => b"&#13;",
            '\t' | '\n' => c.encode_utf8(&mut buffer).as_bytes(),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => "\u{fffd}".as_bytes(),
            c => c.encode_utf8(&mut buffer).as_bytes(),
        };
        out.extend_from_slice(escaped);
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::value::{json, Map, Value};
    use semaphore_plan::{EnumValue, FieldLayout, Kind, MessageLayout, Plan};

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{decode, encode};

    const COUNTRIES: u32 = 0;

    fn field(name: &str, number: u32, kind: Kind) -> FieldLayout {
        FieldLayout {
            name: name.into(),
            json_name: name.into(),
            number,
            kind: kind as i32,
            ..Default::default()
        }
    }

    fn repeated(field: FieldLayout) -> FieldLayout {
        FieldLayout { repeated: true, ..field }
    }

    fn nested(name: &str, number: u32, message: u32) -> FieldLayout {
        FieldLayout { message, ..field(name, number, Kind::Message) }
    }

    /// 0 Countries { repeated Country country; int32 page; map<string, int64> totals; Income
    /// income; Countries next }, 1 Country { id, iso2Code, name, region, float latitude, float
    /// longitude, repeated string tags, bool active, int64 population, repeated Income incomes },
    /// 2 the totals' entry, 3 Labels { map<int32, Country> by_rank }.
    fn plan() -> Plan {
        let income = FieldLayout {
            enum_values: ["INCOME_UNSPECIFIED", "LOW", "HIGH"]
                .iter()
                .zip(0..)
                .map(|(name, number)| EnumValue { name: name.to_string(), number })
                .collect(),
            ..field("income", 4, Kind::Enum)
        };
        let totals = FieldLayout { map: true, ..repeated(nested("totals", 3, 2)) };
        let by_rank = FieldLayout { map: true, ..repeated(nested("by_rank", 1, 4)) };
        Plan {
            messages: vec![
                MessageLayout {
                    name: "test.Countries".into(),
                    fields: vec![
                        repeated(nested("country", 1, 1)),
                        field("page", 2, Kind::Int32),
                        totals,
                        income.clone(),
                        nested("next", 5, 0),
                    ],
                },
                MessageLayout {
                    name: "test.Country".into(),
                    fields: vec![
                        field("id", 1, Kind::String),
                        field("iso2Code", 2, Kind::String),
                        field("name", 3, Kind::String),
                        field("region", 4, Kind::String),
                        field("latitude", 5, Kind::Float),
                        field("longitude", 6, Kind::Float),
                        repeated(field("tags", 7, Kind::String)),
                        field("active", 8, Kind::Bool),
                        field("population", 9, Kind::Int64),
                        FieldLayout {
                            number: 10,
                            ..repeated(FieldLayout { name: "incomes".into(), ..income })
                        },
                    ],
                },
                MessageLayout {
                    name: "test.Countries.TotalsEntry".into(),
                    fields: vec![field("key", 1, Kind::String), field("value", 2, Kind::Int64)],
                },
                MessageLayout { name: "test.Labels".into(), fields: vec![by_rank] },
                MessageLayout {
                    name: "test.Labels.ByRankEntry".into(),
                    fields: vec![field("key", 1, Kind::Int32), nested("value", 2, 1)],
                },
            ],
            ..Default::default()
        }
    }

    fn read(xml: &str) -> Map {
        decode(&plan(), COUNTRIES, xml.as_bytes()).unwrap_or_else(|e| panic!("{e}: {xml}"))
    }

    fn refused(xml: &str) -> String {
        match decode(&plan(), COUNTRIES, xml.as_bytes()) {
            Ok(message) => panic!("decoded {message:?} from {xml}"),
            Err(e) => e.to_string(),
        }
    }

    fn typed(value: Value) -> Map {
        crate::engine::codec::decode_json(&plan(), COUNTRIES, value.to_string().as_bytes()).unwrap()
    }

    fn written(value: Value) -> String {
        String::from_utf8(encode(&plan(), COUNTRIES, &typed(value))).unwrap()
    }

    const WORLD_BANK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<wb:countries page="1" pages="6" per_page="50" total="296" xmlns:wb="http://www.worldbank.org">
  <wb:country id="ABW">
    <wb:iso2Code>AW</wb:iso2Code>
    <wb:name>Aruba</wb:name>
    <wb:region id="LCN" iso2code="ZJ">Latin America &amp; Caribbean </wb:region>
    <wb:adminregion id="" iso2code="" />
    <wb:incomeLevel id="HIC" iso2code="XD">High income</wb:incomeLevel>
    <wb:capitalCity>Oranjestad</wb:capitalCity>
    <wb:longitude>-70.0167</wb:longitude>
    <wb:latitude>12.5167</wb:latitude>
  </wb:country>
  <wb:country id="AFE">
    <wb:iso2Code>ZH</wb:iso2Code>
    <wb:name>Africa Eastern and Southern</wb:name>
    <wb:region id="NA" iso2code="NA">Aggregates</wb:region>
    <wb:longitude></wb:longitude>
    <wb:latitude />
  </wb:country>
</wb:countries>"#;

    #[test]
    fn reads_the_world_bank_by_local_names_skipping_what_the_schema_lacks() {
        let f32_of = |n: f32| f64::from(n);
        assert_eq!(
            Value::Object(read(WORLD_BANK)),
            json!({
                "page": 1,
                "country": [
                    {
                        "id": "ABW", "iso2Code": "AW", "name": "Aruba",
                        "region": "Latin America & Caribbean ",
                        "longitude": f32_of(-70.0167), "latitude": f32_of(12.5167)
                    },
                    {"id": "AFE", "iso2Code": "ZH", "name": "Africa Eastern and Southern", "region": "Aggregates"}
                ]
            })
        );
    }

    #[test]
    fn an_element_overrides_the_attribute_of_the_same_field_and_namespaces_are_no_fields() {
        let message = read(r#"<c page="1" xmlns="urn:x" xmlns:page="urn:y"><page>2</page></c>"#);
        assert_eq!(Value::Object(message), json!({"page": 2}));
    }

    #[test]
    fn writes_fields_in_schema_order_as_elements_under_the_message_name() {
        let message = json!({
            "income": "HIGH",
            "next": {"page": 3},
            "totals": {"b": "-2", "a": 1},
            "page": 7,
            "country": [
                {"name": "Aruba", "latitude": 12.5167, "tags": ["island", ""], "active": true,
                 "population": "9007199254740993", "incomes": ["LOW", "HIGH"]},
                {}
            ]
        });
        assert_eq!(
            written(message),
            "<Countries>\
             <country><name>Aruba</name><latitude>12.5167</latitude><tags>island</tags><tags></tags>\
             <active>true</active><population>9007199254740993</population>\
             <incomes>LOW</incomes><incomes>HIGH</incomes></country>\
             <country></country>\
             <page>7</page>\
             <totals><key>a</key><value>1</value></totals><totals><key>b</key><value>-2</value></totals>\
             <income>HIGH</income>\
             <next><page>3</page></next>\
             </Countries>"
        );
    }

    #[test]
    fn text_is_escaped_and_read_back_exactly() {
        let name = "a < b && c > d \"quoted\" 'single' ]]> tab\tline\ncarriage\r\nünï©ødé";
        let xml = written(json!({"country": [{"name": name}]}));
        assert_eq!(
            xml,
            "<Countries><country><name>a &lt; b &amp;&amp; c &gt; d \"quoted\" 'single' ]]&gt; \
             tab\tline\ncarriage&#13;\nünï©ødé</name></country></Countries>"
        );
        assert_eq!(Value::Object(read(&xml)), json!({"country": [{"name": name}]}));
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced_when_written() {
        assert_eq!(
            written(json!({"country": [{"name": "bell\u{7}null\u{0}"}]})),
            "<Countries><country><name>bell\u{fffd}null\u{fffd}</name></country></Countries>"
        );
    }

    #[test]
    fn a_typed_message_makes_the_round_trip() {
        let message = typed(json!({
            "country": [
                {"id": "ABW", "name": "<Aruba & co>", "latitude": -70.0167, "longitude": 1e-7,
                 "tags": ["a", "", " spaced "], "active": false, "population": "-9223372036854775808",
                 "incomes": ["INCOME_UNSPECIFIED", "HIGH"]},
                {"name": ""}
            ],
            "page": -2147483648,
            "totals": {"": "0", "x y": "18"},
            "income": "LOW",
            "next": {"next": {"page": 1}}
        }));
        let xml = encode(&plan(), COUNTRIES, &message);
        assert_eq!(decode(&plan(), COUNTRIES, &xml), Ok(message));
    }

    #[test]
    fn maps_are_entries_of_key_and_value_with_defaults_when_missing() {
        let plan = plan();
        let xml = "<Labels><by_rank><key> 2 </key><value><name>Aruba</name></value></by_rank>\
                   <by_rank><value><name>none</name></value></by_rank><by_rank><key>5</key></by_rank></Labels>";
        let message = decode(&plan, 3, xml.as_bytes()).unwrap();
        assert_eq!(
            Value::Object(message.clone()),
            json!({"by_rank": {"2": {"name": "Aruba"}, "0": {"name": "none"}, "5": {}}})
        );
        let written = String::from_utf8(encode(&plan, 3, &message)).unwrap();
        assert_eq!(
            written,
            "<Labels><by_rank><key>0</key><value><name>none</name></value></by_rank>\
             <by_rank><key>2</key><value><name>Aruba</name></value></by_rank>\
             <by_rank><key>5</key><value></value></by_rank></Labels>"
        );
        let totals = read("<c><totals><key>k</key></totals></c>");
        assert_eq!(Value::Object(totals), json!({"totals": {"k": 0}}));
    }

    #[test]
    fn comments_cdata_and_processing_instructions_are_read_through() {
        let message = read(
            "<?xml version=\"1.0\"?><!-- before --><c><?pi x?><country><name>A<!-- in -->&#66;\
             <![CDATA[<C & D>]]>&#x45;</name></country></c><!-- after -->",
        );
        assert_eq!(Value::Object(message), json!({"country": [{"name": "AB<C & D>E"}]}));
    }

    #[test]
    fn empty_and_whitespace_bodies_are_empty_messages() {
        assert_eq!(read(""), Map::new());
        assert_eq!(read(" \n"), Map::new());
        assert_eq!(read("<Countries/>"), Map::new());
        assert_eq!(Value::Object(read("<c><country/></c>")), json!({"country": [{}]}));
    }

    /// The same rule breaks give the same error in XML as in JSON, field path included.
    #[test]
    fn type_errors_name_the_field_as_json_does() {
        let cases = [
            ("<c><page>many</page></c>", json!({"page": "many"})),
            ("<c><page>4294967296</page></c>", json!({"page": "4294967296"})),
            ("<c><income>MIDDLE</income></c>", json!({"income": "MIDDLE"})),
            (
                "<c><country/><country><latitude>north</latitude></country></c>",
                json!({"country": [{}, {"latitude": "north"}]}),
            ),
            ("<c><country><active>yes</active></country></c>", json!({"country": [{"active": "yes"}]})),
            (
                "<c><country><incomes>LOW</incomes><incomes>3</incomes></country></c>",
                json!({"country": [{"incomes": ["LOW", "3"]}]}),
            ),
            ("<c><totals><key>k</key><value>1.5</value></totals></c>", json!({"totals": {"k": "1.5"}})),
            ("<c><country><name><b>bold</b></name></country></c>", json!({"country": [{"name": {}}]})),
        ];
        for (xml, same_in_json) in cases {
            let from_json =
                crate::engine::codec::decode_json(&plan(), COUNTRIES, same_in_json.to_string().as_bytes());
            let from_json = from_json.expect_err("JSON refuses it too").to_string();
            assert_eq!(refused(xml), from_json, "{xml}");
        }
        assert_eq!(
            refused("<c><page>many</page></c>"),
            "field `page`: expected an integer (int32), found \"many\""
        );
    }

    #[test]
    fn doctype_and_undefined_entities_are_refused() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
            <c><country><name>&lol2;</name></country></c>"#;
        assert_eq!(refused(laughs), "XML with a DOCTYPE declaration is refused");
        assert_eq!(
            refused("<!DOCTYPE c SYSTEM \"file:///etc/passwd\"><c/>"),
            "XML with a DOCTYPE declaration is refused"
        );
        assert_eq!(
            refused("<c><country><name>&lol;</name></country></c>"),
            "invalid XML: undefined entity `&lol;`"
        );
        assert!(refused("<c><country><name>a & b</name></country></c>").contains("`&` starts no"));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_known_or_not() {
        let nested = |depth: usize, name: &str| {
            format!("{}{}", format!("<{name}>").repeat(depth), format!("</{name}>").repeat(depth))
        };
        assert!(decode(&plan(), COUNTRIES, nested(64, "next").as_bytes()).is_ok());
        assert_eq!(refused(&nested(65, "next")), "nested deeper than 64 levels");
        assert_eq!(refused(&nested(100_000, "unknown")), "nested deeper than 64 levels");
        assert_eq!(
            refused(&format!("<c><page>{}</page></c>", nested(100, "b"))),
            "nested deeper than 64 levels"
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert_eq!(
            refused("<c><page>1</pages></c>"),
            "invalid XML: expected `</page>` at 1:13, found `</pages>`"
        );
        assert_eq!(refused("<wb:c></c>"), "invalid XML: expected `</wb:c>` at 1:9, found `</c>`");
        assert_eq!(
            refused("<c><unknown><x></y></unknown></c>"),
            "invalid XML: expected `</x>` at 1:18, found `</y>`"
        );
        assert_eq!(refused("<c><page>1</page>"), "invalid XML: the document ends inside an element");
        assert_eq!(refused("<!-- only a comment -->"), "invalid XML: the document has no root element");
        assert!(refused("<c/><d/>").starts_with("invalid XML: unknown token at 1:5"));
        assert!(refused("not xml").starts_with("invalid XML:"));
        assert_eq!(
            decode(&plan(), COUNTRIES, b"<c><name>\xff</name></c>").unwrap_err().to_string(),
            "the XML body is not valid UTF-8"
        );
    }

    #[test]
    fn no_prefix_of_a_document_panics() {
        let plan = plan();
        for document in [WORLD_BANK, "<c><totals><key>&#x41;</key><value>1</value></totals><![CDATA[x]]></c>"]
        {
            for end in (0..=document.len()).filter(|end| document.is_char_boundary(*end)) {
                let _ = decode(&plan, COUNTRIES, &document.as_bytes()[..end]);
                let _ = decode(&plan, 3, &document.as_bytes()[..end]);
            }
        }
    }
}
