//! GraphQL executable documents (operations and fragments) from their text, as the October 2021
//! specification's grammar has them. Written here rather than taken from a crate: the parsers
//! on crates.io grow the filter's module by over 100 KB for a grammar this size.
//!
//! Nesting (selection sets, lists, objects) is bounded, so that no document can exhaust the
//! stack.

use std::fmt;

use crate::engine::codec;

/// Deeper nesting than this is refused while parsing; the schema's own depth limit is checked
/// later, on the operation that runs.
const MAX_NESTING: usize = 64;

/// Where something is in the document, 1-based, as GraphQL errors report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub pos: Pos,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Syntax Error: {}", self.message)
    }
}

#[derive(Debug, Default)]
pub struct Document {
    pub operations: Vec<OperationDef>,
    pub fragments: Vec<Fragment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Debug)]
pub struct OperationDef {
    pub kind: OperationKind,
    pub name: Option<String>,
    pub variables: Vec<VariableDef>,
    pub selection: Vec<Selection>,
    pub pos: Pos,
}

#[derive(Debug)]
pub struct VariableDef {
    pub name: String,
    /// The type as written, e.g. `[String!]!`, for messages.
    pub type_text: String,
    pub non_null: bool,
    pub default: Option<Value>,
    pub pos: Pos,
}

#[derive(Debug)]
pub struct Fragment {
    pub name: String,
    pub type_condition: String,
    pub directives: Vec<Directive>,
    pub selection: Vec<Selection>,
}

#[derive(Debug)]
pub enum Selection {
    Field(Field),
    Spread { name: String, directives: Vec<Directive>, pos: Pos },
    Inline { type_condition: Option<String>, directives: Vec<Directive>, selection: Vec<Selection>, pos: Pos },
}

#[derive(Debug)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub arguments: Vec<(String, Value)>,
    pub directives: Vec<Directive>,
    pub selection: Vec<Selection>,
    pub pos: Pos,
}

impl Field {
    /// The key the field's value has in the response.
    pub fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug)]
pub struct Directive {
    pub name: String,
    pub arguments: Vec<(String, Value)>,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Variable(String),
    /// As written, for the field it lands in to read as its type says.
    Int(String),
    Float(String),
    String(String),
    Boolean(bool),
    Null,
    Enum(String),
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Punct(char),
    Spread,
    Name(String),
    Int(String),
    Float(String),
    String(String),
    End,
}

struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    line: u32,
    line_start: usize,
}

