//! Evaluating the plan's values: references, functions, operators, and the messages built
//! from templates.

use std::cell::Cell;

use base64::Engine as _;
use semaphore_plan::format::{self, Piece, Verb, VerbKind};
use semaphore_plan::{
    Binary, BinaryOp, Empty, Function, FunctionCall, Literal, LiteralKind, MessageTemplate, Plan, Reference,
    RepeatedTemplate, Unary, UnaryOp, Value as PlanValue, ValueKind, ITEM_SLOT,
};
use serde_json::{Map, Number, Value};

use super::codec;

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

    pub fn build_message(
        &self,
        layout: u32,
        template: Option<&MessageTemplate>,
    ) -> Result<Map<String, Value>, String> {
        self.build_in(layout, template, Item(None), 0)
    }

    fn build_in(
        &self,
        layout: u32,
        template: Option<&MessageTemplate>,
        item: Item,
        depth: usize,
    ) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        let (Some(template), Some(message)) = (template, codec::message(self.plan, layout)) else {
            return Ok(out);
        };
        if depth > codec::MAX_DEPTH {
            return Err(format!("`{}` nests deeper than {} levels", message.name, codec::MAX_DEPTH));
        }
        for field_template in &template.fields {
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

    fn unary(&self, unary: &Unary, item: Item) -> Option<Value> {
        let operand = unary.operand.as_ref().and_then(|v| self.evaluate_in(v, item));
        match UnaryOp::try_from(unary.op).ok()? {
            UnaryOp::Not => Some(Value::Bool(!truthy(operand.as_ref()))),
            UnaryOp::Negate => match operand? {
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i.checked_neg().map(Value::from),
                    None => Number::from_f64(-n.as_f64()?).map(Value::Number),
                },
                _ => None,
            },
        }
    }

    fn binary(&self, binary: &Binary, item: Item) -> Option<Value> {
        let op = BinaryOp::try_from(binary.op).ok()?;
        let left = binary.left.as_ref().and_then(|v| self.evaluate_in(v, item));
        // `&&` and `||` decide on the left operand alone when they can.
        match op {
            BinaryOp::And if !truthy(left.as_ref()) => return Some(Value::Bool(false)),
            BinaryOp::Or if truthy(left.as_ref()) => return Some(Value::Bool(true)),
            _ => {}
        }
        let right = binary.right.as_ref().and_then(|v| self.evaluate_in(v, item));
        match op {
            BinaryOp::And | BinaryOp::Or => Some(Value::Bool(truthy(right.as_ref()))),
            BinaryOp::Eq => Some(Value::Bool(equal(left.as_ref(), right.as_ref()))),
            BinaryOp::Ne => Some(Value::Bool(!equal(left.as_ref(), right.as_ref()))),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let ordering = compare(left.as_ref()?, right.as_ref()?)?;
                let result = match op {
                    BinaryOp::Lt => ordering.is_lt(),
                    BinaryOp::Le => ordering.is_le(),
                    BinaryOp::Gt => ordering.is_gt(),
                    _ => ordering.is_ge(),
                };
                Some(Value::Bool(result))
            }
            // An absent operand is its type's default: `''` beside text, `0` beside a number.
            BinaryOp::Add => match (left, right) {
                (Some(Value::String(a)), Some(Value::String(b))) => Some(Value::String(a + &b)),
                (Some(Value::String(a)), None) | (None, Some(Value::String(a))) => Some(Value::String(a)),
                (left, right) => arithmetic(op, &number_or_zero(left)?, &number_or_zero(right)?),
            },
            _ => arithmetic(op, &number_or_zero(left)?, &number_or_zero(right)?),
        }
    }

    fn function(&self, call: &FunctionCall, item: Item) -> Option<Value> {
        let args: Vec<Option<Value>> = call.args.iter().map(|a| self.evaluate_in(a, item)).collect();
        let text = |index: usize| args.get(index).and_then(|a| a.as_ref()).map(codec::to_text);
        let result = match Function::try_from(call.function).ok()? {
            Function::Sprintf => Value::String(sprintf(&text(0)?, args.get(1..).unwrap_or(&[]))),
            Function::Strconcat => Value::String(args.iter().flatten().map(codec::to_text).collect()),
            Function::Jwt => jwt_claims(&text(0)?)?,
            Function::Len => match args.first()?.as_ref()? {
                Value::String(s) => Value::from(s.chars().count() as u64),
                Value::Array(items) => Value::from(items.len() as u64),
                Value::Object(fields) => Value::from(fields.len() as u64),
                _ => return None,
            },
            Function::Base64 => Value::String(base64::engine::general_purpose::STANDARD.encode(text(0)?)),
            Function::Base64Decode => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(text(0)?.trim()).ok()?;
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            Function::Json => Value::String(args.first()?.as_ref()?.to_string()),
            Function::Now => Value::from(self.now_unix_ms / 1000),
            Function::Uuid => Value::String(self.uuid()),
            Function::Lower => Value::String(text(0)?.to_lowercase()),
            Function::Upper => Value::String(text(0)?.to_uppercase()),
        };
        let mut current = &result;
        for name in &call.path {
            current = current.as_object()?.get(name)?;
        }
        Some(current.clone())
    }

    /// A version 4 UUID from a splitmix64 stream seeded by the host per request. Unique, not
    /// unpredictable: do not use it as a secret.
    fn uuid(&self) -> String {
        uuid(self.random)
    }
}

