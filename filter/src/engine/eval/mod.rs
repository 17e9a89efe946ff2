//! Evaluating the plan's values: references, literals, and the messages built from templates.
//! Operators are in `operators.rs`, built-in functions in `functions.rs`.

mod functions;
mod operators;

use std::cell::Cell;

use crate::engine::value::{Map, Number, Value};
use semaphore_plan::{
    Binary, Empty, FieldTemplate, FunctionCall, Literal, LiteralKind, MessageTemplate, Plan, Reference,
    RepeatedTemplate, Unary, Value as PlanValue, ValueKind, ITEM_SLOT,
};

use super::codec;

pub(crate) use functions::uuid;
pub use operators::truthy;

/// Where references are read from, and the per-request inputs of `now()` and `uuid()`.
pub struct Env<'a> {
    pub plan: &'a Plan,
    pub lookup: &'a dyn Fn(&Reference) -> Option<Value>,
    pub now_unix_ms: u64,
    /// State of the generator behind `uuid()`.
    pub random: &'a Cell<u64>,
}

/// Inside `repeated`: the element being built from.
#[derive(Clone, Copy)]
struct Item<'v>(Option<&'v Value>);

impl Env<'_> {
    pub fn evaluate(&self, value: &PlanValue) -> Option<Value> {
        self.evaluate_in(value, Item(None))
    }

    /// The message a template builds. A field whose value is a reference to a value of its own
    /// type, which `held` finds where it is, is taken from there rather than copied in.
    pub fn build_outgoing<'v>(
        &self,
        layout: u32,
        template: Option<&MessageTemplate>,
        held: &dyn Fn(&Reference) -> Option<&'v Value>,
    ) -> Result<codec::Outgoing<'v>, String> {
        let mut taken = Vec::new();
        let mut take = |field_template: &FieldTemplate| {
            let reference = match field_template.value.as_ref().and_then(|v| v.kind.as_ref()) {
                Some(ValueKind::Reference(reference))
                    if field_template.typed && reference.slot != ITEM_SLOT =>
                {
                    reference
                }
                _ => return false,
            };
            let Some(value) = held(reference) else { return false };
            taken.push((field_template.field, value));
            true
        };
        let built = self.build_fields(layout, template, Item(None), 0, &mut take)?;
        Ok(codec::Outgoing { built, held: taken })
    }

    fn build_in(
        &self,
        layout: u32,
        template: Option<&MessageTemplate>,
        item: Item,
        depth: usize,
    ) -> Result<Map, String> {
        self.build_fields(layout, template, item, depth, &mut |_| false)
    }

    /// The fields of a message from its template, but those `taken` takes elsewhere.
    fn build_fields(
        &self,
        layout: u32,
        template: Option<&MessageTemplate>,
        item: Item,
        depth: usize,
        taken: &mut dyn FnMut(&FieldTemplate) -> bool,
    ) -> Result<Map, String> {
        let mut out = Map::new();
        let (Some(template), Some(message)) = (template, codec::message(self.plan, layout)) else {
            return Ok(out);
        };
        if depth > codec::MAX_DEPTH {
            return Err(format!("`{}` nests deeper than {} levels", message.name, codec::MAX_DEPTH));
        }
        for field_template in &template.fields {
            if taken(field_template) {
                continue;
            }
            let Some(field) = message.fields.get(field_template.field as usize) else {
                return Err(format!(
                    "the plan names field {} of `{}`, which has none",
                    field_template.field, message.name
                ));
            };
            let value = match field_template.value.as_ref().and_then(|v| v.kind.as_ref()) {
                Some(ValueKind::Message(nested)) => {
                    Some(Value::Object(self.build_in(field.message, Some(nested), item, depth + 1)?))
                }
                Some(ValueKind::Repeated(repeated)) => self.repeated(field.message, repeated, item, depth)?,
                Some(_) => field_template.value.as_ref().and_then(|v| self.evaluate_in(v, item)),
                None => None,
            };
            // A list or map the template names is always written, empty when it has no
            // elements, so that clients and upstreams find `[]` rather than nothing.
            let value = match value {
                Some(value) => value,
                None if field.map => Value::Object(Map::new()),
                None if field.repeated => Value::Array(Vec::new()),
                None => continue,
            };
            if field_template.typed {
                out.insert(field.name.clone(), value);
                continue;
            }
            let typed = codec::normalize_field(self.plan, field, value, depth)
                .map_err(|e| format!("cannot build `{}`: field `{}`: {e}", message.name, field.name))?;
            if let Some(typed) = typed {
                out.insert(field.name.clone(), typed);
            }
        }
        Ok(out)
    }

    fn repeated(
        &self,
        layout: u32,
        repeated: &RepeatedTemplate,
        item: Item,
        depth: usize,
    ) -> Result<Option<Value>, String> {
        let Some(source) = repeated.source.as_ref().and_then(|s| self.reference(s, item)) else {
            return Ok(None);
        };
        let Value::Array(elements) = source else {
            return Ok(None);
        };
        let Some(template) = &repeated.item else {
            return Ok(Some(Value::Array(elements)));
        };
        let mut out = Vec::with_capacity(elements.len());
        for element in &elements {
            out.push(Value::Object(self.build_in(layout, Some(template), Item(Some(element)), depth + 1)?));
        }
        Ok(Some(Value::Array(out)))
    }

    fn reference(&self, reference: &Reference, item: Item) -> Option<Value> {
        if reference.slot == ITEM_SLOT {
            let mut current = item.0?;
            for name in &reference.path {
                current = current.as_object()?.get(name)?;
            }
            return Some(current.clone());
        }
        (self.lookup)(reference)
    }

    fn evaluate_in(&self, value: &PlanValue, item: Item) -> Option<Value> {
        match value.kind.as_ref()? {
            ValueKind::Literal(literal) => literal_value(literal),
            ValueKind::Reference(reference) => {
                self.reference(reference, item).or_else(|| reference.absent.as_ref().and_then(literal_value))
            }
            ValueKind::Interpolation(interpolation) => {
                let mut text = String::new();
                for part in &interpolation.parts {
                    if let Some(value) = self.evaluate_in(part, item) {
                        text.push_str(&codec::to_text(&value));
                    }
                }
                Some(Value::String(text))
            }
            ValueKind::Message(_) | ValueKind::Repeated(_) => None,
            ValueKind::Function(call) => self.function(call, item),
            ValueKind::Unary(unary) => self.unary(unary, item),
            ValueKind::Binary(binary) => self.binary(binary, item),
        }
    }

    // Operators and functions stay out of `evaluate_in`, which would otherwise be the module's
    // largest function: see "Small functions" in the crate's documentation.
    #[inline(never)]
    fn unary(&self, unary: &Unary, item: Item) -> Option<Value> {
        let operand = unary.operand.as_ref().and_then(|v| self.evaluate_in(v, item));
        operators::unary(unary.op(), operand)
    }

    #[inline(never)]
    fn binary(&self, binary: &Binary, item: Item) -> Option<Value> {
        let op = binary.op();
        let left = binary.left.as_ref().and_then(|v| self.evaluate_in(v, item));
        if let Some(decided) = operators::short_circuit(op, left.as_ref()) {
            return Some(decided);
        }
        let right = binary.right.as_ref().and_then(|v| self.evaluate_in(v, item));
        operators::binary(op, left, right)
    }

    #[inline(never)]
    fn function(&self, call: &FunctionCall, item: Item) -> Option<Value> {
        let args: Vec<Option<Value>> = call.args.iter().map(|a| self.evaluate_in(a, item)).collect();
        let result = functions::call(call.function(), &args, self.now_unix_ms, self.random)?;
        let mut current = &result;
        for name in &call.path {
            current = current.as_object()?.get(name)?;
        }
        Some(current.clone())
    }
}

fn literal_value(literal: &Literal) -> Option<Value> {
    Some(match literal.kind.as_ref()? {
        LiteralKind::String(s) => Value::String(s.clone()),
        LiteralKind::Int(i) => Value::from(*i),
        LiteralKind::Uint(u) => Value::from(*u),
        LiteralKind::Double(d) => Number::from_f64(*d).map(Value::Number)?,
        LiteralKind::Bool(b) => Value::Bool(*b),
        LiteralKind::Empty(empty) => match Empty::try_from(*empty).ok()? {
            Empty::Message => Value::Object(Map::new()),
            Empty::List => Value::Array(Vec::new()),
        },
    })
}