impl<'a> Lexer<'a> {
    fn pos(&self) -> Pos {
        Pos { line: self.line, column: (self.at.saturating_sub(self.line_start) + 1) as u32 }
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError { message: message.into(), pos: self.pos() })
    }

    /// The text from `start` to where the lexer is.
    fn since(&self, start: usize) -> String {
        String::from_utf8_lossy(self.text.get(start..self.at).unwrap_or_default()).into_owned()
    }

    fn peek_byte(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.at + ahead).copied()
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.at;
    }

    /// Whitespace, commas and comments are insignificant.
    fn skip_ignored(&mut self) {
        while let Some(byte) = self.peek_byte(0) {
            match byte {
                b' ' | b'\t' | b',' => self.at += 1,
                b'\n' => {
                    self.at += 1;
                    self.newline();
                }
                b'\r' => {
                    self.at += 1;
                    if self.peek_byte(0) == Some(b'\n') {
                        self.at += 1;
                    }
                    self.newline();
                }
                // A byte order mark.
                0xEF if self.text.get(self.at..self.at + 3) == Some(&[0xEF, 0xBB, 0xBF]) => self.at += 3,
                b'#' => {
                    while !matches!(self.peek_byte(0), None | Some(b'\n' | b'\r')) {
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn next(&mut self) -> Result<(Token, Pos), SyntaxError> {
        self.skip_ignored();
        let pos = self.pos();
        let Some(byte) = self.peek_byte(0) else { return Ok((Token::End, pos)) };
        let token = match byte {
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|' | b'}' => {
                self.at += 1;
                Token::Punct(byte as char)
            }
            b'.' => {
                if self.text.get(self.at..self.at + 3) != Some(b"...") {
                    return self.error("Unexpected \".\", did you mean \"...\"?");
                }
                self.at += 3;
                Token::Spread
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let start = self.at;
                while matches!(self.peek_byte(0), Some(b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9')) {
                    self.at += 1;
                }
                Token::Name(self.since(start))
            }
            b'-' | b'0'..=b'9' => self.number()?,
            b'"' if self.text.get(self.at..self.at + 3) == Some(b"\"\"\"") => self.block_string()?,
            b'"' => self.string()?,
            other => {
                let shown = std::str::from_utf8(self.text.get(self.at..).unwrap_or_default())
                    .ok()
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or(other as char);
                return self.error(format!("Unexpected character: {shown:?}."));
            }
        };
        Ok((token, pos))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek_byte(0), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Token, SyntaxError> {
        let start = self.at;
        if self.peek_byte(0) == Some(b'-') {
            self.at += 1;
        }
        if self.peek_byte(0) == Some(b'0') && matches!(self.peek_byte(1), Some(b'0'..=b'9')) {
            self.at += 1;
            return self.error("Invalid number, unexpected digit after 0.");
        }
        if self.digits() == 0 {
            return self.error("Invalid number, expected digit.");
        }
        let mut float = false;
        if self.peek_byte(0) == Some(b'.') {
            float = true;
            self.at += 1;
            if self.digits() == 0 {
                return self.error("Invalid number, expected digit.");
            }
        }
        if matches!(self.peek_byte(0), Some(b'e' | b'E')) {
            float = true;
            self.at += 1;
            if matches!(self.peek_byte(0), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.error("Invalid number, expected digit.");
            }
        }
        if matches!(self.peek_byte(0), Some(b'.' | b'_' | b'a'..=b'z' | b'A'..=b'Z')) {
            return self.error("Invalid number, expected digit.");
        }
        let text = self.since(start);
        Ok(if float { Token::Float(text) } else { Token::Int(text) })
    }

    fn string(&mut self) -> Result<Token, SyntaxError> {
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(byte) = self.peek_byte(0) else { return self.error("Unterminated string.") };
            match byte {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\n' | b'\r' => return self.error("Unterminated string."),
                b'\\' => {
                    let Some(escaped) = self.peek_byte(1) else { return self.error("Unterminated string.") };
                    // An escape it does not know is reported where it starts, as graphql-js does.
                    let ch = match (escaped, codec::escaped_char(escaped)) {
                        (b'u', _) => {
                            self.at += 2;
                            self.unicode_escape()?
                        }
                        (_, Some(ch)) => {
                            self.at += 2;
                            ch
                        }
                        (other, None) => {
                            return self.error(format!(
                                "Invalid character escape sequence: \"\\{}\".",
                                other as char
                            ))
                        }
                    };
                    let mut buffer = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
                }
                _ => {
                    out.push(byte);
                    self.at += 1;
                }
            }
        }
        match String::from_utf8(out) {
            Ok(text) => Ok(Token::String(text)),
            Err(_) => self.error("Invalid UTF-8 in string."),
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self.text.get(self.at..self.at + 4).and_then(|d| std::str::from_utf8(d).ok());
        let Some(value) = digits.and_then(|d| u32::from_str_radix(d, 16).ok()) else {
            return self.error("Invalid Unicode escape sequence.");
        };
        self.at += 4;
        Ok(value)
    }

    /// `\uXXXX`, a surrogate pair of them, or `\u{X...}`.
    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        if self.peek_byte(0) == Some(b'{') {
            let rest = self.text.get(self.at..).unwrap_or_default();
            let end = rest.iter().position(|b| *b == b'}').map(|i| self.at + i);
            let code = end
                .and_then(|end| std::str::from_utf8(self.text.get(self.at + 1..end)?).ok())
                .and_then(|d| u32::from_str_radix(d, 16).ok())
                .and_then(char::from_u32);
            return match (code, end) {
                (Some(ch), Some(end)) => {
                    self.at = end + 1;
                    Ok(ch)
                }
                _ => self.error("Invalid Unicode escape sequence."),
            };
        }
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.text.get(self.at..self.at + 2) == Some(b"\\u") {
            self.at += 2;
            let second = self.hex4()?;
            let combined = 0x10000 + ((first - 0xD800) << 10) + (second.wrapping_sub(0xDC00) & 0x3FF);
            if let Some(ch) = char::from_u32(combined).filter(|_| (0xDC00..0xE000).contains(&second)) {
                return Ok(ch);
            }
        }
        char::from_u32(first).map_or_else(|| self.error("Invalid Unicode escape sequence."), Ok)
    }

    fn block_string(&mut self) -> Result<Token, SyntaxError> {
        self.at += 3;
        let mut raw: Vec<u8> = Vec::new();
        loop {
            match self.text.get(self.at..) {
                None | Some([]) => return self.error("Unterminated string."),
                Some([b'"', b'"', b'"', ..]) => {
                    self.at += 3;
                    break;
                }
                Some([b'\\', b'"', b'"', b'"', ..]) => {
                    raw.extend_from_slice(b"\"\"\"");
                    self.at += 4;
                }
                Some([byte, ..]) => {
                    let byte = *byte;
                    raw.push(byte);
                    self.at += 1;
                    if byte == b'\n' {
                        self.newline();
                    }
                }
            }
        }
        let Ok(raw) = String::from_utf8(raw) else { return self.error("Invalid UTF-8 in string.") };
        Ok(Token::String(block_string_value(&raw)))
    }
}

/// The specification's BlockStringValue: common indentation and blank first and last lines
/// removed.
fn block_string_value(raw: &str) -> String {
    let lines: Vec<&str> = raw.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let indent = lines
        .iter()
        .skip(1)
        .filter_map(|line| {
            let trimmed = line.trim_start_matches([' ', '\t']);
            (!trimmed.is_empty()).then_some(line.len() - trimmed.len())
        })
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| if i == 0 { line } else { line.get(indent..).unwrap_or("") })
        .collect();
    while out.first().is_some_and(|l| l.trim_matches([' ', '\t']).is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.trim_matches([' ', '\t']).is_empty()) {
        out.pop();
    }
    out.join("\n")
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    token: Token,
    pos: Pos,
    nesting: usize,
}

/// The document in `text`.
// Apart from its one caller: see "Small functions" in the crate's documentation.
#[inline(never)]
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    let mut lexer = Lexer { text: text.as_bytes(), at: 0, line: 1, line_start: 0 };
    let (token, pos) = lexer.next()?;
    let mut parser = Parser { lexer, token, pos, nesting: 0 };
    let mut document = Document::default();
    while parser.token != Token::End {
        match &parser.token {
            Token::Punct('{') => document.operations.push(parser.operation(None)?),
            Token::Name(name) if name == "query" => {
                document.operations.push(parser.operation(Some(OperationKind::Query))?)
            }
            Token::Name(name) if name == "mutation" => {
                document.operations.push(parser.operation(Some(OperationKind::Mutation))?)
            }
            Token::Name(name) if name == "subscription" => {
                document.operations.push(parser.operation(Some(OperationKind::Subscription))?)
            }
            Token::Name(name) if name == "fragment" => document.fragments.push(parser.fragment()?),
            _ => return parser.unexpected(),
        }
    }
    Ok(document)
}

impl Parser<'_> {
    fn advance(&mut self) -> Result<Token, SyntaxError> {
        let (token, pos) = self.lexer.next()?;
        self.pos = pos;
        Ok(std::mem::replace(&mut self.token, token))
    }

    fn unexpected<T>(&self) -> Result<T, SyntaxError> {
        Err(SyntaxError { message: format!("Unexpected {}.", describe(&self.token)), pos: self.pos })
    }

    fn expect(&mut self, punct: char) -> Result<(), SyntaxError> {
        if self.token != Token::Punct(punct) {
            return Err(SyntaxError {
                message: format!("Expected \"{punct}\", found {}.", describe(&self.token)),
                pos: self.pos,
            });
        }
        self.advance()?;
        Ok(())
    }

    fn skip(&mut self, punct: char) -> Result<bool, SyntaxError> {
        if self.token == Token::Punct(punct) {
            self.advance()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn name(&mut self) -> Result<String, SyntaxError> {
        match &self.token {
            Token::Name(_) => match self.advance()? {
                Token::Name(name) => Ok(name),
                _ => self.unexpected(),
            },
            other => Err(SyntaxError {
                message: format!("Expected Name, found {}.", describe(other)),
                pos: self.pos,
            }),
        }
    }

    fn nest(&mut self) -> Result<(), SyntaxError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(SyntaxError {
                message: format!("nested deeper than {MAX_NESTING} levels"),
                pos: self.pos,
            });
        }
        Ok(())
    }

    fn operation(&mut self, kind: Option<OperationKind>) -> Result<OperationDef, SyntaxError> {
        let pos = self.pos;
        let Some(kind) = kind else {
            let selection = self.selection_set()?;
            return Ok(OperationDef {
                kind: OperationKind::Query,
                name: None,
                variables: Vec::new(),
                selection,
                pos,
            });
        };
        self.advance()?;
        let name = if matches!(self.token, Token::Name(_)) { Some(self.name()?) } else { None };
        let mut variables = Vec::new();
        if self.skip('(')? {
            while !self.skip(')')? {
                variables.push(self.variable_definition()?);
            }
        }
        // No directive of this schema applies to an operation.
        self.directives()?;
        let selection = self.selection_set()?;
        Ok(OperationDef { kind, name, variables, selection, pos })
    }

    fn variable_definition(&mut self) -> Result<VariableDef, SyntaxError> {
        let pos = self.pos;
        self.expect('$')?;
        let name = self.name()?;
        self.expect(':')?;
        let type_text = self.type_text(0)?;
        let non_null = type_text.ends_with('!');
        let default = if self.skip('=')? { Some(self.value(true)?) } else { None };
        self.directives()?;
        Ok(VariableDef { name, type_text, non_null, default, pos })
    }

    fn type_text(&mut self, depth: usize) -> Result<String, SyntaxError> {
        if depth > MAX_NESTING {
            return Err(SyntaxError { message: "type nested too deeply".into(), pos: self.pos });
        }
        let mut text = if self.skip('[')? {
            let inner = self.type_text(depth + 1)?;
            self.expect(']')?;
            format!("[{inner}]")
        } else {
            self.name()?
        };
        if self.skip('!')? {
            text.push('!');
        }
        Ok(text)
    }

    fn fragment(&mut self) -> Result<Fragment, SyntaxError> {
        self.advance()?;
        let name = self.name()?;
        if name == "on" {
            return Err(SyntaxError { message: "Unexpected Name \"on\".".into(), pos: self.pos });
        }
        match self.name()? {
            on if on == "on" => {}
            _ => return Err(SyntaxError { message: "Expected \"on\".".into(), pos: self.pos }),
        }
        let type_condition = self.name()?;
        let directives = self.directives()?;
        let selection = self.selection_set()?;
        Ok(Fragment { name, type_condition, directives, selection })
    }

    fn selection_set(&mut self) -> Result<Vec<Selection>, SyntaxError> {
        self.nest()?;
        self.expect('{')?;
        let mut selections = Vec::new();
        while !self.skip('}')? {
            selections.push(self.selection()?);
        }
        self.nesting -= 1;
        Ok(selections)
    }

    fn selection(&mut self) -> Result<Selection, SyntaxError> {
        let pos = self.pos;
        if self.token == Token::Spread {
            self.advance()?;
            return match &self.token {
                Token::Name(name) if name != "on" => {
                    let name = self.name()?;
                    let directives = self.directives()?;
                    Ok(Selection::Spread { name, directives, pos })
                }
                _ => {
                    let type_condition = match &self.token {
                        Token::Name(on) if on == "on" => {
                            self.advance()?;
                            Some(self.name()?)
                        }
                        _ => None,
                    };
                    let directives = self.directives()?;
                    let selection = self.selection_set()?;
                    Ok(Selection::Inline { type_condition, directives, selection, pos })
                }
            };
        }
        let first = self.name()?;
        let (alias, name) = if self.skip(':')? { (Some(first), self.name()?) } else { (None, first) };
        let arguments = self.arguments(false)?;
        let directives = self.directives()?;
        let selection = if self.token == Token::Punct('{') { self.selection_set()? } else { Vec::new() };
        Ok(Selection::Field(Field { alias, name, arguments, directives, selection, pos }))
    }

    fn arguments(&mut self, constant: bool) -> Result<Vec<(String, Value)>, SyntaxError> {
        let mut arguments = Vec::new();
        if self.skip('(')? {
            loop {
                let name = self.name()?;
                self.expect(':')?;
                arguments.push((name, self.value(constant)?));
                if self.skip(')')? {
                    break;
                }
            }
        }
        Ok(arguments)
    }

    fn directives(&mut self) -> Result<Vec<Directive>, SyntaxError> {
        let mut directives = Vec::new();
        while self.token == Token::Punct('@') {
            let pos = self.pos;
            self.advance()?;
            let name = self.name()?;
            let arguments = self.arguments(false)?;
            directives.push(Directive { name, arguments, pos });
        }
        Ok(directives)
    }

    fn value(&mut self, constant: bool) -> Result<Value, SyntaxError> {
        let value = match &self.token {
            Token::Punct('$') if !constant => {
                self.advance()?;
                Value::Variable(self.name()?)
            }
            Token::Punct('[') => {
                self.nest()?;
                self.advance()?;
                let mut items = Vec::new();
                while !self.skip(']')? {
                    items.push(self.value(constant)?);
                }
                self.nesting -= 1;
                return Ok(Value::List(items));
            }
            Token::Punct('{') => {
                self.nest()?;
                self.advance()?;
                let mut fields = Vec::new();
                while !self.skip('}')? {
                    let name = self.name()?;
                    self.expect(':')?;
                    fields.push((name, self.value(constant)?));
                }
                self.nesting -= 1;
                return Ok(Value::Object(fields));
            }
            Token::Int(_) | Token::Float(_) | Token::String(_) | Token::Name(_) => match self.advance()? {
                Token::Int(text) => Value::Int(text),
                Token::Float(text) => Value::Float(text),
                Token::String(text) => Value::String(text),
                Token::Name(name) => match name.as_str() {
                    "true" => Value::Boolean(true),
                    "false" => Value::Boolean(false),
                    "null" => Value::Null,
                    _ => Value::Enum(name),
                },
                _ => return self.unexpected(),
            },
            _ => return self.unexpected(),
        };
        Ok(value)
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Punct(c) => format!("\"{c}\""),
        Token::Spread => "\"...\"".into(),
        Token::Name(name) => format!("Name \"{name}\""),
        Token::Int(text) => format!("Int \"{text}\""),
        Token::Float(text) => format!("Float \"{text}\""),
        Token::String(text) => format!("String \"{text}\""),
        Token::End => "<EOF>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_operations_fragments_aliases_variables_and_directives() {
        let document = parse(
            r#"
            # a comment
            query Find($id: String!, $tags: [String!] = ["a", "b"]) @cached {
              first: user(id: $id, limit: 3, ratio: -1.5e3, role: ADMIN, on: true) {
                ...Parts @include(if: $yes)
                ... on User { name }
                ... { id }
              }
            }
            fragment Parts on User { id address { city } }
            { user(id: """
                block
                  text
              """) { id } }
            "#,
        )
        .unwrap();
        assert_eq!(document.operations.len(), 2);
        assert_eq!(document.fragments.len(), 1);
        let operation = &document.operations[0];
        assert_eq!(operation.name.as_deref(), Some("Find"));
        assert_eq!(operation.variables[0].type_text, "String!");
        assert!(operation.variables[0].non_null);
        assert_eq!(
            operation.variables[1].default,
            Some(Value::List(vec![Value::String("a".into()), Value::String("b".into())]))
        );
        let Selection::Field(field) = &operation.selection[0] else { panic!("a field") };
        assert_eq!(field.key(), "first");
        assert_eq!(field.name, "user");
        assert_eq!(field.pos, Pos { line: 4, column: 15 });
        assert_eq!(
            field.arguments,
            vec![
                ("id".into(), Value::Variable("id".into())),
                ("limit".into(), Value::Int("3".into())),
                ("ratio".into(), Value::Float("-1.5e3".into())),
                ("role".into(), Value::Enum("ADMIN".into())),
                ("on".into(), Value::Boolean(true)),
            ]
        );
        assert!(
            matches!(&field.selection[0], Selection::Spread { name, directives, .. } if name == "Parts" && directives.len() == 1)
        );
        assert!(
            matches!(&field.selection[1], Selection::Inline { type_condition: Some(t), .. } if t == "User")
        );
        assert!(matches!(&field.selection[2], Selection::Inline { type_condition: None, .. }));
        let Selection::Field(block) = &document.operations[1].selection[0] else { panic!("a field") };
        assert_eq!(block.arguments[0].1, Value::String("block\n  text".into()));
    }

    #[test]
    fn reads_string_escapes() {
        let document = parse(r#"{ f(a: "tab\tq\"\u00e9\uD83D\uDE00\u{1F600}") }"#).unwrap();
        let Selection::Field(field) = &document.operations[0].selection[0] else { panic!("a field") };
        assert_eq!(field.arguments[0].1, Value::String("tab\tq\"é😀😀".into()));
    }

    #[test]
    fn refuses_bad_documents_with_where() {
        let cases = [
            ("{ user(id: ) }", "Unexpected \")\".", Pos { line: 1, column: 12 }),
            ("{ user", "Expected Name, found <EOF>.", Pos { line: 1, column: 7 }),
            ("query { a }\n  }", "Unexpected \"}\".", Pos { line: 2, column: 3 }),
            ("{ a(x: \"open) }", "Unterminated string.", Pos { line: 1, column: 16 }),
            (r#"{ a(x: "\q") }"#, r#"Invalid character escape sequence: "\q"."#, Pos { line: 1, column: 9 }),
            ("{ a(x: 01) }", "Invalid number, unexpected digit after 0.", Pos { line: 1, column: 9 }),
            ("{ a(x: 1.) }", "Invalid number, expected digit.", Pos { line: 1, column: 10 }),
            ("{ a % }", "Unexpected character: '%'.", Pos { line: 1, column: 5 }),
            ("fragment on on T { a }", "Unexpected Name \"on\".", Pos { line: 1, column: 13 }),
        ];
        for (text, message, pos) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!((error.message.as_str(), error.pos), (message, pos), "{text}");
        }
    }

    #[test]
    fn an_unterminated_block_string_is_reported_where_the_document_ends() {
        let error = parse("{ a(x: \"\"\"one\ntwo) }").unwrap_err();
        assert_eq!((error.message.as_str(), error.pos), ("Unterminated string.", Pos { line: 2, column: 7 }));
    }

    #[test]
    fn refuses_nesting_past_its_limit_without_exhausting_the_stack() {
        let deep = format!("{}{}", "{ a ".repeat(10_000), "}".repeat(10_000));
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let list = format!("{{ a(x: {}) }}", "[".repeat(10_000));
        assert!(parse(&list).unwrap_err().message.contains("nested deeper"));
    }
}