/// A version 4 UUID from a splitmix64 stream; see [`Env::uuid`].
pub(super) fn uuid(random: &Cell<u64>) -> String {
    {
        let next = || {
            let mut z = random.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            random.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (high, low) = (next(), next());
        let high = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Missing, null, "", 0 and false are false; everything else is true.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(_) => true,
    }
}

/// Proto3 does not tell an absent scalar from its default, so neither does `==`: an absent
/// value equals `''`, `0` and `false`.
fn is_default(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn equal(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (None | Some(Value::Null), None | Some(Value::Null)) => true,
        (None | Some(Value::Null), Some(other)) | (Some(other), None | Some(Value::Null)) => {
            is_default(other)
        }
        (Some(Value::Number(a)), Some(Value::Number(b))) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => a.as_f64() == b.as_f64(),
        },
        (Some(a), Some(b)) => a == b,
    }
}

fn number_or_zero(value: Option<Value>) -> Option<Number> {
    match value {
        None | Some(Value::Null) => Some(Number::from(0)),
        Some(Value::Number(n)) => Some(n),
        Some(_) => None,
    }
}

fn compare(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Integers stay integers while the result is exact; otherwise the result is a float.
fn arithmetic(op: BinaryOp, a: &Number, b: &Number) -> Option<Value> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let exact = match op {
            BinaryOp::Add => x.checked_add(y),
            BinaryOp::Sub => x.checked_sub(y),
            BinaryOp::Mul => x.checked_mul(y),
            BinaryOp::Div if y != 0 && x % y == 0 => x.checked_div(y),
            BinaryOp::Rem if y != 0 => x.checked_rem(y),
            BinaryOp::Div | BinaryOp::Rem if y == 0 => return None,
            _ => None,
        };
        if let Some(exact) = exact {
            return Some(Value::from(exact));
        }
    }
    let (x, y) = (a.as_f64()?, b.as_f64()?);
    let result = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Rem => x % y,
        _ => return None,
    };
    Number::from_f64(result).map(Value::Number)
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

/// Formats as Semaphore's `sprintf` did (see `semaphore_plan::format`). The compiler checked
/// the format and gave absent values their defaults; a value that is still absent prints
/// nothing, and a format that does not parse (a corrupt plan) prints as it is.
fn sprintf(format: &str, args: &[Option<Value>]) -> String {
    let Ok(pieces) = format::parse(format) else {
        return format.to_string();
    };
    let mut out = String::with_capacity(format.len());
    let mut args = args.iter();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Verb(verb) => {
                if let Some(value) = args.next().and_then(Option::as_ref) {
                    format_verb(verb, value, &mut out);
                }
            }
        }
    }
    out
}

