//! A decoded plan holds only enum values this build knows. Protobuf keeps an unknown number as
//! it came, and prost's typed getters would read it as the enum's first value: a plan from a
//! newer compiler would then run, wrongly, instead of being refused with one clear error.

use crate::{
    BinaryOp, Codec, EndpointKind, Flow, Function, Kind, Literal, LiteralKind, Plan, Property, Reference,
    Transport, UnaryOp, Value, ValueKind,
};

pub(crate) fn check(plan: &Plan) -> Result<(), String> {
    for service in &plan.services {
        known::<Transport>(service.transport, "transport")?;
        known::<Codec>(service.request_codec, "codec")?;
        known::<Codec>(service.response_codec, "codec")?;
    }
    for field in plan.messages.iter().flat_map(|message| &message.fields) {
        known::<Kind>(field.kind, "field kind")?;
    }
    for endpoint in &plan.endpoints {
        known::<EndpointKind>(endpoint.kind, "endpoint kind")?;
        known::<Codec>(endpoint.request_codec, "codec")?;
        known::<Codec>(endpoint.response_codec, "codec")?;
    }
    plan.flows.iter().try_for_each(flow)
}

fn known<E: TryFrom<i32>>(number: i32, what: &str) -> Result<(), String> {
    E::try_from(number).map(|_| ()).map_err(|_| format!("unknown {what} {number} (from a newer compiler?)"))
}

fn flow(flow: &Flow) -> Result<(), String> {
    crate::visit::values(flow, &mut value)
}

/// The enums of one value; `visit::values` reaches the values nested in it.
fn value(value: &Value) -> Result<(), String> {
    let Some(kind) = &value.kind else { return Ok(()) };
    match kind {
        ValueKind::Literal(literal) => self::literal(literal),
        ValueKind::Reference(reference) => self::reference(reference),
        ValueKind::Function(call) => known::<Function>(call.function, "function"),
        ValueKind::Unary(unary) => known::<UnaryOp>(unary.op, "operator"),
        ValueKind::Binary(binary) => known::<BinaryOp>(binary.op, "operator"),
        ValueKind::Repeated(repeated) => repeated.source.iter().try_for_each(self::reference),
        ValueKind::Interpolation(_) | ValueKind::Message(_) => Ok(()),
    }
}

fn reference(reference: &Reference) -> Result<(), String> {
    known::<Property>(reference.property, "property")?;
    reference.absent.iter().try_for_each(literal)
}

fn literal(literal: &Literal) -> Result<(), String> {
    match literal.kind {
        Some(LiteralKind::Empty(empty)) => known::<crate::Empty>(empty, "empty value"),
        _ => Ok(()),
    }
}
