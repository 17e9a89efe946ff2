//! Compiling a configuration's .proto files with protox, so that the protos Semaphore and Maestro
//! accepted compile here too, and reporting their errors like the flows' own.
//!
//! Semaphore's parser was more lenient than protoc in three ways its users relied on, and each is
//! accepted here with a warning that says how to write it portably:
//! - an option family used without importing its definition (Maestro's examples did);
//! - an option name that protobuf scoping resolves into the file's own package
//!   (`package com.semaphore;` then `(semaphore.api.service)`), read as its fully qualified name;
//! - a message or enum defined identically in two files; defined differently, it is an error.
//!
//! Each fix rewrites the source protox reads and the compile runs again; offsets are mapped back
//! so diagnostics point into the file as the user wrote it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use miette::Diagnostic;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use protox::file::{File, FileResolver, GoogleFileResolver};

use crate::diagnostics::{Reporter, Span};

/// The option families the compiler ships, by the file that defines them.
pub const SEMAPHORE_ANNOTATIONS: &str = "api/annotations.proto";
const MAESTRO_API_ANNOTATIONS: &str = "maestro/api/annotations.proto";
const MAESTRO_ANNOTATIONS: &str = "annotations.proto";
/// Where some of Semaphore's examples import its options from (its GraphQL example's protos):
/// the same options, re-exported.
const SEMAPHORE_ANNOTATIONS_ALIAS: &str = "semaphore/api/annotations.proto";

const SHIPPED: &[(&str, &str, &str)] = &[
    (SEMAPHORE_ANNOTATIONS, "semaphore.api", include_str!("../../proto/api/annotations.proto")),
    (
        SEMAPHORE_ANNOTATIONS_ALIAS,
        "semaphore.api",
        "syntax = \"proto3\";\nimport public \"api/annotations.proto\";\n",
    ),
    (MAESTRO_API_ANNOTATIONS, "maestro.api", include_str!("../../proto/maestro/api/annotations.proto")),
    (MAESTRO_ANNOTATIONS, "maestro", include_str!("../../proto/annotations.proto")),
];

/// A fix applied to one file converges in one more compile; this bounds files with many.
const MAX_ATTEMPTS: usize = 64;

/// The result: every file that compiled, and whether all of them did.
pub struct Compiled {
    pub pool: DescriptorPool,
    pub complete: bool,
}

pub fn compile(proto_files: &[PathBuf], includes: &[PathBuf], reporter: &mut Reporter) -> Compiled {
    let sources = Sources::default();
    let mut roots = Vec::new();
    for path in proto_files {
        let name = relative_name(path, includes);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                sources.insert(&name, path, text, reporter);
                roots.push(name);
            }
            Err(e) => reporter.error_without_span(format!("cannot read {}: {e}", path.display())),
        }
    }
    let resolver = Resolver {
        includes: Rc::new(includes.to_vec()),
        sources: Rc::new(sources),
        pending: Rc::default(),
        conflicting: Rc::default(),
    };
    resolver.merge_identical_definitions(&roots, reporter);

    let mut attempt = 0;
    loop {
        attempt += 1;
        let (pool, errors) = resolver.compile_once(&roots);
        resolver.register_pending(reporter);
        if errors.is_empty() {
            return Compiled { pool, complete: true };
        }
        // Every error's fix is applied before the next attempt, not only the first's.
        let mut fixed = false;
        if attempt < MAX_ATTEMPTS {
            for error in &errors {
                fixed |= resolver.fix(error, reporter);
            }
        }
        if !fixed {
            for error in &errors {
                resolver.report(error, reporter);
            }
            return Compiled { pool, complete: false };
        }
    }
}

/// One diagnostic of protox, flattened: protox nests several under one error.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ProtoError {
    file: String,
    message: String,
    labels: Vec<(std::ops::Range<usize>, String)>,
    help: Option<String>,
}

fn flatten(error: &protox::Error) -> Vec<ProtoError> {
    let file = error.file().unwrap_or_default().to_string();
    let one = |diagnostic: &dyn Diagnostic| ProtoError {
        file: file.clone(),
        message: diagnostic.to_string(),
        labels: diagnostic
            .labels()
            .into_iter()
            .flatten()
            .map(|label| {
                let start = label.offset();
                (start..start + label.len(), label.label().unwrap_or_default().to_string())
            })
            .collect(),
        help: diagnostic.help().map(|help| help.to_string()),
    };
    let mut out = vec![one(error)];
    if let Some(related) = error.related() {
        out.extend(related.map(one));
    }
    out
}