fn format_verb(verb: Verb, value: &Value, out: &mut String) {
    match (verb.kind, value) {
        (VerbKind::Json, value) => out.push_str(&value.to_string()),
        (VerbKind::Integer, Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(u)) => out.push_str(&u.to_string()),
            (None, None) => out.push_str(&(n.as_f64().unwrap_or_default().trunc() as i64).to_string()),
        },
        (VerbKind::Float, Value::Number(n)) => {
            let number = n.as_f64().unwrap_or_default();
            let width = verb.width.unwrap_or(0);
            // Six decimals unless told otherwise, as Go's `%f`, which Semaphore used.
            let scale = verb.scale.unwrap_or(6);
            out.push_str(&format!("{number:>width$.scale$}"));
        }
        (VerbKind::Text, value) => {
            let text = codec::to_text(value);
            match verb.width {
                // Semaphore's `%16s` keeps the first 16 characters.
                Some(width) => out.extend(text.chars().take(width)),
                None => out.push_str(&text),
            }
        }
        (_, value) => out.push_str(&codec::to_text(value)),
    }
}

/// The claims of a JWT (`Bearer ` prefix allowed). Not verified: that is the job of Envoy's
/// jwt_authn filter in front of this one.
fn jwt_claims(token: &str) -> Option<Value> {
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").or_else(|| token.strip_prefix("bearer ")).unwrap_or(token);
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(Value::Object(claims)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn sprintf_verbs() {
        let args = [Some(json!("Ada")), Some(json!(36.0)), Some(json!({"a": 1}))];
        assert_eq!(sprintf("Hey %s! %d years, %json, 100%%", &args), "Hey Ada! 36 years, {\"a\":1}, 100%");
        assert_eq!(sprintf("missing %s", &[None]), "missing ");
        let number = [Some(json!(1.23456789))];
        assert_eq!(sprintf("%f", &number), "1.234568");
        assert_eq!(sprintf("%.2f", &number), "1.23");
        assert_eq!(sprintf("[%8.3f]", &number), "[   1.235]");
        assert_eq!(sprintf("%4s", &[Some(json!("Semaphore"))]), "Sema");
        assert_eq!(sprintf("%d", &[Some(json!(u64::MAX))]), "18446744073709551615");
        assert_eq!(sprintf("%json", &[Some(json!([1, "a", null]))]), "[1,\"a\",null]");
        assert_eq!(sprintf("%v and %v", &[Some(json!(true)), Some(json!(7))]), "true and 7");
    }

    #[test]
    fn jwt_claims_are_decoded_not_verified() {
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"42","admin":true}"#);
        let token = format!("Bearer eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(jwt_claims(&token), Some(json!({"sub": "42", "admin": true})));
        assert_eq!(jwt_claims("not a token"), None);
    }

    #[test]
    fn truthiness() {
        for falsy in
            [None, Some(json!(null)), Some(json!("")), Some(json!(0)), Some(json!(0.0)), Some(json!(false))]
        {
            assert!(!truthy(falsy.as_ref()), "{falsy:?}");
        }
        for true_ in [json!("x"), json!(1), json!(true), json!([]), json!({})] {
            assert!(truthy(Some(&true_)), "{true_}");
        }
    }

    #[test]
    fn absent_values_are_their_defaults() {
        assert!(equal(None, Some(&json!(""))));
        assert!(equal(Some(&json!(0)), None));
        assert!(equal(None, Some(&json!(false))));
        assert!(!equal(None, Some(&json!("x"))));
        assert_eq!(number_or_zero(None), Some(Number::from(0)));
        assert_eq!(number_or_zero(Some(json!("x"))), None);
    }

    #[test]
    fn arithmetic_stays_exact() {
        let n = |v: Value| v.as_number().cloned().unwrap_or_else(|| Number::from(0));
        assert_eq!(arithmetic(BinaryOp::Add, &n(json!(2)), &n(json!(3))), Some(json!(5)));
        assert_eq!(arithmetic(BinaryOp::Div, &n(json!(7)), &n(json!(2))), Some(json!(3.5)));
        assert_eq!(arithmetic(BinaryOp::Div, &n(json!(8)), &n(json!(2))), Some(json!(4)));
        assert_eq!(arithmetic(BinaryOp::Div, &n(json!(1)), &n(json!(0))), None);
        assert_eq!(
            arithmetic(BinaryOp::Add, &n(json!(i64::MAX)), &n(json!(1))),
            Some(json!(9.223372036854776e18))
        );
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let plan = Plan::default();
        let random = Cell::new(7);
        let env = Env { plan: &plan, lookup: &|_| None, now_unix_ms: 0, random: &random };
        let (a, b) = (env.uuid(), env.uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
