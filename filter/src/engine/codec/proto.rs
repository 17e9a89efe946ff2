//! The protobuf binary wire format, read and written from the plan's message layouts, to and
//! from the same typed values the JSON codec produces.

use crate::engine::value::{Map, Number, Value};
use base64::Engine as _;
use prost::bytes::Buf;
use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, WireType};
use semaphore_plan::{FieldLayout, Kind, Plan};

use super::typing::{self, float_from_text, CodecError, MAX_DEPTH};
use super::Outgoing;

pub fn decode(plan: &Plan, layout: u32, bytes: &[u8]) -> Result<Map, CodecError> {
    decode_message(plan, layout, bytes, 0)
}

pub fn encode(plan: &Plan, layout: u32, message: &Map) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(plan, layout, message, &mut out, 0);
    out
}

fn error(message: impl Into<String>) -> CodecError {
    CodecError { field: String::new(), message: message.into() }
}

fn decode_message(plan: &Plan, layout: u32, mut buf: &[u8], depth: usize) -> Result<Map, CodecError> {
    if depth > MAX_DEPTH {
        return Err(error(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let Some(message) = typing::message(plan, layout) else {
        return Err(error("message layout missing from the plan"));
    };
    let mut out = Map::new();
    while buf.has_remaining() {
        let (number, wire) = decode_key(&mut buf).map_err(|e| error(format!("invalid protobuf: {e}")))?;
        let Some(field) = message.fields.iter().find(|f| f.number == number) else {
            skip(wire, &mut buf)?;
            continue;
        };
        let within = |e: CodecError| {
            let mut e = e;
            e.field =
                if e.field.is_empty() { field.name.clone() } else { format!("{}.{}", field.name, e.field) };
            e
        };
        if field.map {
            let entry = length_delimited(&mut buf).map_err(within)?;
            let entry = decode_message(plan, field.message, entry, depth + 1).map_err(within)?;
            let key = entry.get("key").map(typing::to_text).unwrap_or_default();
            let value = entry.get("value").cloned().unwrap_or(Value::Null);
            if let Some(Value::Object(map)) =
                out.get_or_insert_with(&field.name, || Value::Object(Map::new()))
            {
                map.insert(key, value);
            }
            continue;
        }
        let packable = !matches!(field.kind(), Kind::String | Kind::Bytes | Kind::Message);
        if field.repeated && packable && wire == WireType::LengthDelimited {
            let mut packed = length_delimited(&mut buf).map_err(within)?;
            while packed.has_remaining() {
                let value = scalar(field, packed_wire(field), &mut packed).map_err(within)?;
                push(&mut out, field, value);
            }
            continue;
        }
        let value = match field.kind() {
            Kind::Message => {
                let bytes = length_delimited(&mut buf).map_err(within)?;
                Value::Object(decode_message(plan, field.message, bytes, depth + 1).map_err(within)?)
            }
            _ => scalar(field, wire, &mut buf).map_err(within)?,
        };
        if field.repeated {
            push(&mut out, field, value);
        } else {
            out.insert(field.name.clone(), value);
        }
    }
    Ok(out)
}

fn push(out: &mut Map, field: &FieldLayout, value: Value) {
    if let Some(Value::Array(items)) = out.get_or_insert_with(&field.name, || Value::Array(Vec::new())) {
        items.push(value);
    }
}

fn packed_wire(field: &FieldLayout) -> WireType {
    match field.kind() {
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => WireType::ThirtyTwoBit,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => WireType::SixtyFourBit,
        _ => WireType::Varint,
    }
}

fn length_delimited<'b>(buf: &mut &'b [u8]) -> Result<&'b [u8], CodecError> {
    let len = decode_varint(buf).map_err(|e| error(format!("invalid protobuf: {e}")))?;
    let len = usize::try_from(len).map_err(|_| error("invalid protobuf: length too large"))?;
    let Some((head, tail)) = buf.split_at_checked(len) else {
        return Err(error("invalid protobuf: truncated"));
    };
    *buf = tail;
    Ok(head)
}

fn fixed<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], CodecError> {
    let Some((head, tail)) = buf.split_first_chunk::<N>() else {
        return Err(error("invalid protobuf: truncated"));
    };
    *buf = tail;
    Ok(*head)
}

