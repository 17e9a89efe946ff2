//! Source files and the errors found in them, rendered like rustc's.

use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

/// A place in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub file: usize,
    pub range: Range<usize>,
}

#[derive(Default)]
pub struct Reporter {
    pub files: SimpleFiles<String, String>,
    diagnostics: Vec<Diagnostic<usize>>,
    errors: usize,
}

impl Reporter {
    pub fn add_file(&mut self, name: String, source: String) -> usize {
        self.files.add(name, source)
    }

    pub fn source(&self, file: usize) -> &str {
        self.files.get(file).map(|f| f.source().as_str()).unwrap_or("")
    }

    pub fn error(&mut self, span: &Span, message: impl Into<String>) -> Report<'_> {
        self.errors += 1;
        self.push(Diagnostic::error(), span, message.into())
    }

    pub fn warning(&mut self, span: &Span, message: impl Into<String>) -> Report<'_> {
        self.push(Diagnostic::warning(), span, message.into())
    }

    /// An error that belongs to no place in the configuration (a proto that does not compile).
    pub fn error_without_span(&mut self, message: impl Into<String>) {
        self.errors += 1;
        self.diagnostics.push(Diagnostic::error().with_message(message.into()));
    }

    fn push(&mut self, base: Diagnostic<usize>, span: &Span, message: String) -> Report<'_> {
        self.diagnostics.push(
            base.with_message(message).with_labels(vec![Label::primary(span.file, span.range.clone())]),
        );
        let last = self.diagnostics.len() - 1;
        Report { diagnostic: &mut self.diagnostics[last] }
    }

    pub fn errors(&self) -> usize {
        self.errors
    }

    pub fn render(&self) -> String {
        let config = term::Config::default();
        let mut out = String::new();
        for diagnostic in &self.diagnostics {
            match term::emit_into_string(&config, &self.files, diagnostic) {
                Ok(text) => out.push_str(&text),
                Err(_) => {
                    out.push_str(&diagnostic.message);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Lets a caller add a label text or a hint to the diagnostic just reported.
pub struct Report<'a> {
    diagnostic: &'a mut Diagnostic<usize>,
}

impl Report<'_> {
    pub fn label(self, text: impl Into<String>) -> Self {
        if let Some(label) = self.diagnostic.labels.first_mut() {
            label.message = text.into();
        }
        self
    }

    /// Points at a second place, e.g. the first definition of a duplicate.
    pub fn secondary(self, span: &Span, text: impl Into<String>) -> Self {
        self.diagnostic
            .labels
            .push(Label::secondary(span.file, span.range.clone()).with_message(text.into()));
        self
    }

    pub fn note(self, text: impl Into<String>) -> Self {
        self.diagnostic.notes.push(text.into());
        self
    }

    /// Adds "did you mean `x`?" when a candidate is close to `name`, else `otherwise`.
    pub fn suggest<'c>(
        self,
        name: &str,
        candidates: impl IntoIterator<Item = &'c str>,
        otherwise: Option<String>,
    ) -> Self {
        match did_you_mean(name, candidates).or(otherwise) {
            Some(note) => self.note(note),
            None => self,
        }
    }
}

/// The closest candidate to `name`, for "did you mean" hints.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| *distance <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}
