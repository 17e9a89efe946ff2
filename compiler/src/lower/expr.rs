//! Lowering values: constants, `{{ }}` templates, references, function calls and operators,
//! each typed and checked against where it lands.

use prost_reflect::{FieldDescriptor, MessageDescriptor};
use semaphore_plan as plan;

use super::functions;
use super::types::{describe_field, int_fits, Ty};
use super::{Ctx, Item, Lowering, Mode, NodeInfo, NodeKind, Scope};
use crate::config::{Literal, Spanned};
use crate::diagnostics::Span;
use crate::template::{self, Expr, ExprKind, Part, TemplateRef};
use plan::{BinaryOp, UnaryOp};

pub(super) fn literal_value(literal: &Literal) -> plan::Value {
    let kind = match literal {
        Literal::String(s) => plan::LiteralKind::String(s.clone()),
        Literal::Int(i) => plan::LiteralKind::Int(*i),
        Literal::Uint(u) => plan::LiteralKind::Uint(*u),
        Literal::Float(f) => plan::LiteralKind::Double(*f),
        Literal::Bool(b) => plan::LiteralKind::Bool(*b),
    };
    plan::Value { kind: Some(plan::ValueKind::Literal(plan::Literal { kind: Some(kind) })) }
}

/// Where a value is written into text, a reference to an absent value reads as its type's
/// proto3 default: `0`, `""`, `false`, the first enum value, `{}` or `[]`.
fn set_absent_default(value: &mut plan::Value, ty: &Ty) {
    let Some(plan::ValueKind::Reference(reference)) = value.kind.as_mut() else { return };
    let kind = match ty {
        Ty::Bool => plan::LiteralKind::Bool(false),
        Ty::Int => plan::LiteralKind::Int(0),
        Ty::Float => plan::LiteralKind::Double(0.0),
        Ty::String | Ty::Bytes => plan::LiteralKind::String(String::new()),
        Ty::Enum(e) => match e.get_value(0).or_else(|| e.values().next()) {
            Some(first) => plan::LiteralKind::String(first.name().to_string()),
            None => return,
        },
        Ty::Message(_) => plan::LiteralKind::Empty(plan::Empty::Message as i32),
        Ty::List(_) => plan::LiteralKind::Empty(plan::Empty::List as i32),
        Ty::Dynamic | Ty::Null => return,
    };
    reference.absent = Some(plan::Literal { kind: Some(kind) });
}

fn literal_ty(literal: &Literal) -> Ty {
    match literal {
        Literal::String(_) => Ty::String,
        Literal::Int(_) | Literal::Uint(_) => Ty::Int,
        Literal::Float(_) => Ty::Float,
        Literal::Bool(_) => Ty::Bool,
    }
}

/// The span of an expression inside a quoted string literal (one byte past the opening quote).
fn inner_span(literal: &Span, range: &std::ops::Range<usize>) -> Span {
    let start = literal.range.start + 1 + range.start;
    let end = (literal.range.start + 1 + range.end).min(literal.range.end.max(start));
    Span { file: literal.file, range: start..end }
}