/// A user's proto as protox reads it, and how to map its offsets back to what the user wrote.
struct Source {
    path: PathBuf,
    /// The reporter's file holding the text as written.
    file: usize,
    text: String,
    /// Offsets in the written text at which one byte was inserted, ascending.
    insertions: Vec<usize>,
}

impl Source {
    fn original_offset(&self, offset: usize) -> usize {
        // The k-th insertion (in order) sits at its original offset plus k.
        let shift = self.insertions.iter().enumerate().take_while(|(k, at)| **at + k < offset).count();
        offset - shift
    }

    /// Inserts one character before what the user wrote at `original_at`.
    fn insert(&mut self, original_at: usize, character: char) {
        let index = self.insertions.partition_point(|at| *at < original_at);
        self.text.insert(original_at + index, character);
        self.insertions.insert(index, original_at);
    }

    /// Appends a line the user did not write; nothing of theirs moves.
    fn append(&mut self, line: &str) {
        self.text.push('\n');
        self.text.push_str(line);
        self.text.push('\n');
    }
}

#[derive(Default)]
struct Sources {
    by_name: RefCell<BTreeMap<String, Source>>,
}

impl Sources {
    fn insert(&self, name: &str, path: &Path, text: String, reporter: &mut Reporter) {
        let file = reporter.add_file(path.display().to_string(), text.clone());
        self.by_name.borrow_mut().insert(
            name.to_string(),
            Source { path: path.to_path_buf(), file, text, insertions: Vec::new() },
        );
    }
}

/// Shared between the compile loop and each attempt's protox compiler, which owns its resolver.
#[derive(Clone)]
struct Resolver {
    includes: Rc<Vec<PathBuf>>,
    sources: Rc<Sources>,
    /// Files read from the include folders during a compile (imports not named by
    /// `protobuffers`), registered with the reporter after it.
    pending: Rc<RefCell<Vec<(String, PathBuf, String)>>>,
    /// Names defined differently in two files, already reported with both places.
    conflicting: Rc<RefCell<Vec<String>>>,
}

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if let Some(source) = self.sources.by_name.borrow().get(name) {
            return File::from_source(name, &source.text);
        }
        for include in self.includes.iter() {
            let path = include.join(name);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let file = File::from_source(name, &text);
                self.pending.borrow_mut().push((name.to_string(), path, text));
                return file;
            }
        }
        if let Some((_, _, text)) = SHIPPED.iter().find(|(shipped, _, _)| *shipped == name) {
            return File::from_source(name, text);
        }
        GoogleFileResolver::new().open_file(name)
    }
}

impl Resolver {
    fn compile_once(&self, roots: &[String]) -> (DescriptorPool, Vec<ProtoError>) {
        let mut compiler = protox::Compiler::with_file_resolver(self.clone());
        compiler.include_imports(true);
        let mut errors: Vec<ProtoError> = Vec::new();
        // The Semaphore options are always known, even to protos that do not import them.
        for name in std::iter::once(SEMAPHORE_ANNOTATIONS).chain(roots.iter().map(String::as_str)) {
            if let Err(error) = compiler.open_file(name) {
                for error in flatten(&error) {
                    // A file that fails is reported again by every file importing it.
                    if !errors.contains(&error) {
                        errors.push(error);
                    }
                }
            }
        }
        (compiler.descriptor_pool(), errors)
    }

    fn register_pending(&self, reporter: &mut Reporter) {
        for (name, path, text) in self.pending.borrow_mut().drain(..) {
            if !self.sources.by_name.borrow().contains_key(&name) {
                self.sources.insert(&name, &path, text, reporter);
            }
        }
    }