fn skip(wire: WireType, buf: &mut &[u8]) -> Result<(), CodecError> {
    match wire {
        WireType::Varint => drop(decode_varint(buf).map_err(|e| error(format!("invalid protobuf: {e}")))?),
        WireType::SixtyFourBit => drop(fixed::<8>(buf)?),
        WireType::ThirtyTwoBit => drop(fixed::<4>(buf)?),
        WireType::LengthDelimited => drop(length_delimited(buf)?),
        WireType::StartGroup | WireType::EndGroup => return Err(error("protobuf groups are not supported")),
    }
    Ok(())
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

fn scalar(field: &FieldLayout, wire: WireType, buf: &mut &[u8]) -> Result<Value, CodecError> {
    let kind = field.kind();
    let expected = match kind {
        Kind::String | Kind::Bytes | Kind::Message => WireType::LengthDelimited,
        _ => packed_wire(field),
    };
    if wire != expected {
        return Err(error(format!("invalid protobuf: wire type {wire:?} for a {kind:?} field")));
    }
    let varint = |buf: &mut &[u8]| decode_varint(buf).map_err(|e| error(format!("invalid protobuf: {e}")));
    Ok(match kind {
        Kind::Int32 => Value::from(varint(buf)? as i32),
        Kind::Int64 => Value::from(varint(buf)? as i64),
        Kind::Uint32 => Value::from(varint(buf)? as u32),
        Kind::Uint64 => Value::from(varint(buf)?),
        Kind::Sint32 => {
            let n = varint(buf)? as u32;
            Value::from(((n >> 1) as i32) ^ -((n & 1) as i32))
        }
        Kind::Sint64 => {
            let n = varint(buf)?;
            Value::from(((n >> 1) as i64) ^ -((n & 1) as i64))
        }
        Kind::Bool => Value::Bool(varint(buf)? != 0),
        Kind::Enum => {
            let number = varint(buf)? as i32;
            match field.enum_values.iter().find(|v| v.number == number) {
                Some(v) => Value::String(v.name.clone()),
                None => Value::from(number),
            }
        }
        Kind::Fixed32 => Value::from(u32::from_le_bytes(fixed(buf)?)),
        Kind::Sfixed32 => Value::from(i32::from_le_bytes(fixed(buf)?)),
        Kind::Float => float(f64::from(f32::from_le_bytes(fixed(buf)?))),
        Kind::Fixed64 => Value::from(u64::from_le_bytes(fixed(buf)?)),
        Kind::Sfixed64 => Value::from(i64::from_le_bytes(fixed(buf)?)),
        Kind::Double => float(f64::from_le_bytes(fixed(buf)?)),
        Kind::String => {
            let bytes = length_delimited(buf)?;
            Value::String(
                String::from_utf8(bytes.to_vec()).map_err(|_| error("a string field is not valid UTF-8"))?,
            )
        }
        Kind::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(length_delimited(buf)?))
        }
        Kind::Message => return Err(error("unexpected message")),
    })
}

/// Field numbers protobuf can carry; a plan naming others (a corrupt one) cannot be encoded.
fn encodable(number: u32) -> bool {
    (1..=0x1FFF_FFFF).contains(&number)
}

fn encode_message(plan: &Plan, layout: u32, message: &Map, out: &mut Vec<u8>, depth: usize) {
    encode_fields(plan, layout, &|_, field| message.get(&field.name), out, depth);
}

/// As [`encode`], for a message some of whose fields are held elsewhere.
pub fn encode_outgoing(plan: &Plan, layout: u32, message: &Outgoing) -> Vec<u8> {
    let mut out = Vec::new();
    encode_fields(plan, layout, &|index, field| message.field(index, field), &mut out, 0);
    out
}