impl Lowering<'_> {
    /// A value for a message field: like [`Lowering::value`], with integer constants
    /// range-checked against the field's exact kind.
    pub(super) fn field_value(
        &mut self,
        value: &Spanned<Literal>,
        field: &FieldDescriptor,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        let integer = match value.value {
            Literal::Int(i) => Some(i128::from(i)),
            Literal::Uint(u) => Some(i128::from(u)),
            _ => None,
        };
        if let Some(integer) = integer {
            if !field.is_list()
                && matches!(Ty::of_field(field), Ty::Int | Ty::Float)
                && !int_fits(integer, &field.kind())
            {
                self.reporter
                    .error(
                        &value.span,
                        format!("{integer} does not fit `{}`, {}", field.name(), describe_field(field)),
                    )
                    .label("out of range");
                return None;
            }
        }
        self.value(value, &Ty::of_field(field), ctx)
    }

    /// A constant or a string with templates, checked against `target`.
    pub(super) fn value(
        &mut self,
        value: &Spanned<Literal>,
        target: &Ty,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        let Literal::String(text) = &value.value else {
            return self.constant(value, target);
        };
        let parts = match template::parse(text) {
            Ok(parts) => parts,
            Err(e) => {
                self.reporter
                    .error(&inner_span(&value.span, &e.range), format!("invalid template: {}", e.message))
                    .label("here");
                return None;
            }
        };
        match parts.as_slice() {
            [] | [Part::Text(_)] => self.plain_text(text, value, target),
            [Part::Expr(expr)] => {
                let (lowered, ty) = self.expr(expr, &value.span, ctx)?;
                self.check_assign(&ty, target, &inner_span(&value.span, &expr.range))?;
                Some((lowered, ty))
            }
            parts => self.interpolation(parts, value, target, ctx),
        }
    }

    /// A number or a bool. Constants are exact: a number where text is expected is a mistake,
    /// not a format.
    fn constant(&mut self, value: &Spanned<Literal>, target: &Ty) -> Option<(plan::Value, Ty)> {
        let ty = literal_ty(&value.value);
        let fits = matches!(
            (&ty, target),
            (_, Ty::Dynamic) | (Ty::Int, Ty::Int | Ty::Float) | (Ty::Float, Ty::Float) | (Ty::Bool, Ty::Bool)
        );
        if !fits {
            self.reporter
                .error(
                    &value.span,
                    format!("type mismatch: expected {}, found {}", target.describe(), ty.describe()),
                )
                .label(format!("this is {}", ty.describe()))
                .note(if matches!(target, Ty::String) {
                    "quote it to write text"
                } else {
                    "constants must match the field's type"
                });
            return None;
        }
        Some((literal_value(&value.value), ty))
    }

    /// Text without templates: a string, or the name of a value where an enum is expected.
    fn plain_text(&mut self, text: &str, value: &Spanned<Literal>, target: &Ty) -> Option<(plan::Value, Ty)> {
        if let Ty::Enum(e) = target {
            if e.get_value_by_name(text).is_none() {
                let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
                let listed = format!("its values: {}", names.join(", "));
                self.reporter
                    .error(&value.span, format!("`{text}` is not a value of enum `{}`", e.full_name()))
                    .label("unknown enum value")
                    .suggest(text, names.iter().map(String::as_str), Some(listed));
                return None;
            }
            return Some((literal_value(&value.value), target.clone()));
        }
        self.check_assign(&Ty::String, target, &value.span)?;
        Some((literal_value(&value.value), Ty::String))
    }

    /// Text with templates: a string, whose templates are scalars written into it.
    fn interpolation(
        &mut self,
        parts: &[Part],
        value: &Spanned<Literal>,
        target: &Ty,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        if !Ty::String.assignable_to(target) {
            self.reporter
                .error(
                    &value.span,
                    format!("text with templates is a string, but {} is expected here", target.describe()),
                )
                .label("interpolated string");
            return None;
        }
        let mut out = Vec::new();
        for part in parts {
            match part {
                Part::Text(text) => out.push(literal_value(&Literal::String(text.clone()))),
                Part::Expr(expr) => out.push(self.interpolated(expr, value, ctx)?),
            }
        }
        let value =
            plan::Value { kind: Some(plan::ValueKind::Interpolation(plan::Interpolation { parts: out })) };
        Some((value, Ty::String))
    }

    /// One `{{ }}` of text with templates.
    fn interpolated(&mut self, expr: &Expr, value: &Spanned<Literal>, ctx: &mut Ctx) -> Option<plan::Value> {
        let (mut lowered, ty) = self.expr(expr, &value.span, ctx)?;
        if !ty.is_scalar() {
            self.reporter
                .error(
                    &inner_span(&value.span, &expr.range),
                    format!("only scalars can be written into text; this is {}", ty.describe()),
                )
                .label("not a scalar")
                .note("use `json(...)` to write a message as JSON text");
            return None;
        }
        set_absent_default(&mut lowered, &ty);
        Some(lowered)
    }

    fn check_assign(&mut self, found: &Ty, expected: &Ty, span: &Span) -> Option<()> {
        if found.assignable_to(expected) {
            return Some(());
        }
        self.reporter
            .error(
                span,
                format!("type mismatch: expected {}, found {}", expected.describe(), found.describe()),
            )
            .label(format!("this is {}", found.describe()));
        None
    }

    /// An `if` condition: any expression; a non-bool value tests its truthiness.
    pub(super) fn condition(&mut self, condition: &Spanned<String>, ctx: &mut Ctx) -> Option<plan::Value> {
        match template::parse_condition(&condition.value) {
            Ok(expr) => self.expr(&expr, &condition.span, ctx).map(|(value, _)| value),
            Err(e) => {
                self.reporter
                    .error(
                        &inner_span(&condition.span, &e.range),
                        format!("invalid condition: {}", e.message),
                    )
                    .label("here");
                None
            }
        }
    }

    /// The `"resource:path"` label of a `repeated` block.
    pub(super) fn source_reference(
        &mut self,
        source: &Spanned<String>,
        ctx: &mut Ctx,
    ) -> Option<(plan::Reference, Ty)> {
        let expr = match template::parse_condition(&source.value) {
            Ok(expr) => expr,
            Err(e) => {
                self.reporter
                    .error(&source.span, format!("invalid source: {}", e.message))
                    .label("expected `resource:path`");
                return None;
            }
        };
        let ExprKind::Reference(reference) = &expr.kind else {
            self.reporter
                .error(&source.span, "the source of `repeated` is a reference")
                .label("expected `resource:path`");
            return None;
        };
        let span = inner_span(&source.span, &expr.range);
        let (value, ty) = self.reference(reference, &span, ctx)?;
        match value.kind {
            Some(plan::ValueKind::Reference(reference)) => Some((reference, ty)),
            _ => None,
        }
    }

    pub(super) fn unknown_resource(&mut self, name: &str, span: &Span, scope: &Scope) {
        let mut names: Vec<&str> = scope.nodes.keys().map(String::as_str).collect();
        names.sort();
        names.push("input");
        self.reporter
            .error(span, format!("unknown resource `{name}`"))
            .label("not a resource of this flow")
            .suggest(name, names.iter().copied(), None);
    }

    fn expr(&mut self, expr: &Expr, literal: &Span, ctx: &mut Ctx) -> Option<(plan::Value, Ty)> {
        let span = inner_span(literal, &expr.range);
        let constant = |kind: plan::LiteralKind| plan::Value {
            kind: Some(plan::ValueKind::Literal(plan::Literal { kind: Some(kind) })),
        };
        match &expr.kind {
            ExprKind::String(s) => Some((constant(plan::LiteralKind::String(s.clone())), Ty::String)),
            ExprKind::Int(i) => Some((constant(plan::LiteralKind::Int(*i)), Ty::Int)),
            ExprKind::Float(f) => Some((constant(plan::LiteralKind::Double(*f)), Ty::Float)),
            ExprKind::Bool(b) => Some((constant(plan::LiteralKind::Bool(*b)), Ty::Bool)),
            ExprKind::Null => Some((plan::Value { kind: None }, Ty::Null)),
            ExprKind::Reference(reference) => self.reference(reference, &span, ctx),
            ExprKind::Call { name, args, path } => self.function(name, args, path, &span, literal, ctx),
            ExprKind::Unary(op, operand) => {
                let (value, ty) = self.expr(operand, literal, ctx)?;
                let ty = match op {
                    UnaryOp::Not => Ty::Bool,
                    UnaryOp::Negate if ty.is_numeric() => ty,
                    UnaryOp::Negate => {
                        self.reporter
                            .error(&span, format!("only numbers can be negated; this is {}", ty.describe()))
                            .label("not a number");
                        return None;
                    }
                };
                let unary = plan::Unary { op: *op as i32, operand: Some(value) };
                Some((plan::Value { kind: Some(plan::ValueKind::Unary(Box::new(unary))) }, ty))
            }
            ExprKind::Binary(op, left, right) => {
                let (left_value, left_ty) = self.expr(left, literal, ctx)?;
                let (right_value, right_ty) = self.expr(right, literal, ctx)?;
                let ty = self.binary_type(*op, &left_ty, &right_ty, &span)?;
                let binary =
                    plan::Binary { op: *op as i32, left: Some(left_value), right: Some(right_value) };
                Some((plan::Value { kind: Some(plan::ValueKind::Binary(Box::new(binary))) }, ty))
            }
        }
    }

    fn binary_type(&mut self, op: BinaryOp, left: &Ty, right: &Ty, span: &Span) -> Option<Ty> {
        let loose = |t: &Ty| matches!(t, Ty::Dynamic | Ty::Null);
        let ok_and_ty = match op {
            BinaryOp::And | BinaryOp::Or => Some(Ty::Bool),
            BinaryOp::Eq | BinaryOp::Ne => {
                let comparable = loose(left)
                    || loose(right)
                    || (left.is_numeric() && right.is_numeric())
                    || matches!(
                        (left, right),
                        (Ty::String | Ty::Enum(_), Ty::String | Ty::Enum(_))
                            | (Ty::Bool, Ty::Bool)
                            | (Ty::Bytes, Ty::Bytes)
                    );
                comparable.then_some(Ty::Bool)
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let ordered = loose(left)
                    || loose(right)
                    || (left.is_numeric() && right.is_numeric())
                    || matches!((left, right), (Ty::String, Ty::String));
                ordered.then_some(Ty::Bool)
            }
            BinaryOp::Add if matches!((left, right), (Ty::String, Ty::String)) => Some(Ty::String),
            _ => {
                if loose(left) || loose(right) {
                    Some(Ty::Dynamic)
                } else if left.is_numeric() && right.is_numeric() {
                    Some(if matches!((left, right), (Ty::Int, Ty::Int)) { Ty::Int } else { Ty::Float })
                } else {
                    None
                }
            }
        };
        if ok_and_ty.is_none() {
            self.reporter
                .error(
                    span,
                    format!("cannot apply `{}` to {} and {}", op.symbol(), left.describe(), right.describe()),
                )
                .label("incompatible operands");
        }
        ok_and_ty
    }

    fn function(
        &mut self,
        name: &str,
        args: &[Expr],
        path: &[String],
        span: &Span,
        literal: &Span,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        let Some(function) = plan::Function::from_name(name) else {
            let names: Vec<&str> = functions::names().collect();
            self.reporter.error(span, format!("unknown function `{name}`")).label("not a function").suggest(
                name,
                names.iter().copied(),
                Some(format!("functions: {}", names.join(", "))),
            );
            return None;
        };
        let signature = functions::signature(function);
        let fixed = signature.args.len();
        let arity_ok = if signature.variadic { args.len() >= fixed } else { args.len() == fixed };
        if !arity_ok {
            let expected = if signature.variadic { format!("at least {fixed}") } else { fixed.to_string() };
            self.reporter
                .error(span, format!("`{name}` takes {expected} argument(s), found {}", args.len()))
                .label("wrong number of arguments");
            return None;
        }
        let mut lowered = Vec::new();
        let mut types = Vec::new();
        for (index, arg) in args.iter().enumerate() {
            let (mut value, ty) = self.expr(arg, literal, ctx)?;
            let accepts = signature.args.get(index).copied().flatten();
            let ok = match accepts {
                Some(accepts) => accepts(&ty),
                // `sprintf` checks its values against its verbs below.
                None if function == plan::Function::Sprintf => true,
                None => ty.is_scalar(),
            };
            if !ok {
                self.reporter
                    .error(
                        &inner_span(literal, &arg.range),
                        format!("argument {} of `{name}` cannot be {}", index + 1, ty.describe()),
                    )
                    .label("wrong argument type");
                return None;
            }
            if signature.formats {
                set_absent_default(&mut value, &ty);
            }
            lowered.push(value);
            types.push(ty);
        }
        if function == plan::Function::Sprintf {
            self.check_sprintf(args, &types, span, literal)?;
        }
        if !path.is_empty() && !matches!(signature.returns, Ty::Dynamic) {
            self.reporter
                .error(
                    span,
                    format!("`{name}` returns {}, which has no fields", signature.returns.describe()),
                )
                .label("remove the `:path`");
            return None;
        }
        let call = plan::FunctionCall { function: function as i32, args: lowered, path: path.to_vec() };
        Some((plan::Value { kind: Some(plan::ValueKind::Function(call)) }, signature.returns))
    }

    /// A `sprintf` format is a constant, and each verb gets a value it can format.
    fn check_sprintf(&mut self, args: &[Expr], types: &[Ty], span: &Span, literal: &Span) -> Option<()> {
        let Some(format_arg) = args.first() else { return Some(()) };
        let ExprKind::String(format) = &format_arg.kind else {
            self.reporter
                .error(&inner_span(literal, &format_arg.range), "the format of `sprintf` is a constant")
                .label("not a 'quoted' format")
                .note("a format read at run time could not be checked against its values");
            return None;
        };
        let pieces = match plan::format::parse(format) {
            Ok(pieces) => pieces,
            Err(error) => {
                // One past the quote that opens the format.
                let start = format_arg.range.start + 1 + error.offset;
                self.reporter
                    .error(
                        &inner_span(literal, &(start..start + 1)),
                        format!("invalid format: {}", error.message),
                    )
                    .label("here");
                return None;
            }
        };
        let verbs: Vec<plan::format::Verb> = pieces
            .iter()
            .filter_map(|piece| match piece {
                plan::format::Piece::Verb(verb) => Some(*verb),
                plan::format::Piece::Text(_) => None,
            })
            .collect();
        if verbs.len() != args.len() - 1 {
            self.reporter
                .error(
                    span,
                    format!(
                        "the format has {} verb(s) but {} value(s) follow it",
                        verbs.len(),
                        args.len() - 1
                    ),
                )
                .label("sprintf arguments do not match the format");
            return None;
        }
        let mut ok = true;
        for ((verb, arg), ty) in verbs.iter().zip(args.iter().skip(1)).zip(types.iter().skip(1)) {
            use plan::format::VerbKind;
            let accepted = match verb.kind {
                VerbKind::Json => true,
                VerbKind::Integer => matches!(ty, Ty::Int | Ty::Dynamic | Ty::Null),
                VerbKind::Float => matches!(ty, Ty::Float | Ty::Int | Ty::Dynamic | Ty::Null),
                VerbKind::Text | VerbKind::Value => ty.is_scalar(),
            };
            if !accepted {
                let hint = if ty.is_scalar() {
                    "use `%v` for any scalar"
                } else {
                    "use `%json` to write it as JSON"
                };
                self.reporter
                    .error(
                        &inner_span(literal, &arg.range),
                        format!("`{}` cannot format {}", verb.kind.spelling(), ty.describe()),
                    )
                    .label("wrong value for its verb")
                    .note(hint);
                ok = false;
            }
        }
        ok.then_some(())
    }

    fn reference(
        &mut self,
        reference: &TemplateRef,
        span: &Span,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        match reference.resource.as_str() {
            "input" => self.input_reference(reference, span, ctx),
            "error" => self.error_reference(reference, span, ctx),
            name => self.node_reference(name, reference, span, ctx),
        }
    }

    /// `{{ input:path }}` or `{{ input.header:name }}`.
    fn input_reference(
        &mut self,
        reference: &TemplateRef,
        span: &Span,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        let scope = ctx.scope;
        let property = self.input_property(reference.property.as_deref(), span)?;
        if property == plan::Property::Header {
            let name = self.header_name(reference, span)?;
            // A proxy forwards every header, so it may read any of them.
            if !scope.proxy && !scope.input_headers.contains(&name) {
                self.reporter
                    .error(
                        span,
                        format!("header `{}` is not declared by the flow's input", reference.path.join(".")),
                    )
                    .label("undeclared header")
                    .note(format!("add it to the input: `header = [\"{}\"]`", reference.path.join(".")));
                return None;
            }
            return Some((reference_value(plan::INPUT_SLOT, property, vec![name]), Ty::String));
        }
        if scope.proxy {
            self.reporter
                .error(span, "a proxy forwards its request body untouched; `input` has only `header`")
                .label("the body is not read");
            return None;
        }
        let Some(input) = scope.input.clone() else {
            if !scope.input_failed {
                self.reporter
                    .error(span, "this flow declares no `input`")
                    .label("nothing to reference")
                    .note("add `input \"pkg.Message\" {}` to the flow");
            }
            return None;
        };
        self.typed_reference(plan::INPUT_SLOT, property, &Ty::Message(input), &reference.path, span, ctx)
    }

    fn input_property(&mut self, property: Option<&str>, span: &Span) -> Option<plan::Property> {
        const INPUT_PROPERTIES: [plan::Property; 2] = [plan::Property::Request, plan::Property::Header];
        let Some(name) = property else { return Some(plan::Property::Request) };
        let property = plan::Property::from_name(name).filter(|p| INPUT_PROPERTIES.contains(p));
        if property.is_none() {
            self.reporter
                .error(span, format!("`input` has no property `{name}`"))
                .label("unknown property")
                .suggest(
                    name,
                    INPUT_PROPERTIES.map(plan::Property::name),
                    Some("input has `request` (the default) and `header`".into()),
                );
        }
        property
    }

    /// `{{ error:message }}`, `{{ error:status }}` or `{{ error.params:name }}`, in the blocks
    /// that handle a failure.
    fn error_reference(
        &mut self,
        reference: &TemplateRef,
        span: &Span,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        if ctx.mode == Mode::Flow {
            self.reporter
                .error(span, "`error` is only known in `on_error`, `error` and `rollback` blocks")
                .label("no failure to read here");
            return None;
        }
        let params = plan::Property::Params;
        match reference.property.as_deref() {
            Some(name) if name == params.name() => {
                Some((reference_value(plan::ERROR_SLOT, params, reference.path.clone()), Ty::Dynamic))
            }
            Some(other) => {
                self.reporter
                    .error(span, format!("`error` has no property `{other}`"))
                    .label("unknown property")
                    .note("use `error:message`, `error:status` or `error.params:name`");
                None
            }
            None => {
                let ty = match reference.path.as_slice() {
                    [] => Ty::Dynamic,
                    [field] if field == "message" => Ty::String,
                    [field] if field == "status" => Ty::Int,
                    _ => {
                        self.reporter
                            .error(span, format!("`error` has no field `{}`", reference.path.join(".")))
                            .label("unknown field")
                            .note("use `error:message`, `error:status` or `error.params:name`");
                        return None;
                    }
                };
                let path = reference.path.clone();
                Some((reference_value(plan::ERROR_SLOT, plan::Property::Error, path), ty))
            }
        }
    }

    /// `{{ resource.property:path }}`: a dependency on the resource (outside error handling).
    fn node_reference(
        &mut self,
        name: &str,
        reference: &TemplateRef,
        span: &Span,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        let scope = ctx.scope;
        let Some(node) = scope.nodes.get(name) else {
            self.unknown_resource(name, span, scope);
            return None;
        };
        if ctx.mode != Mode::Error {
            ctx.refs.entry(node.index).or_insert_with(|| span.clone());
        }
        let slot = node.index + 1;
        let property = self.node_property(name, reference.property.as_deref(), span)?;
        if ctx.mode == Mode::Rollback(node.index)
            && matches!(property, plan::Property::Response | plan::Property::Header)
        {
            ctx.reads_own_response = true;
        }
        if matches!(property, plan::Property::Header | plan::Property::Params) {
            let mut key = self.header_name(reference, span)?;
            if property == plan::Property::Params {
                key = reference.path.join(".");
            }
            return Some((reference_value(slot, property, vec![key]), Ty::String));
        }
        let root = self.node_root(name, node, property, reference, span)?;
        self.typed_reference(slot, property, &root, &reference.path, span, ctx)
    }

    fn node_property(&mut self, name: &str, property: Option<&str>, span: &Span) -> Option<plan::Property> {
        let Some(other) = property else { return Some(plan::Property::Response) };
        let property = plan::Property::from_name(other);
        if property.is_none() {
            self.reporter
                .error(span, format!("resource `{name}` has no property `{other}`"))
                .label("unknown property")
                .suggest(
                    other,
                    plan::Property::ALL.map(plan::Property::name),
                    Some(
                        "resources have `request`, `response` (the default), `header`, `params` and `error`"
                            .into(),
                    ),
                );
        }
        property
    }

    /// The type a resource's request, response or error is read from.
    fn node_root(
        &mut self,
        name: &str,
        node: &NodeInfo,
        property: plan::Property,
        reference: &TemplateRef,
        span: &Span,
    ) -> Option<Ty> {
        let root = match (&node.kind, property) {
            (NodeKind::Unresolved, _) => return None,
            (_, plan::Property::Error) => node.error_schema.clone().map(Ty::Message).unwrap_or(Ty::Dynamic),
            (NodeKind::Call(method), plan::Property::Request) => Ty::Message(method.input.clone()),
            (NodeKind::Call(method), _) => Ty::Message(method.output.clone()),
            (NodeKind::Value, plan::Property::Response) => {
                self.value_types.get(&node.index).cloned().unwrap_or(Ty::Dynamic)
            }
            (NodeKind::Value | NodeKind::Empty, _) if property != plan::Property::Response => {
                self.reporter
                    .error(span, format!("resource `{name}` makes no call; it has no `{}`", property.name()))
                    .label("nothing to reference");
                return None;
            }
            (_, _) => {
                if !reference.path.is_empty() {
                    self.reporter
                        .error(span, format!("resource `{name}` makes no call; it holds no fields"))
                        .label("nothing to reference");
                    return None;
                }
                Ty::Dynamic
            }
        };
        Some(root)
    }

    /// A reference's value and type; inside `repeated`, paths below the source read the element.
    fn typed_reference(
        &mut self,
        slot: u32,
        property: plan::Property,
        root: &Ty,
        path: &[String],
        span: &Span,
        ctx: &mut Ctx,
    ) -> Option<(plan::Value, Ty)> {
        if let Some(Item { source, element }) = &ctx.item {
            let below_source = source.slot == slot
                && source.property() == property
                && path.len() > source.path.len()
                && path.starts_with(&source.path);
            if below_source {
                let rest = &path[source.path.len()..];
                let ty = self.path_type(&Ty::Message(element.clone()), rest, span)?;
                return Some((reference_value(plan::ITEM_SLOT, property, rest.to_vec()), ty));
            }
        }
        let ty = self.path_type(root, path, span)?;
        Some((reference_value(slot, property, path.to_vec()), ty))
    }

    fn header_name(&mut self, reference: &TemplateRef, span: &Span) -> Option<String> {
        match reference.path.as_slice() {
            [name] => Some(name.to_ascii_lowercase()),
            _ => {
                self.reporter
                    .error(span, "a header or param reference names exactly one key")
                    .label("expected one name after `:`")
                    .note("e.g. `{{ input.header:Authorization }}`");
                None
            }
        }
    }

    fn path_type(&mut self, root: &Ty, path: &[String], span: &Span) -> Option<Ty> {
        let mut ty = root.clone();
        for name in path {
            let message: MessageDescriptor = match &ty {
                Ty::Dynamic => return Some(Ty::Dynamic),
                Ty::Message(message) => message.clone(),
                other => {
                    self.reporter
                        .error(
                            span,
                            format!("`{name}` is read from {}, which has no fields", other.describe()),
                        )
                        .label("path goes past a scalar or list");
                    return None;
                }
            };
            let Some(field) = message.get_field_by_name(name) else {
                let names: Vec<String> = message.fields().map(|f| f.name().to_string()).collect();
                let listed = format!("its fields: {}", names.join(", "));
                self.reporter
                    .error(span, format!("message `{}` has no field `{name}`", message.full_name()))
                    .label("unknown field in reference")
                    .suggest(name, names.iter().map(String::as_str), Some(listed));
                return None;
            };
            ty = Ty::of_field(&field);
        }
        Some(ty)
    }
}

fn reference_value(slot: u32, property: plan::Property, path: Vec<String>) -> plan::Value {
    plan::Value {
        kind: Some(plan::ValueKind::Reference(plan::Reference {
            slot,
            property: property as i32,
            path,
            absent: None,
        })),
    }
}
