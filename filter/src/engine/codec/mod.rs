//! Codecs: move messages between their wire forms and the engine's typed values (see
//! [`typing`]), walking the plan's message layouts. One file per wire form; this one only picks
//! the codec.

mod form;
mod json;
pub mod proto;
mod typing;
pub mod xml;

use std::borrow::Cow;

use crate::engine::value::{Map, Value};
use semaphore_plan::{Codec, FieldLayout, Plan};

pub use form::{decode_form, encode_form};
pub use json::{
    decode_json, decode_json_fields, decode_json_plainly, encode_json, encode_json_outgoing, escaped_char,
    json_text, Int64Json,
};
pub use typing::{
    field_by_name, float_from_text, from_text, map_key_field, map_value_field, message, normalize_field,
    normalize_message, to_text, CodecError, MAX_DEPTH,
};

/// A body in the given codec into a message.
pub fn decode_body(plan: &Plan, layout: u32, codec: Codec, body: &[u8]) -> Result<Map, CodecError> {
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
) -> Result<Map, CodecError> {
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
    message: &Map,
) -> (&'static str, Vec<u8>) {
    let body = match codec {
        Codec::Json => encode_json(plan, layout, message, int64),
        Codec::Proto => proto::encode(plan, layout, message),
        Codec::FormUrlencoded => encode_form(plan, layout, message).into_bytes(),
        Codec::Xml => xml::encode(plan, layout, message),
    };
    (codec.content_type(), body)
}

/// A message about to be encoded: the values built for it, and those it takes as they are held
/// elsewhere (a reference to a value of the field's own type), by field index. The JSON and
/// protobuf codecs write the held values where they are; the others copy them in first.
#[derive(Debug, Default, Clone)]
pub struct Outgoing<'v> {
    pub built: Map,
    pub held: Vec<(u32, &'v Value)>,
}

impl<'v> Outgoing<'v> {
    fn field<'a>(&'a self, index: usize, field: &FieldLayout) -> Option<&'a Value> {
        match self.held.iter().find(|(held, _)| *held as usize == index) {
            Some((_, value)) => Some(*value),
            None => self.built.get(&field.name),
        }
    }

    /// The value of the field named `name` (its proto name), built or held.
    pub fn get(&self, plan: &Plan, layout: u32, name: &str) -> Option<&Value> {
        if let Some(value) = self.built.get(name) {
            return Some(value);
        }
        let fields = message(plan, layout).map(|m| m.fields.as_slice()).unwrap_or_default();
        let index = fields.iter().position(|f| f.name == name)?;
        self.field(index, fields.get(index)?)
    }

    /// The message without the fields named in `names` (proto names).
    pub fn without(&self, plan: &Plan, layout: u32, names: &[&str]) -> Outgoing<'v> {
        let fields = message(plan, layout).map(|m| m.fields.as_slice()).unwrap_or_default();
        let kept = |index: u32| fields.get(index as usize).is_some_and(|f| !names.contains(&f.name.as_str()));
        Outgoing {
            built: self
                .built
                .iter()
                .filter(|(name, _)| !names.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            held: self.held.iter().filter(|(index, _)| kept(*index)).copied().collect(),
        }
    }

    /// The whole message as one map, copied only where values are held elsewhere.
    pub fn to_map(&self, plan: &Plan, layout: u32) -> Cow<'_, Map> {
        if self.held.is_empty() {
            return Cow::Borrowed(&self.built);
        }
        Cow::Owned(self.clone().into_map(plan, layout))
    }

    /// The whole message as one map.
    pub fn into_map(self, plan: &Plan, layout: u32) -> Map {
        let mut built = self.built;
        let fields = message(plan, layout).map(|m| m.fields.as_slice()).unwrap_or_default();
        for (index, value) in self.held {
            if let Some(field) = fields.get(index as usize) {
                built.insert(field.name.clone(), value.clone());
            }
        }
        built
    }
}

/// As [`encode_body`], for a message some of whose fields are held elsewhere.
pub fn encode_outgoing(
    plan: &Plan,
    layout: u32,
    codec: Codec,
    int64: Int64Json,
    message: &Outgoing,
) -> (&'static str, Vec<u8>) {
    let body = match codec {
        Codec::Json => encode_json_outgoing(plan, layout, message, int64),
        Codec::Proto => proto::encode_outgoing(plan, layout, message),
        _ => return encode_body(plan, layout, codec, int64, &message.to_map(plan, layout)),
    };
    (codec.content_type(), body)
}
