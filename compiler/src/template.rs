//! Templates and expressions inside string values.
//!
//! A string value is text with `{{ expr }}` parts; an `if` condition is one expression in which
//! `{{ expr }}` may also appear. An expression is a reference (`resource.property:path`), a
//! function call (`sprintf('%s!', input:name)`), a literal (`'text'`, `42`, `true`), or these
//! combined with `== != < <= > >= && || ! + - * / %` and parentheses.

use std::ops::Range;

use semaphore_plan::{BinaryOp, UnaryOp};

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    /// Byte range within the string the expression was read from.
    pub range: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Reference(TemplateRef),
    Call { name: String, args: Vec<Expr>, path: Vec<String> },
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRef {
    pub resource: String,
    pub property: Option<String>,
    /// Empty for the whole message (`:.` or `:` or no path at all).
    pub path: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub struct TemplateError {
    pub message: String,
    pub range: Range<usize>,
}

/// Splits a string into text and `{{ expr }}` parts. A string without `{{` is one text part.
pub fn parse(input: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = 0;
    while let Some(open) = input[rest..].find("{{").map(|i| i + rest) {
        if open > rest {
            parts.push(Part::Text(input[rest..open].to_string()));
        }
        let Some(close) = input[open..].find("}}").map(|i| i + open) else {
            return Err(TemplateError { message: "unclosed `{{`".into(), range: open..input.len() });
        };
        let mut parser = Parser { input, pos: open + 2, end: close };
        let expr = parser.expression()?;
        parser.finish()?;
        parts.push(Part::Expr(expr));
        rest = close + 2;
    }
    if rest < input.len() {
        parts.push(Part::Text(input[rest..].to_string()));
    }
    Ok(parts)
}

/// Parses a whole condition, e.g. `{{ input:kind }} == 'INSERT' && !{{ user:blocked }}`.
pub fn parse_condition(input: &str) -> Result<Expr, TemplateError> {
    let mut parser = Parser { input, pos: 0, end: input.len() };
    let expr = parser.expression()?;
    parser.finish()?;
    Ok(expr)
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn error<T>(&self, message: impl Into<String>, range: Range<usize>) -> Result<T, TemplateError> {
        Err(TemplateError { message: message.into(), range })
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..self.end]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.end - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn finish(&mut self) -> Result<(), TemplateError> {
        self.skip_space();
        if self.pos < self.end {
            let found = self.rest().chars().next().unwrap_or(' ');
            return self.error(format!("unexpected `{found}`"), self.pos..self.end);
        }
        Ok(())
    }

    fn expression(&mut self) -> Result<Expr, TemplateError> {
        self.binary(0)
    }

    /// Precedence climbing over the binary operators, loosest first.
    fn binary(&mut self, level: usize) -> Result<Expr, TemplateError> {
        // Within a level, an operator comes before those its symbol starts with (`<=`, `<`).
        const LEVELS: &[&[BinaryOp]] = &[
            &[BinaryOp::Or],
            &[BinaryOp::And],
            &[BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Le, BinaryOp::Ge, BinaryOp::Lt, BinaryOp::Gt],
            &[BinaryOp::Add, BinaryOp::Sub],
            &[BinaryOp::Mul, BinaryOp::Div, BinaryOp::Rem],
        ];
        let Some(operators) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        loop {
            self.skip_space();
            // `}}` closes a template inside a condition; it is not two operators.
            let Some(&op) = operators.iter().find(|op| self.rest().starts_with(op.symbol())) else {
                break;
            };
            self.pos += op.symbol().len();
            let right = self.binary(level + 1)?;
            let range = left.range.start..right.range.end;
            left = Expr { kind: ExprKind::Binary(op, Box::new(left), Box::new(right)), range };
            // Comparisons do not chain: `a == b == c` is a mistake.
            if level == 2 {
                break;
            }
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, TemplateError> {
        self.skip_space();
        let start = self.pos;
        for op in [UnaryOp::Not, UnaryOp::Negate] {
            if self.rest().starts_with(op.symbol()) && !self.rest().starts_with(BinaryOp::Ne.symbol()) {
                self.pos += op.symbol().len();
                let operand = self.unary()?;
                let range = start..operand.range.end;
                return Ok(Expr { kind: ExprKind::Unary(op, Box::new(operand)), range });
            }
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, TemplateError> {
        self.skip_space();
        let start = self.pos;
        let rest = self.rest();
        let Some(first) = rest.chars().next() else {
            return self.error("expected a value", start..self.end);
        };
        if rest.starts_with("{{") {
            return self.braced(start);
        }
        if first == '(' {
            return self.parenthesized(start);
        }
        if first == '\'' || first == '"' {
            return self.string(start, first);
        }
        if first.is_ascii_digit() {
            return self.number(start);
        }
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return self.error(format!("unexpected `{first}`"), start..start + first.len_utf8());
        }
        self.named(start)
    }

    /// `{{ expr }}` inside a condition.
    fn braced(&mut self, start: usize) -> Result<Expr, TemplateError> {
        self.pos += 2;
        let inner = self.expression()?;
        if !self.eat("}}") {
            return self.error("unclosed `{{`", start..self.end);
        }
        Ok(Expr { kind: inner.kind, range: start..self.pos })
    }

    fn parenthesized(&mut self, start: usize) -> Result<Expr, TemplateError> {
        self.pos += 1;
        let inner = self.expression()?;
        if !self.eat(")") {
            return self.error("expected `)`", start..self.pos);
        }
        Ok(Expr { kind: inner.kind, range: start..self.pos })
    }

    /// `'text'` or `"text"`.
    fn string(&mut self, start: usize, quote: char) -> Result<Expr, TemplateError> {
        let body = &self.rest()[1..];
        let Some(close) = body.find(quote) else {
            return self.error("unclosed string", start..self.end);
        };
        let text = body[..close].to_string();
        self.pos += close + 2;
        Ok(Expr { kind: ExprKind::String(text), range: start..self.pos })
    }

    /// `42`, `1_000` or `2.5`.
    fn number(&mut self, start: usize) -> Result<Expr, TemplateError> {
        let rest = self.rest();
        let len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(rest.len());
        let text = rest[..len].replace('_', "");
        self.pos += len;
        let range = start..self.pos;
        let kind = if text.contains('.') {
            match text.parse() {
                Ok(f) => ExprKind::Float(f),
                Err(_) => return self.error(format!("`{text}` is not a number"), range),
            }
        } else {
            match text.parse() {
                Ok(i) => ExprKind::Int(i),
                Err(_) => return self.error(format!("`{text}` is not a number"), range),
            }
        };
        Ok(Expr { kind, range })
    }

    /// What starts with a name: a function call, `true`, `false`, `null` or a reference.
    fn named(&mut self, start: usize) -> Result<Expr, TemplateError> {
        let rest = self.rest();
        let name_len =
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
        let name = rest[..name_len].to_string();
        self.pos += name_len;
        if self.rest().starts_with('(') {
            return self.call(start, name);
        }
        let kind = match name.as_str() {
            "true" => ExprKind::Bool(true),
            "false" => ExprKind::Bool(false),
            "null" => ExprKind::Null,
            _ => return self.reference(start, name),
        };
        Ok(Expr { kind, range: start..self.pos })
    }

    /// `name(args)`, then an optional `:path` into the result.
    fn call(&mut self, start: usize, name: String) -> Result<Expr, TemplateError> {
        self.pos += 1;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.expression()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return self.error("expected `,` or `)` in the arguments", start..self.pos);
                }
            }
        }
        let path = if self.rest().starts_with(':') { self.path()? } else { Vec::new() };
        Ok(Expr { kind: ExprKind::Call { name, args, path }, range: start..self.pos })
    }

    /// `resource`, then an optional `.property` and `:path`.
    fn reference(&mut self, start: usize, resource: String) -> Result<Expr, TemplateError> {
        let property = if self.rest().starts_with('.') {
            self.pos += 1;
            let rest = self.rest();
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if len == 0 {
                return self.error("expected a property after `.`", start..self.pos);
            }
            self.pos += len;
            Some(rest[..len].to_string())
        } else {
            None
        };
        let path = if self.rest().starts_with(':') { self.path()? } else { Vec::new() };
        Ok(Expr {
            kind: ExprKind::Reference(TemplateRef { resource, property, path }),
            range: start..self.pos,
        })
    }

    /// `:a.b.c`, `:.` or `:` (the whole message). Header names may hold `-`.
    fn path(&mut self) -> Result<Vec<String>, TemplateError> {
        let start = self.pos;
        self.pos += 1;
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(rest.len());
        let text = &rest[..len];
        self.pos += len;
        if text.is_empty() || text == "." {
            return Ok(Vec::new());
        }
        let names: Vec<String> = text.split('.').map(str::to_string).collect();
        if names.iter().any(String::is_empty) {
            return self.error(format!("`{text}` is not a field path"), start..self.pos);
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(expr: &Expr) -> &TemplateRef {
        match &expr.kind {
            ExprKind::Reference(r) => r,
            other => panic!("not a reference: {other:?}"),
        }
    }

    fn single(text: &str) -> Expr {
        match parse(text).unwrap().as_slice() {
            [Part::Expr(e)] => e.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_reference() {
        let e = single("{{ input:id }}");
        assert_eq!(
            reference(&e),
            &TemplateRef { resource: "input".into(), property: None, path: vec!["id".into()] }
        );
        assert_eq!(e.range, 3..11);
    }

    #[test]
    fn property_and_nested_path() {
        let e = single("{{ call.request:address.street }}");
        let r = reference(&e);
        assert_eq!((r.resource.as_str(), r.property.as_deref()), ("call", Some("request")));
        assert_eq!(r.path, vec!["address", "street"]);
        assert_eq!(reference(&single("{{ input.header:X-Tenant }}")).path, vec!["X-Tenant"]);
    }

    #[test]
    fn interpolation() {
        let parts = parse("Bearer {{ input.header:Token }}!").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], Part::Text("Bearer ".into()));
        assert_eq!(parts[2], Part::Text("!".into()));
    }

    #[test]
    fn whole_message() {
        for text in ["{{ user:. }}", "{{ user: }}", "{{ user }}"] {
            assert!(reference(&single(text)).path.is_empty(), "{text}");
        }
    }

    #[test]
    fn functions() {
        let e = single("{{ sprintf('Hey %s! %d', input:name, input:age) }}");
        let ExprKind::Call { name, args, path } = &e.kind else { panic!() };
        assert_eq!(name, "sprintf");
        assert_eq!(args.len(), 3);
        assert_eq!(args[0].kind, ExprKind::String("Hey %s! %d".into()));
        assert!(path.is_empty());
        let e = single("{{ jwt(input.header:Authorization):sub }}");
        let ExprKind::Call { path, .. } = &e.kind else { panic!() };
        assert_eq!(path, &vec!["sub".to_string()]);
        assert!(matches!(single("{{ now() }}").kind, ExprKind::Call { ref args, .. } if args.is_empty()));
    }

    #[test]
    fn conditions() {
        let e = parse_condition("{{ input:kind }} == 'INSERT'").unwrap();
        let ExprKind::Binary(BinaryOp::Eq, left, right) = &e.kind else { panic!("{e:?}") };
        assert_eq!(reference(left).path, vec!["kind"]);
        assert_eq!(right.kind, ExprKind::String("INSERT".into()));

        let e = parse_condition("!{{ a:x }} && ({{ b:n }} + 1) * 2 >= 10 || c:flag").unwrap();
        let ExprKind::Binary(BinaryOp::Or, left, _) = &e.kind else { panic!("{e:?}") };
        let ExprKind::Binary(BinaryOp::And, not, cmp) = &left.kind else { panic!("{left:?}") };
        assert!(matches!(not.kind, ExprKind::Unary(UnaryOp::Not, _)));
        assert!(matches!(cmp.kind, ExprKind::Binary(BinaryOp::Ge, _, _)));

        assert!(matches!(
            parse_condition("{{ insert:upgrade }} == true").unwrap().kind,
            ExprKind::Binary(BinaryOp::Eq, _, _)
        ));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("{{ input:id").unwrap_err().message, "unclosed `{{`");
        assert!(parse("{{ :id }}").is_err());
        assert!(parse("{{ input:a..b }}").is_err());
        assert!(parse("{{ f(a b) }}").is_err());
        assert!(parse_condition("a:x == ").is_err());
        assert!(parse_condition("'open").is_err());
        assert_eq!(parse("plain").unwrap(), vec![Part::Text("plain".into())]);
    }
}