    /// Applies the fix an error calls for, if it is one of Semaphore's leniencies.
    fn fix(&self, error: &ProtoError, reporter: &mut Reporter) -> bool {
        let mut sources = self.sources.by_name.borrow_mut();
        let Some(source) = sources.get_mut(&error.file) else { return false };
        let Some((range, _)) = error.labels.first() else { return false };
        // The label spans the whole `option (name) = {...};`; the name is inside the parentheses.
        let Some((name_start, bare)) = source.text.get(range.clone()).and_then(option_name) else {
            return false;
        };
        let name_start = range.start + name_start;
        let bare = bare.to_string();
        let name = bare.trim_start_matches('.').to_string();
        let family =
            SHIPPED.iter().find(|(_, package, _)| name.rsplit_once('.').is_some_and(|(p, _)| p == *package));
        let Some((family_file, _, _)) = family else { return false };
        if error.message.starts_with("name '") && error.message.ends_with("' is not defined") {
            // The family was not imported: import it at the end of the file, where it moves no
            // line the user wrote.
            let import = format!("import \"{family_file}\";");
            if source.text.contains(&import) {
                return false;
            }
            source.append(&import);
            return true;
        }
        if !error.message.contains("' resolves to '") || bare.starts_with('.') {
            return false;
        }
        let original_start = source.original_offset(name_start);
        let span = Span { file: source.file, range: original_start..original_start + name.len() };
        source.insert(original_start, '.');
        let package = package_of(&source.text).unwrap_or_default();
        drop(sources);
        let (first, rest) = name.split_once('.').unwrap_or((&name, ""));
        let scoped = if package.split('.').any(|part| part == first) {
            let prefix: Vec<&str> = package.split('.').take_while(|part| *part != first).collect();
            [prefix.join("."), first.to_string(), rest.to_string()]
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(".")
        } else {
            format!("{package}.{name}")
        };
        reporter
            .warning(&span, format!("option `{name}` read as `.{name}`"))
            .label(format!("protobuf scoping resolves this to `{scoped}`, which is not defined"))
            .note(format!("protoc refuses this; write `(.{name})` to name the option from the root"));
        true
    }

    fn report(&self, error: &ProtoError, reporter: &mut Reporter) {
        let reported_already = self.conflicting.borrow().iter().any(|name| {
            error.message.starts_with(&format!("name '{name}' is already defined"))
                || error.message == format!("name '{name}' is defined twice")
        });
        if reported_already {
            return;
        }
        let sources = self.sources.by_name.borrow();
        let Some(source) = sources.get(&error.file) else {
            let prefix = if error.file.is_empty() { String::new() } else { format!("{}: ", error.file) };
            reporter.error_without_span(format!("{prefix}{}", error.message));
            return;
        };
        let file = source.file;
        let span_of = |range: &std::ops::Range<usize>| {
            let start = source.original_offset(range.start);
            let end = source.original_offset(range.end).max(start);
            Span { file, range: start..end }
        };
        let mut labels = error.labels.iter();
        let Some((range, text)) = labels.next() else {
            reporter.error_without_span(format!("{}: {}", source.path.display(), error.message));
            return;
        };
        let mut report = reporter.error(&span_of(range), error.message.clone()).label(text.clone());
        for (range, text) in labels {
            report = report.secondary(&span_of(range), text.clone());
        }
        if let Some(help) = &error.help {
            report.note(help.clone());
        }
    }

    /// Accepts a message or enum defined identically in two files (Semaphore's examples define
    /// the same empty message in each file that needs it): the later definition is removed and
    /// its file imports the earlier one. Defined differently, it is an error naming both.
    fn merge_identical_definitions(&self, roots: &[String], reporter: &mut Reporter) {
        let mut first: HashMap<String, (String, Definition)> = HashMap::new();
        let mut imports_to_add: Vec<(String, String)> = Vec::new();
        let mut blank: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        let mut sources = self.sources.by_name.borrow_mut();
        for name in roots {
            let Some(source) = sources.get(name) else { continue };
            // A file that does not parse is reported by the compile.
            let Ok(file) = protox_parse::parse(name, &source.text) else { continue };
            for definition in definitions(&file, &source.text) {
                let Some((first_file, earlier)) = first.get(&definition.full_name) else {
                    first.insert(definition.full_name.clone(), (name.clone(), definition));
                    continue;
                };
                if first_file == name {
                    // Twice in one file: protox reports it.
                    continue;
                }
                let (Some(earlier_source), Some(later_source)) = (sources.get(first_file), sources.get(name))
                else {
                    continue;
                };
                let earlier_span = Span { file: earlier_source.file, range: earlier.range.clone() };
                let later_span = Span { file: later_source.file, range: definition.range.clone() };
                if earlier.encoded != definition.encoded {
                    self.conflicting.borrow_mut().push(definition.full_name.clone());
                    reporter
                        .error(
                            &later_span,
                            format!("`{}` is defined twice, differently", definition.full_name),
                        )
                        .label("second definition")
                        .secondary(&earlier_span, "first definition")
                        .note("define it once and import that file where it is used");
                    continue;
                }
                reporter
                    .warning(
                        &later_span,
                        format!("`{}` is defined twice; the definitions are identical", definition.full_name),
                    )
                    .label("this one is skipped")
                    .secondary(&earlier_span, "this one is used")
                    .note(format!(
                        "protoc refuses this; define it once and `import \"{first_file}\";` where it is used"
                    ));
                blank.push((name.clone(), definition.range.clone()));
                if !file_imports(&file, first_file) {
                    imports_to_add.push((name.clone(), first_file.clone()));
                }
            }
        }
        for (name, range) in blank {
            if let Some(source) = sources.get_mut(&name) {
                if let Some(text) = source.text.get(range.clone()) {
                    // Spaces keep every other offset, and newlines every line, where it was.
                    let blanked: String = text.chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
                    source.text.replace_range(range, &blanked);
                }
            }
        }
        imports_to_add.sort();
        imports_to_add.dedup();
        for (name, import) in imports_to_add {
            if let Some(source) = sources.get_mut(&name) {
                source.append(&format!("import \"{import}\";"));
            }
        }
    }
}

