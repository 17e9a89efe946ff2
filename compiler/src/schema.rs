//! Protobuf schemas: compiled with protox, read through prost-reflect, and flattened into the
//! plan's message layouts so the filter needs no reflection.

use std::collections::HashMap;
use std::path::Path;

use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, ServiceDescriptor, Value,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver};
use semaphore_plan as plan;

use crate::config::Config;
use crate::diagnostics::Reporter;

const ANNOTATIONS_NAME: &str = "api/annotations.proto";
const ANNOTATIONS: &str = include_str!("../proto/api/annotations.proto");

/// Resolves `import "api/annotations.proto"` to the copy shipped inside the compiler, so that
/// Semaphore protos compile without the user vendoring it.
struct Annotations;

impl FileResolver for Annotations {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == ANNOTATIONS_NAME {
            File::from_source(name, ANNOTATIONS)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

pub struct Schemas {
    pub pool: DescriptorPool,
}

/// `option (semaphore.api.service) = { ... }`
#[derive(Default, Debug)]
pub struct ServiceAnnotation {
    pub host: String,
    pub transport: String,
    pub codec: String,
    pub request_codec: String,
    pub response_codec: String,
}

/// `option (semaphore.api.http) = { ... }`
#[derive(Default, Debug)]
pub struct HttpAnnotation {
    pub endpoint: String,
    pub method: String,
}

impl Schemas {
    pub fn load(config: &Config, reporter: &mut Reporter) -> Schemas {
        let mut resolver = ChainFileResolver::new();
        let mut includes = config.proto_includes.clone();
        includes.sort();
        includes.dedup();
        for include in &includes {
            resolver.add(IncludeFileResolver::new(include.clone()));
        }
        resolver.add(Annotations);
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        // The annotations are always known, even to configurations whose protos do not import them.
        if let Err(e) = compiler.open_file(ANNOTATIONS_NAME) {
            reporter.error_without_span(format!("built-in {ANNOTATIONS_NAME}: {e}"));
        }
        for file in &config.proto_files {
            let name = relative_name(file, &includes);
            if let Err(e) = compiler.open_file(&name) {
                reporter.error_without_span(format!("{}: {e}", file.display()));
            }
        }
        Schemas { pool: compiler.descriptor_pool() }
    }

    pub fn service(&self, name: &str) -> Option<ServiceDescriptor> {
        self.pool.get_service_by_name(name)
    }

    pub fn message(&self, name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(name)
    }

    pub fn service_annotation(&self, service: &ServiceDescriptor) -> ServiceAnnotation {
        let Some(options) = self.extension(&service.options(), "semaphore.api.service") else {
            return ServiceAnnotation::default();
        };
        ServiceAnnotation {
            host: string_field(&options, "host"),
            transport: string_field(&options, "transport"),
            codec: string_field(&options, "codec"),
            request_codec: string_field(&options, "request_codec"),
            response_codec: string_field(&options, "response_codec"),
        }
    }

    pub fn http_annotation(&self, method: &MethodDescriptor) -> Option<HttpAnnotation> {
        let options = self.extension(&method.options(), "semaphore.api.http")?;
        Some(HttpAnnotation {
            endpoint: string_field(&options, "endpoint"),
            method: string_field(&options, "method"),
        })
    }

    fn extension(&self, options: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
        let extension = self.pool.get_extension_by_name(name)?;
        if !options.has_extension(&extension) {
            return None;
        }
        match options.get_extension(&extension).as_ref() {
            Value::Message(message) => Some(message.clone()),
            _ => None,
        }
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    message.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// protox names files relative to an include directory.
fn relative_name(file: &Path, includes: &[std::path::PathBuf]) -> String {
    includes
        .iter()
        .filter_map(|include| file.strip_prefix(include).ok())
        .min_by_key(|rel| rel.as_os_str().len())
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Message layouts as the plan stores them, each message once.
#[derive(Default)]
pub struct Layouts {
    index: HashMap<String, u32>,
    pub messages: Vec<plan::MessageLayout>,
}

impl Layouts {
    pub fn layout(&mut self, descriptor: &MessageDescriptor) -> u32 {
        if let Some(&index) = self.index.get(descriptor.full_name()) {
            return index;
        }
        let index = self.messages.len() as u32;
        self.index.insert(descriptor.full_name().to_string(), index);
        // Reserve the slot first so that recursive messages point back at it.
        self.messages
            .push(plan::MessageLayout { name: descriptor.full_name().to_string(), fields: Vec::new() });
        let fields = descriptor
            .fields()
            .map(|field| {
                let (kind, message, enum_values) = match field.kind() {
                    prost_reflect::Kind::Message(m) => (plan::Kind::Message, self.layout(&m), Vec::new()),
                    prost_reflect::Kind::Enum(e) => (
                        plan::Kind::Enum,
                        0,
                        e.values()
                            .map(|v| plan::EnumValue { name: v.name().to_string(), number: v.number() })
                            .collect(),
                    ),
                    other => (scalar_kind(&other), 0, Vec::new()),
                };
                plan::FieldLayout {
                    name: field.name().to_string(),
                    json_name: field.json_name().to_string(),
                    number: field.number(),
                    kind: kind as i32,
                    repeated: field.is_list() || field.is_map(),
                    message,
                    enum_values,
                }
            })
            .collect();
        if let Some(slot) = self.messages.get_mut(index as usize) {
            slot.fields = fields;
        }
        index
    }
}

fn scalar_kind(kind: &prost_reflect::Kind) -> plan::Kind {
    use prost_reflect::Kind as K;
    match kind {
        K::Double => plan::Kind::Double,
        K::Float => plan::Kind::Float,
        K::Int64 => plan::Kind::Int64,
        K::Uint64 => plan::Kind::Uint64,
        K::Int32 => plan::Kind::Int32,
        K::Fixed64 => plan::Kind::Fixed64,
        K::Fixed32 => plan::Kind::Fixed32,
        K::Bool => plan::Kind::Bool,
        K::String => plan::Kind::String,
        K::Bytes => plan::Kind::Bytes,
        K::Uint32 => plan::Kind::Uint32,
        K::Sfixed32 => plan::Kind::Sfixed32,
        K::Sfixed64 => plan::Kind::Sfixed64,
        K::Sint32 => plan::Kind::Sint32,
        K::Sint64 => plan::Kind::Sint64,
        K::Message(_) => plan::Kind::Message,
        K::Enum(_) => plan::Kind::Enum,
    }
}
