//! The built-in functions' signatures: what each accepts and returns. Their names are the
//! plan's vocabulary (`plan::Function::name`); the filter runs them.

use semaphore_plan::Function;

use super::types::Ty;

/// Whether an argument of this type is accepted.
pub(super) type Accepts = fn(&Ty) -> bool;

/// Argument and result types of a built-in function.
pub(super) struct Signature {
    /// Types of the leading arguments; `None` accepts any scalar.
    pub args: &'static [Option<Accepts>],
    /// Further arguments, any scalar, are allowed.
    pub variadic: bool,
    pub returns: Ty,
    /// Writes its arguments into text, where an absent value is its proto3 default.
    pub formats: bool,
}

fn text(ty: &Ty) -> bool {
    matches!(ty, Ty::String | Ty::Bytes | Ty::Enum(_) | Ty::Dynamic | Ty::Null)
}

fn sized(ty: &Ty) -> bool {
    matches!(ty, Ty::String | Ty::Bytes | Ty::List(_) | Ty::Dynamic | Ty::Null)
}

fn anything(_: &Ty) -> bool {
    true
}

pub(super) fn signature(function: Function) -> Signature {
    use Function as F;
    let (args, variadic, returns): (&'static [Option<Accepts>], _, _) = match function {
        F::Sprintf => (&[Some(text)], true, Ty::String),
        F::Strconcat => (&[None], true, Ty::String),
        F::Jwt => (&[Some(text)], false, Ty::Dynamic),
        F::Len => (&[Some(sized)], false, Ty::Int),
        F::Base64 => (&[Some(text)], false, Ty::String),
        F::Base64Decode => (&[Some(text)], false, Ty::String),
        F::Json => (&[Some(anything)], false, Ty::String),
        F::Now => (&[], false, Ty::Int),
        F::Uuid => (&[], false, Ty::String),
        F::Lower => (&[Some(text)], false, Ty::String),
        F::Upper => (&[Some(text)], false, Ty::String),
    };
    let formats = matches!(function, F::Sprintf | F::Strconcat);
    Signature { args, variadic, returns, formats }
}

/// The names of every function, for hints.
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    Function::ALL.into_iter().map(Function::name)
}
