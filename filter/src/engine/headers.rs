//! Headers built from templates: a call's, an answer's and a proxy's.

use crate::engine::value::Value;
use semaphore_plan::HeaderTemplate;

use super::codec;
use super::Failure;

/// Each header's value as text, `None` where it is absent. A value with a line break is
/// refused: it would smuggle a second header or request.
pub(super) fn evaluate(
    templates: &[HeaderTemplate],
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Vec<(String, Option<String>)>, Failure> {
    templates
        .iter()
        .map(|header| {
            let value = header.value.as_ref().and_then(&evaluate).map(|v| codec::to_text(&v));
            if value.as_deref().is_some_and(|v| v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)) {
                let name = &header.name;
                return Err(Failure::new(
                    400,
                    format!("the value for header `{name}` contains a line break"),
                ));
            }
            Ok((header.name.clone(), value))
        })
        .collect()
}

/// The headers whose values are present: an absent one is left out, not sent empty.
pub(super) fn present(
    templates: &[HeaderTemplate],
    evaluate: impl Fn(&semaphore_plan::Value) -> Option<Value>,
) -> Result<Vec<(String, String)>, Failure> {
    Ok(self::evaluate(templates, evaluate)?
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect())
}