/// The fields in the layout's order; `value` gives each field's value by its index and layout.
fn encode_fields<'v>(
    plan: &Plan,
    layout: u32,
    value: &dyn Fn(usize, &FieldLayout) -> Option<&'v Value>,
    out: &mut Vec<u8>,
    depth: usize,
) {
    let Some(layout) = typing::message(plan, layout) else { return };
    if depth > MAX_DEPTH {
        return;
    }
    for (index, field) in layout.fields.iter().enumerate().filter(|(_, f)| encodable(f.number)) {
        let Some(value) = value(index, field) else { continue };
        match value {
            Value::Object(entries) if field.map => {
                let (Some(key_field), Some(value_field)) =
                    (typing::map_key_field(plan, field), typing::map_value_field(plan, field))
                else {
                    continue;
                };
                if !encodable(key_field.number) || !encodable(value_field.number) {
                    continue;
                }
                for (key, entry) in entries {
                    let mut body = Vec::new();
                    let key = typing::from_text(plan, key_field, key).unwrap_or(Value::String(key.clone()));
                    encode_field(plan, key_field, &key, &mut body, depth + 1);
                    encode_field(plan, value_field, entry, &mut body, depth + 1);
                    encode_key(field.number, WireType::LengthDelimited, out);
                    encode_varint(body.len() as u64, out);
                    out.extend_from_slice(&body);
                }
            }
            Value::Array(items) if field.repeated => {
                let packable = !matches!(field.kind(), Kind::String | Kind::Bytes | Kind::Message);
                if packable {
                    let mut body = Vec::new();
                    for item in items {
                        encode_payload(plan, field, item, &mut body, depth);
                    }
                    encode_key(field.number, WireType::LengthDelimited, out);
                    encode_varint(body.len() as u64, out);
                    out.extend_from_slice(&body);
                } else {
                    for item in items {
                        encode_field(plan, field, item, out, depth);
                    }
                }
            }
            single => encode_field(plan, field, single, out, depth),
        }
    }
}

fn encode_field(plan: &Plan, field: &FieldLayout, value: &Value, out: &mut Vec<u8>, depth: usize) {
    let wire = match field.kind() {
        Kind::String | Kind::Bytes | Kind::Message => WireType::LengthDelimited,
        _ => packed_wire(field),
    };
    encode_key(field.number, wire, out);
    encode_payload(plan, field, value, out, depth);
}

fn as_i64(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| u as i64))
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

fn as_u64(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().unwrap_or_else(|| as_i64(value) as u64),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => as_i64(value) as u64,
    }
}

fn as_f64(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => float_from_text(other).unwrap_or(0.0),
        },
        _ => 0.0,
    }
}

fn encode_payload(plan: &Plan, field: &FieldLayout, value: &Value, out: &mut Vec<u8>, depth: usize) {
    match field.kind() {
        Kind::Int32 | Kind::Int64 => encode_varint(as_i64(value) as u64, out),
        Kind::Uint32 | Kind::Uint64 => encode_varint(as_u64(value), out),
        Kind::Sint32 | Kind::Sint64 => {
            let n = as_i64(value);
            encode_varint(((n << 1) ^ (n >> 63)) as u64, out)
        }
        Kind::Bool => encode_varint(u64::from(matches!(value, Value::Bool(true))), out),
        Kind::Enum => {
            let number = match value {
                Value::String(name) => {
                    field.enum_values.iter().find(|v| &v.name == name).map(|v| v.number).unwrap_or(0)
                }
                other => as_i64(other) as i32,
            };
            encode_varint(i64::from(number) as u64, out)
        }
        Kind::Fixed32 => out.extend_from_slice(&(as_u64(value) as u32).to_le_bytes()),
        Kind::Sfixed32 => out.extend_from_slice(&(as_i64(value) as i32).to_le_bytes()),
        Kind::Float => out.extend_from_slice(&(as_f64(value) as f32).to_le_bytes()),
        Kind::Fixed64 => out.extend_from_slice(&as_u64(value).to_le_bytes()),
        Kind::Sfixed64 => out.extend_from_slice(&as_i64(value).to_le_bytes()),
        Kind::Double => out.extend_from_slice(&as_f64(value).to_le_bytes()),
        Kind::String => {
            let text = typing::to_text(value);
            encode_varint(text.len() as u64, out);
            out.extend_from_slice(text.as_bytes());
        }
        Kind::Bytes => {
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(typing::to_text(value)).unwrap_or_default();
            encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(&bytes);
        }
        Kind::Message => {
            let mut body = Vec::new();
            if let Value::Object(nested) = value {
                encode_message(plan, field.message, nested, &mut body, depth + 1);
            }
            encode_varint(body.len() as u64, out);
            out.extend_from_slice(&body);
        }
    }
}
