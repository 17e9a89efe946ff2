//! The `sprintf` format language, Semaphore's: `%s` text (`%16s` keeps the first 16
//! characters), `%d` an integer, `%f` a number (`%.2f` two decimals, `%8.2f` right-aligned in 8,
//! six decimals by default), `%json` any value as JSON, `%v` any scalar as text, `%%` a percent
//! sign. The compiler checks a format with [`parse`]; the filter formats with the same parse, so
//! the two never disagree on what a format means.

/// One piece of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'f> {
    Text(&'f str),
    Verb(Verb),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verb {
    pub kind: VerbKind,
    /// Digits before the `.`: the minimum width of `%f`, the maximum length of `%s`.
    pub width: Option<usize>,
    /// Digits after the `.`: the decimals of `%f`.
    pub scale: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerbKind {
    /// `%s`
    Text,
    /// `%d`
    Integer,
    /// `%f`
    Float,
    /// `%json`
    Json,
    /// `%v`
    Value,
}

impl VerbKind {
    pub fn spelling(self) -> &'static str {
        match self {
            VerbKind::Text => "%s",
            VerbKind::Integer => "%d",
            VerbKind::Float => "%f",
            VerbKind::Json => "%json",
            VerbKind::Value => "%v",
        }
    }
}

/// Why a format is not one: the byte offset of the `%` in question and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub offset: usize,
    pub message: String,
}

/// Widths and scales beyond this are typing mistakes, and would let a format allocate at will.
const MAX_WIDTH: usize = 1024;

/// The pieces of a format, or the first thing in it that is not a format.
pub fn parse(format: &str) -> Result<Vec<Piece<'_>>, FormatError> {
    let mut pieces = Vec::new();
    let mut rest = format;
    let mut offset = 0;
    // Formats come from plans: every slice is checked, so a corrupt plan cannot trap the filter.
    while let Some(at) = rest.find('%') {
        let error = |message: String| FormatError { offset: offset + at, message };
        let (Some(text), Some(spec)) = (rest.get(..at), rest.get(at + 1..)) else {
            return Err(error("not a format".into()));
        };
        if at > 0 {
            pieces.push(Piece::Text(text));
        }
        if let Some(after) = spec.strip_prefix('%') {
            pieces.push(Piece::Text("%"));
            offset += at + 2;
            rest = after;
            continue;
        }
        let (verb, consumed) = parse_verb(spec).map_err(error)?;
        pieces.push(Piece::Verb(verb));
        offset += at + 1 + consumed;
        rest = spec.get(consumed..).unwrap_or_default();
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// The verb that `spec`, what follows a `%`, starts with, and the bytes of `spec` it takes.
fn parse_verb(spec: &str) -> Result<(Verb, usize), String> {
    let digits = |text: &str| text.bytes().take_while(u8::is_ascii_digit).count();
    let width_len = digits(spec);
    let (scale_len, dot) = match spec.get(width_len..).and_then(|s| s.strip_prefix('.')) {
        Some(after_dot) => (digits(after_dot), 1),
        None => (0, 0),
    };
    let (Some(width_text), Some(scale_text), Some(verb_text)) = (
        spec.get(..width_len),
        spec.get(width_len + dot..width_len + dot + scale_len),
        spec.get(width_len + dot + scale_len..),
    ) else {
        return Err("not a format".into());
    };
    let width = number(width_text)?;
    let scale = number(scale_text)?;
    let (kind, verb_len) = verb_kind(verb_text)?;
    let precision_allowed = match kind {
        VerbKind::Float => true,
        VerbKind::Text => scale.is_none() && dot == 0,
        VerbKind::Integer | VerbKind::Json | VerbKind::Value => width.is_none() && dot == 0,
    };
    if !precision_allowed {
        return Err(format!("`{}` takes no {}", kind.spelling(), if dot == 1 { "scale" } else { "width" }));
    }
    Ok((Verb { kind, width, scale }, width_len + dot + scale_len + verb_len))
}

/// A width or a scale; none when it is not written.
fn number(text: &str) -> Result<Option<usize>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_WIDTH => Ok(Some(n)),
        _ => Err(format!("`{text}` is more than {MAX_WIDTH}")),
    }
}

/// The verb's kind and the length of its spelling, from the text after width and scale.
fn verb_kind(text: &str) -> Result<(VerbKind, usize), String> {
    if text.starts_with("json") {
        return Ok((VerbKind::Json, 4));
    }
    match text.chars().next() {
        Some('s') => Ok((VerbKind::Text, 1)),
        Some('d') => Ok((VerbKind::Integer, 1)),
        Some('f') => Ok((VerbKind::Float, 1)),
        Some('v') => Ok((VerbKind::Value, 1)),
        Some(other) => Err(format!(
            "unknown verb `%{other}`; the verbs are %s, %d, %f, %json, %v and %% for a percent sign"
        )),
        None => Err("a `%` ends the format; write `%%` for a percent sign".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(kind: VerbKind, width: Option<usize>, scale: Option<usize>) -> Piece<'static> {
        Piece::Verb(Verb { kind, width, scale })
    }

    #[test]
    fn parses_every_verb() {
        assert_eq!(
            parse("Hey %s! %d, %.2f%% and %json %v").unwrap(),
            vec![
                Piece::Text("Hey "),
                verb(VerbKind::Text, None, None),
                Piece::Text("! "),
                verb(VerbKind::Integer, None, None),
                Piece::Text(", "),
                verb(VerbKind::Float, None, Some(2)),
                Piece::Text("%"),
                Piece::Text(" and "),
                verb(VerbKind::Json, None, None),
                Piece::Text(" "),
                verb(VerbKind::Value, None, None),
            ]
        );
        assert_eq!(
            parse("%8.3f|%16s").unwrap(),
            vec![
                verb(VerbKind::Float, Some(8), Some(3)),
                Piece::Text("|"),
                verb(VerbKind::Text, Some(16), None),
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_a_format() {
        assert_eq!(parse("50% off").unwrap_err().offset, 2);
        assert!(parse("50% off").unwrap_err().message.contains("unknown verb `% `"));
        assert!(parse("trailing %").unwrap_err().message.contains("write `%%`"));
        assert!(parse("%5d").unwrap_err().message.contains("`%d` takes no width"));
        assert!(parse("%.2s").unwrap_err().message.contains("`%s` takes no scale"));
        assert!(parse("%99999999999999999999f").is_err());
        assert_eq!(parse("ok %s then %x").unwrap_err().offset, 11);
    }
}