/// A top-level message or enum, with where it is written and its definition for comparing.
struct Definition {
    full_name: String,
    range: std::ops::Range<usize>,
    encoded: Vec<u8>,
}

fn definitions(file: &FileDescriptorProto, text: &str) -> Vec<Definition> {
    use prost::Message;
    let package = file.package();
    let qualify =
        |name: &str| if package.is_empty() { name.to_string() } else { format!("{package}.{name}") };
    let mut out = Vec::new();
    // FileDescriptorProto fields: 4 = message_type, 5 = enum_type.
    for (index, message) in file.message_type.iter().enumerate() {
        if let Some(range) = location(file, &[4, index as i32], text) {
            out.push(Definition {
                full_name: qualify(message.name()),
                range,
                encoded: message.encode_to_vec(),
            });
        }
    }
    for (index, enumeration) in file.enum_type.iter().enumerate() {
        if let Some(range) = location(file, &[5, index as i32], text) {
            out.push(Definition {
                full_name: qualify(enumeration.name()),
                range,
                encoded: enumeration.encode_to_vec(),
            });
        }
    }
    out
}

/// The byte range of a descriptor path, from the parser's source info (0-based lines and
/// columns, columns in characters).
fn location(file: &FileDescriptorProto, path: &[i32], text: &str) -> Option<std::ops::Range<usize>> {
    let info = file.source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let (start_line, start_col, end_line, end_col) = match location.span.as_slice() {
        [line, start, end] => (*line, *start, *line, *end),
        [start_line, start, end_line, end] => (*start_line, *start, *end_line, *end),
        _ => return None,
    };
    let offset = |line: i32, col: i32| -> Option<usize> {
        let line_start =
            text.split_inclusive('\n').take(usize::try_from(line).ok()?).map(str::len).sum::<usize>();
        let rest = text.get(line_start..)?;
        let col = usize::try_from(col).ok()?;
        Some(line_start + rest.char_indices().nth(col).map(|(i, _)| i).unwrap_or(rest.len()))
    };
    Some(offset(start_line, start_col)?..offset(end_line, end_col)?)
}

fn file_imports(file: &FileDescriptorProto, other: &str) -> bool {
    file.dependency.iter().any(|d| d == other)
}

fn package_of(text: &str) -> Option<String> {
    protox_parse::parse("", text).ok().map(|file| file.package().to_string())
}

/// The parenthesised option name in an option statement, and its offset in it.
fn option_name(statement: &str) -> Option<(usize, &str)> {
    let open = statement.find('(')? + 1;
    let length = statement.get(open..)?.find(')')?;
    let name = statement.get(open..open + length)?;
    name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.').then_some((open, name))
}

/// protox names files relative to an include directory, as imports name them.
pub fn relative_name(file: &Path, includes: &[PathBuf]) -> String {
    let canonical = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let file = canonical(file);
    includes
        .iter()
        .map(|include| canonical(include))
        .filter_map(|include| file.strip_prefix(include).ok().map(Path::to_path_buf))
        .min_by_key(|rel| rel.as_os_str().len())
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}
