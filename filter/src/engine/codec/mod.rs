//! Codecs: move messages between their wire forms and the engine's typed values (see
//! [`typing`]), walking the plan's message layouts. One file per wire form; this one only picks
//! the codec.

mod form;
mod json;
pub mod proto;
mod typing;
pub mod xml;

use semaphore_plan::{Codec, Plan};
use serde_json::{Map, Value};

pub use form::{decode_form, encode_form};
pub use json::{decode_json, decode_json_fields, decode_json_plainly, encode_json, Int64Json};
pub use typing::{
    field_by_name, from_text, map_key_field, map_value_field, message, normalize_field, normalize_message,
    to_text, CodecError, MAX_DEPTH,
};

/// A body in the given codec into a message.
pub fn decode_body(
    plan: &Plan,
    layout: u32,
    codec: Codec,
    body: &[u8],
) -> Result<Map<String, Value>, CodecError> {
    match codec {
        Codec::Json => decode_json(plan, layout, body),
        Codec::Proto => proto::decode(plan, layout, body),
        Codec::FormUrlencoded => {
            let text =
                std::str::from_utf8(body).map_err(|_| CodecError::new("the form body is not valid UTF-8"))?;
            let mut out = Map::new();
            decode_form(plan, layout, text, &mut out)?;
            Ok(out)
        }
        Codec::Xml => xml::decode(plan, layout, body),
    }
}

/// As [`decode_body`], reading only `fields` (indices in the layout) where the codec can skip
/// the rest without building it; `None` reads every field.
pub fn decode_body_fields(
    plan: &Plan,
    layout: u32,
    codec: Codec,
    body: &[u8],
    fields: Option<&[u32]>,
) -> Result<Map<String, Value>, CodecError> {
    match (codec, fields) {
        (Codec::Json, Some(fields)) => decode_json_fields(plan, layout, body, Some(fields)),
        _ => decode_body(plan, layout, codec, body),
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
        Codec::Proto => proto::encode(plan, layout, message),
        Codec::FormUrlencoded => encode_form(plan, layout, message).into_bytes(),
        Codec::Xml => xml::encode(plan, layout, message),
    };
    (codec.content_type(), body)
}
