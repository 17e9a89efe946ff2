//! The built-in functions (`sprintf`, `jwt`, `uuid`, ...): what each computes from its
//! arguments. Their names are the plan's (`plan/src/vocabulary.rs`), their signatures the
//! compiler's (`compiler/src/lower/functions.rs`).

use std::cell::Cell;

use crate::engine::value::Value;
use base64::Engine as _;
use semaphore_plan::format::{self, Piece, Verb, VerbKind};
use semaphore_plan::Function;

use crate::engine::codec::{json_text, to_text};

/// A built-in function on its evaluated arguments; `None` when an argument it needs is absent
/// or of no use to it.
pub(super) fn call(
    function: Function,
    args: &[Option<Value>],
    now_unix_ms: u64,
    random: &Cell<u64>,
) -> Option<Value> {
    let text = |index: usize| args.get(index).and_then(|a| a.as_ref()).map(to_text);
    Some(match function {
        Function::Sprintf => Value::String(sprintf(&text(0)?, args.get(1..).unwrap_or(&[]))),
        Function::Strconcat => Value::String(args.iter().flatten().map(to_text).collect()),
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
        Function::Json => Value::String(json_text(args.first()?.as_ref()?)),
        Function::Now => Value::from(now_unix_ms / 1000),
        Function::Uuid => Value::String(uuid(random)),
        Function::Lower => Value::String(text(0)?.to_lowercase()),
        Function::Upper => Value::String(text(0)?.to_uppercase()),
    })
}

/// A version 4 UUID from a splitmix64 stream seeded by the host per request. Unique, not
/// unpredictable: do not use it as a secret.
pub(crate) fn uuid(random: &Cell<u64>) -> String {
    let (high, low) = uuid_bits(random);
    // Written digit by digit: every execution takes an id, and `format!` takes several times
    // as long.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    let bytes = (u128::from(high) << 64 | u128::from(low)).to_be_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xF)]));
    }
    text
}

/// The 128 bits of the next UUID, its version and variant set.
fn uuid_bits(random: &Cell<u64>) -> (u64, u64) {
    let next = || {
        let mut z = random.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        random.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (high, low) = (next(), next());
    (
        (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000,
        (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000,
    )
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
        (VerbKind::Json, value) => out.push_str(&json_text(value)),
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
            let text = to_text(value);
            match verb.width {
                // Semaphore's `%16s` keeps the first 16 characters.
                Some(width) => out.extend(text.chars().take(width)),
                None => out.push_str(&text),
            }
        }
        (_, value) => out.push_str(&to_text(value)),
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
    use crate::engine::value::json;

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
    fn uuids_are_version_4_and_distinct() {
        let random = Cell::new(7);
        let (a, b) = (uuid(&random), uuid(&random));
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        // As the formatting machinery writes them.
        for seed in [0, 7, u64::MAX] {
            let (high, low) = uuid_bits(&Cell::new(seed));
            let formatted = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                high >> 32,
                (high >> 16) & 0xFFFF,
                high & 0xFFFF,
                low >> 48,
                low & 0xFFFF_FFFF_FFFF
            );
            assert_eq!(uuid(&Cell::new(seed)), formatted);
        }
    }
}
