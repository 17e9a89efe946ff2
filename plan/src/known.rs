//! A decoded plan holds only enum values this build knows. Protobuf keeps an unknown number as
//! it came, and prost's typed getters would read it as the enum's first value: a plan from a
//! newer compiler would then run, wrongly, instead of being refused with one clear error.

use crate::{
    BinaryOp, Call, Codec, EndpointKind, ErrorObject, Flow, Function, HeaderTemplate, Kind, Literal,
    LiteralKind, MessageTemplate, NamedValue, OnError, Plan, Property, Reference, Transport, UnaryOp, Value,
    ValueKind,
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
    for node in &flow.nodes {
        optional(node.condition.as_ref())?;
        node.call.iter().chain(&node.rollback).try_for_each(call)?;
        node.error.iter().try_for_each(error_object)?;
        node.on_error.iter().try_for_each(on_error)?;
        named(&node.values)?;
    }
    if let Some(output) = &flow.output {
        template(output.body.as_ref())?;
        headers(&output.headers)?;
    }
    flow.error.iter().try_for_each(error_object)?;
    flow.on_error.iter().try_for_each(on_error)?;
    flow.forward.iter().try_for_each(|forward| headers(&forward.headers))
}

fn call(call: &Call) -> Result<(), String> {
    template(call.request.as_ref())?;
    headers(&call.headers)?;
    named(&call.params)
}

fn error_object(object: &ErrorObject) -> Result<(), String> {
    template(object.body.as_ref())?;
    headers(&object.headers)
}

fn on_error(on_error: &OnError) -> Result<(), String> {
    optional(on_error.status.as_ref())?;
    optional(on_error.message.as_ref())?;
    named(&on_error.params)
}

fn template(template: Option<&MessageTemplate>) -> Result<(), String> {
    template.into_iter().flat_map(|t| &t.fields).try_for_each(|field| optional(field.value.as_ref()))
}

fn headers(headers: &[HeaderTemplate]) -> Result<(), String> {
    headers.iter().try_for_each(|header| optional(header.value.as_ref()))
}

fn named(values: &[NamedValue]) -> Result<(), String> {
    values.iter().try_for_each(|named| optional(named.value.as_ref()))
}

fn optional(value: Option<&Value>) -> Result<(), String> {
    value.map_or(Ok(()), self::value)
}

fn value(value: &Value) -> Result<(), String> {
    let Some(kind) = &value.kind else { return Ok(()) };
    match kind {
        ValueKind::Literal(literal) => self::literal(literal),
        ValueKind::Reference(reference) => self::reference(reference),
        ValueKind::Interpolation(interpolation) => interpolation.parts.iter().try_for_each(self::value),
        ValueKind::Message(message) => template(Some(message)),
        ValueKind::Function(call) => {
            known::<Function>(call.function, "function")?;
            call.args.iter().try_for_each(self::value)
        }
        ValueKind::Unary(unary) => {
            known::<UnaryOp>(unary.op, "operator")?;
            optional(unary.operand.as_ref())
        }
        ValueKind::Binary(binary) => {
            known::<BinaryOp>(binary.op, "operator")?;
            optional(binary.left.as_ref())?;
            optional(binary.right.as_ref())
        }
        ValueKind::Repeated(repeated) => {
            repeated.source.iter().try_for_each(self::reference)?;
            template(repeated.item.as_ref())
        }
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
