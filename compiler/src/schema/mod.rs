//! Protobuf schemas: compiled with protox, read through prost-reflect, and flattened into the
//! plan's message layouts so the filter needs no reflection.

use std::collections::HashMap;

use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, ServiceDescriptor, Value,
};
use semaphore_plan as plan;

use crate::config::{Config, MethodDef, ServiceDef, ServiceSettings, Spanned};
use crate::diagnostics::{Reporter, Span};

mod protos;

pub struct Schemas {
    pub pool: DescriptorPool,
    /// Every proto compiled. When one did not, names it defines are unknown, and saying so
    /// again at each use would bury the error that matters.
    pub complete: bool,
}

/// The packages of the service and method options the compiler reads, newest first: Semaphore's,
/// Maestro's later `maestro.api` and its earliest `maestro`.
const OPTION_FAMILIES: &[&str] = &["semaphore.api", "maestro.api", "maestro"];

/// `option (semaphore.api.service) = { ... }` (or a Maestro spelling of it)
#[derive(Default, Debug)]
pub struct ServiceAnnotation {
    pub host: String,
    pub transport: String,
    pub codec: String,
    pub request_codec: String,
    pub response_codec: String,
}

/// `option (semaphore.api.http) = { ... }`
#[derive(Default, Debug, Clone)]
pub struct HttpAnnotation {
    pub endpoint: String,
    pub method: String,
}

impl Schemas {
    pub fn load(config: &Config, reporter: &mut Reporter) -> Schemas {
        let mut includes = config.proto_includes.clone();
        includes.sort();
        includes.dedup();
        let compiled = protos::compile(&config.proto_files, &includes, reporter);
        Schemas { pool: compiled.pool, complete: compiled.complete }
    }

    pub fn service(&self, name: &str) -> Option<ServiceDescriptor> {
        self.pool.get_service_by_name(name)
    }

    pub fn message(&self, name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(name)
    }

    pub fn service_annotation(&self, service: &ServiceDescriptor) -> ServiceAnnotation {
        let Some(options) = OPTION_FAMILIES
            .iter()
            .find_map(|family| self.extension(&service.options(), &format!("{family}.service")))
        else {
            return ServiceAnnotation::default();
        };
        // The earliest Maestro spelled `transport` as `protocol`.
        let transport = match string_field(&options, "transport") {
            transport if transport.is_empty() => string_field(&options, "protocol"),
            transport => transport,
        };
        ServiceAnnotation {
            host: string_field(&options, "host"),
            transport,
            codec: string_field(&options, "codec"),
            request_codec: string_field(&options, "request_codec"),
            response_codec: string_field(&options, "response_codec"),
        }
    }

    pub fn http_annotation(&self, method: &MethodDescriptor) -> Option<HttpAnnotation> {
        let options = OPTION_FAMILIES
            .iter()
            .find_map(|family| self.extension(&method.options(), &format!("{family}.http")))?;
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

/// A service as calls see it: from a proto, a `service` block, or both, with `services {
/// select }` applied.
pub struct ServiceInfo {
    pub name: String,
    pub host: Setting,
    pub transport: Setting,
    pub codec: Setting,
    pub request_codec: Setting,
    pub response_codec: Setting,
    pub cluster: Setting,
    pub int64_as_string: Option<Spanned<crate::config::Literal>>,
    pub methods: Result<Vec<MethodInfo>, Problem>,
}

/// A setting's value and, when it comes from HCL, where it was written.
#[derive(Clone, Default, Debug)]
pub struct Setting {
    pub value: String,
    pub span: Option<Span>,
}

impl ServiceInfo {
    /// Settings from HCL override those from the proto, and later ones earlier ones.
    fn apply(&mut self, settings: &ServiceSettings) {
        self.host.set(&settings.host);
        self.transport.set(&settings.transport);
        self.codec.set(&settings.codec);
        self.request_codec.set(&settings.request_codec);
        self.response_codec.set(&settings.response_codec);
        self.cluster.set(&settings.cluster);
        if settings.int64_as_string.is_some() {
            self.int64_as_string.clone_from(&settings.int64_as_string);
        }
    }
}

impl Setting {
    fn set(&mut self, from: &Option<Spanned<String>>) {
        if let Some(value) = from {
            *self = Setting { value: value.value.clone(), span: Some(value.span.clone()) };
        }
    }
}

#[derive(Clone, Debug)]
pub struct MethodInfo {
    pub name: String,
    pub full_name: String,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
    pub http: Option<HttpAnnotation>,
}

#[derive(Clone, Debug)]
pub struct Problem {
    pub span: Span,
    pub message: String,
}

impl Schemas {
    /// Every service name a call may use, for suggestions.
    pub fn service_names(&self, config: &Config) -> Vec<String> {
        let mut names: Vec<String> = self.pool.services().map(|s| s.full_name().to_string()).collect();
        names.extend(config.services.iter().map(ServiceDef::full_name));
        names
    }

    pub fn service_info(&self, name: &str, config: &Config) -> Option<ServiceInfo> {
        let proto = self.service(name);
        let defined = config.services.iter().rev().find(|s| s.full_name() == name);
        if proto.is_none() && defined.is_none() {
            return None;
        }
        let annotation = proto.as_ref().map(|p| self.service_annotation(p)).unwrap_or_default();
        let from = |value: String| Setting { value, span: None };
        let mut info = ServiceInfo {
            name: name.to_string(),
            host: from(annotation.host),
            transport: from(annotation.transport),
            codec: from(annotation.codec),
            request_codec: from(annotation.request_codec),
            response_codec: from(annotation.response_codec),
            cluster: Setting::default(),
            int64_as_string: None,
            methods: Ok(Vec::new()),
        };
        for select in &config.service_selects {
            if glob::Pattern::new(&select.pattern.value).is_ok_and(|p| p.matches(name)) {
                info.apply(&select.settings);
            }
        }
        if let Some(defined) = defined {
            info.apply(&defined.settings);
        }
        info.methods = match defined.filter(|d| !d.methods.is_empty()) {
            Some(defined) => defined.methods.iter().map(|method| self.defined_method(name, method)).collect(),
            None => Ok(proto.map(|proto| self.proto_methods(&proto)).unwrap_or_default()),
        };
        Some(info)
    }

    /// A method of a `service` block, whose messages must be known.
    fn defined_method(&self, service: &str, method: &MethodDef) -> Result<MethodInfo, Problem> {
        let message = |name: &Option<Spanned<String>>, what: &str| match name {
            Some(name) => self.message(&name.value).ok_or_else(|| Problem {
                span: name.span.clone(),
                message: format!("unknown message `{}`", name.value),
            }),
            None => Err(Problem {
                span: method.name.span.clone(),
                message: format!("method `{}` names no {what} message", method.name.value),
            }),
        };
        let http = method.endpoint.as_ref().map(|endpoint| HttpAnnotation {
            endpoint: endpoint.value.clone(),
            method: method.method.as_ref().map(|m| m.value.clone()).unwrap_or_default(),
        });
        Ok(MethodInfo {
            name: method.name.value.clone(),
            full_name: format!("{service}.{}", method.name.value),
            input: message(&method.request, "request")?,
            output: message(&method.response, "response")?,
            http,
        })
    }

    fn proto_methods(&self, proto: &ServiceDescriptor) -> Vec<MethodInfo> {
        proto
            .methods()
            .map(|m| MethodInfo {
                name: m.name().to_string(),
                full_name: m.full_name().to_string(),
                input: m.input(),
                output: m.output(),
                http: self.http_annotation(&m),
            })
            .collect()
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    message.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
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
                    map: field.is_map(),
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
