//! The operators of conditions and expressions: truthiness, proto3's equality of absent and
//! default values, comparison and exact integer arithmetic.

use crate::engine::value::{Number, Value};
use semaphore_plan::{BinaryOp, UnaryOp};

/// `!` and unary `-`.
pub(super) fn unary(op: UnaryOp, operand: Option<Value>) -> Option<Value> {
    match op {
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

/// What `&&` and `||` answer from their left operand alone, when they can: the right one is
/// then not evaluated.
pub(super) fn short_circuit(op: BinaryOp, left: Option<&Value>) -> Option<Value> {
    match op {
        BinaryOp::And if !truthy(left) => Some(Value::Bool(false)),
        BinaryOp::Or if truthy(left) => Some(Value::Bool(true)),
        _ => None,
    }
}

/// A binary operator on both operands; see [`short_circuit`] for `&&` and `||`.
pub(super) fn binary(op: BinaryOp, left: Option<Value>, right: Option<Value>) -> Option<Value> {
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
            // `checked_rem`: `i64::MIN % -1` overflows, and a plain `%` would trap.
            BinaryOp::Div if x.checked_rem(y) == Some(0) => x.checked_div(y),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::value::json;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
        assert_eq!(arithmetic(BinaryOp::Rem, &n(json!(1)), &n(json!(0))), None);
        assert_eq!(
            arithmetic(BinaryOp::Div, &n(json!(i64::MIN)), &n(json!(-1))),
            Some(json!(9.223372036854776e18))
        );
        assert_eq!(arithmetic(BinaryOp::Rem, &n(json!(i64::MIN)), &n(json!(-1))), Some(json!(-0.0)));
        assert_eq!(
            arithmetic(BinaryOp::Add, &n(json!(i64::MAX)), &n(json!(1))),
            Some(json!(9.223372036854776e18))
        );
    }
}
