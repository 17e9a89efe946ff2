//! Walking every value of a flow: its conditions, templates, headers, params, error handling and
//! forwarding, nested values included. What checks or reads all of a flow's values (the enum
//! check on decoding, the compiler's list of fields each call's answer is read for) walks them
//! here, so that a new place for a value is added once.

use crate::{
    Call, ErrorObject, Flow, HeaderTemplate, MessageTemplate, NamedValue, OnError, Reference, Value,
    ValueKind,
};

/// Calls `visit` on every value of the flow, each nested value after the one holding it.
pub fn values<E>(flow: &Flow, visit: &mut impl FnMut(&Value) -> Result<(), E>) -> Result<(), E> {
    let mut walker = Walker { visit };
    walker.flow(flow)
}

/// Calls `visit` on every reference of the flow, those that `repeated` blocks read from too.
pub fn references(flow: &Flow, visit: &mut impl FnMut(&Reference)) {
    let _ = values(flow, &mut |value: &Value| -> Result<(), ()> {
        match &value.kind {
            Some(ValueKind::Reference(reference)) => visit(reference),
            Some(ValueKind::Repeated(repeated)) => repeated.source.iter().for_each(&mut *visit),
            _ => {}
        }
        Ok(())
    });
}

struct Walker<'v, V> {
    visit: &'v mut V,
}

impl<E, V: FnMut(&Value) -> Result<(), E>> Walker<'_, V> {
    fn flow(&mut self, flow: &Flow) -> Result<(), E> {
        for node in &flow.nodes {
            self.optional(node.condition.as_ref())?;
            node.call.iter().chain(&node.rollback).try_for_each(|call| self.call(call))?;
            node.error.iter().try_for_each(|error| self.error_object(error))?;
            node.on_error.iter().try_for_each(|on_error| self.on_error(on_error))?;
            self.named(&node.values)?;
        }
        if let Some(output) = &flow.output {
            self.template(output.body.as_ref())?;
            self.headers(&output.headers)?;
        }
        flow.error.iter().try_for_each(|error| self.error_object(error))?;
        flow.on_error.iter().try_for_each(|on_error| self.on_error(on_error))?;
        flow.forward.iter().try_for_each(|forward| self.headers(&forward.headers))
    }

    fn call(&mut self, call: &Call) -> Result<(), E> {
        self.template(call.request.as_ref())?;
        self.headers(&call.headers)?;
        self.named(&call.params)
    }

    fn error_object(&mut self, object: &ErrorObject) -> Result<(), E> {
        self.template(object.body.as_ref())?;
        self.headers(&object.headers)
    }

    fn on_error(&mut self, on_error: &OnError) -> Result<(), E> {
        self.optional(on_error.status.as_ref())?;
        self.optional(on_error.message.as_ref())?;
        self.named(&on_error.params)
    }

    fn template(&mut self, template: Option<&MessageTemplate>) -> Result<(), E> {
        template.into_iter().flat_map(|t| &t.fields).try_for_each(|field| self.optional(field.value.as_ref()))
    }

    fn headers(&mut self, headers: &[HeaderTemplate]) -> Result<(), E> {
        headers.iter().try_for_each(|header| self.optional(header.value.as_ref()))
    }

    fn named(&mut self, values: &[NamedValue]) -> Result<(), E> {
        values.iter().try_for_each(|named| self.optional(named.value.as_ref()))
    }

    fn optional(&mut self, value: Option<&Value>) -> Result<(), E> {
        value.map_or(Ok(()), |value| self.value(value))
    }

    fn value(&mut self, value: &Value) -> Result<(), E> {
        (self.visit)(value)?;
        let Some(kind) = &value.kind else { return Ok(()) };
        match kind {
            ValueKind::Literal(_) | ValueKind::Reference(_) => Ok(()),
            ValueKind::Interpolation(interpolation) => {
                interpolation.parts.iter().try_for_each(|v| self.value(v))
            }
            ValueKind::Message(message) => self.template(Some(message)),
            ValueKind::Function(call) => call.args.iter().try_for_each(|v| self.value(v)),
            ValueKind::Unary(unary) => self.optional(unary.operand.as_ref()),
            ValueKind::Binary(binary) => {
                self.optional(binary.left.as_ref())?;
                self.optional(binary.right.as_ref())
            }
            ValueKind::Repeated(repeated) => self.template(repeated.item.as_ref()),
        }
    }
}
