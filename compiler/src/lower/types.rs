//! The types templates and expressions are checked with.

use prost_reflect::{FieldDescriptor, Kind};

#[derive(Clone, Debug)]
pub enum Ty {
    Bool,
    /// Any integer kind; the exact range is checked where a constant lands.
    Int,
    Float,
    String,
    Bytes,
    Enum(prost_reflect::EnumDescriptor),
    Message(prost_reflect::MessageDescriptor),
    List(Box<Ty>),
    /// Known only at run time (a JWT's claims, a map, an untyped error body).
    Dynamic,
    Null,
}

impl Ty {
    pub fn of_field(field: &FieldDescriptor) -> Ty {
        if field.is_map() {
            return Ty::Dynamic;
        }
        let base = Ty::of_kind(&field.kind());
        if field.is_list() {
            Ty::List(Box::new(base))
        } else {
            base
        }
    }

    pub fn of_kind(kind: &Kind) -> Ty {
        match kind {
            Kind::Double | Kind::Float => Ty::Float,
            Kind::Bool => Ty::Bool,
            Kind::String => Ty::String,
            Kind::Bytes => Ty::Bytes,
            Kind::Enum(e) => Ty::Enum(e.clone()),
            Kind::Message(m) => Ty::Message(m.clone()),
            _ => Ty::Int,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Dynamic)
    }

    pub fn is_scalar(&self) -> bool {
        !matches!(self, Ty::Message(_) | Ty::List(_))
    }

    /// Whether a value of this type may be stored where `target` is expected. Integers
    /// convert among themselves (range-checked at run time) and into floats; scalars format
    /// into strings; text parses into an enum by name; nothing else parses implicitly.
    pub fn assignable_to(&self, target: &Ty) -> bool {
        match (self, target) {
            (Ty::Dynamic | Ty::Null, _) | (_, Ty::Dynamic) => true,
            (Ty::List(a), Ty::List(b)) => a.assignable_to(b),
            (Ty::List(_), _) | (_, Ty::List(_)) => false,
            (Ty::Message(a), Ty::Message(b)) => a.full_name() == b.full_name(),
            (Ty::Message(_), _) | (_, Ty::Message(_)) => false,
            (Ty::Enum(a), Ty::Enum(b)) => a.full_name() == b.full_name(),
            (Ty::String, Ty::Enum(_)) => true,
            (_, Ty::String) => true,
            (Ty::String | Ty::Bytes, Ty::Bytes) => true,
            (Ty::Bool, Ty::Bool) | (Ty::Int, Ty::Int) => true,
            (Ty::Int | Ty::Float, Ty::Float) => true,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Ty::Bool => "a bool".into(),
            Ty::Int => "an integer".into(),
            Ty::Float => "a number".into(),
            Ty::String => "a string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Enum(e) => format!("enum `{}`", e.full_name()),
            Ty::Message(m) => format!("message `{}`", m.full_name()),
            Ty::List(inner) => {
                format!("a list of {}", inner.describe().trim_start_matches("a ").trim_start_matches("an "))
            }
            Ty::Dynamic => "a value known at run time".into(),
            Ty::Null => "null".into(),
        }
    }
}

/// A field's type in words, with its exact scalar kind (`an int32`).
pub fn describe_field(field: &FieldDescriptor) -> String {
    let kind = match field.kind() {
        Kind::Message(m) => format!("message `{}`", m.full_name()),
        Kind::Enum(e) => format!("enum `{}`", e.full_name()),
        other => format!("{other:?}").to_ascii_lowercase(),
    };
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    if field.is_map() {
        format!("a map of {kind}")
    } else if field.is_list() {
        format!("a repeated {kind}")
    } else if matches!(field.kind(), Kind::Message(_) | Kind::Enum(_)) {
        kind
    } else {
        format!("{article} {kind}")
    }
}

/// Whether an integer constant fits the field's kind.
pub fn int_fits(value: i128, kind: &Kind) -> bool {
    let (min, max): (i128, i128) = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => (i32::MIN.into(), i32::MAX.into()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => (i64::MIN.into(), i64::MAX.into()),
        Kind::Uint32 | Kind::Fixed32 => (0, u32::MAX.into()),
        Kind::Uint64 | Kind::Fixed64 => (0, u64::MAX.into()),
        Kind::Double | Kind::Float => return true,
        _ => return false,
    };
    (min..=max).contains(&value)
}
