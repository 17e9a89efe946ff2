//! gRPC server reflection, worked out here so that the filter only looks its answers up: the
//! services the gRPC endpoints serve, and the protobuf files that describe them.
//!
//! A served service that the protos define with the same methods is described by its own file.
//! Any other (Semaphore's endpoints name their service freely) gets a file of its own, as
//! Semaphore's gRPC listener made one: `<service>.proto` in its package, its methods taking the
//! flows' input and output messages, importing the files that define them.

use std::collections::BTreeMap;

use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto,
};
use semaphore_plan as plan;

use crate::schema::Schemas;

/// The reflection services the filter answers, both versions clients use.
pub const REFLECTION_SERVICES: [&str; 2] =
    ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
const EMPTY: &str = "google.protobuf.Empty";

/// The reflection of the plan's gRPC endpoints; `None` without any.
pub(super) fn reflection(
    endpoints: &[plan::Endpoint],
    flows: &[plan::Flow],
    messages: &[plan::MessageLayout],
    schemas: &Schemas,
) -> Option<plan::Reflection> {
    // Service -> its methods: name, input and output message.
    let mut services: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for endpoint in endpoints.iter().filter(|e| e.kind() == plan::EndpointKind::Grpc) {
        let Some((service, method)) = endpoint.route.strip_prefix('/').and_then(|r| r.split_once('/')) else {
            continue;
        };
        let flow = flows.get(endpoint.flow as usize);
        let name = |index: Option<u32>| {
            index
                .and_then(|i| messages.get(i as usize))
                .map(|m| m.name.clone())
                .filter(|name| schemas.message(name).is_some())
                .unwrap_or_else(|| EMPTY.to_string())
        };
        let input = name(flow.map(|f| f.input));
        let output = name(flow.and_then(|f| f.output.as_ref()).map(|o| o.message));
        services.entry(service.to_string()).or_default().push((method.to_string(), input, output));
    }
    if services.is_empty() {
        return None;
    }
    let mut files = Files::default();
    for (service, methods) in &services {
        match schemas.service(service) {
            Some(defined)
                if methods.iter().all(|(method, input, output)| {
                    defined.methods().any(|m| {
                        m.name() == method
                            && m.input().full_name() == input
                            && m.output().full_name() == output
                    })
                }) =>
            {
                files.add_from_pool(defined.parent_file().name(), &schemas.pool);
            }
            _ => {
                files.add_made(made_file(service, methods, schemas), &schemas.pool);
            }
        }
    }
    let mut names: Vec<String> = services.into_keys().collect();
    names.extend(REFLECTION_SERVICES.map(String::from));
    let mut files = files.files;
    // Each file's imports, direct or not, so that the filter sends them without working them out.
    let direct: Vec<Vec<u32>> = files.iter().map(|f| f.imports.clone()).collect();
    for (index, file) in files.iter_mut().enumerate() {
        let mut all: Vec<u32> = Vec::new();
        let mut next = direct.get(index).cloned().unwrap_or_default();
        while let Some(import) = next.pop() {
            if import as usize != index && !all.contains(&import) {
                all.push(import);
                next.extend(direct.get(import as usize).into_iter().flatten());
            }
        }
        all.sort_unstable();
        file.imports = all;
    }
    Some(plan::Reflection { list_services: list_services(&names), files })
}

/// `grpc.reflection.v1.ListServiceResponse { repeated ServiceResponse service = 1 }`, each
/// `ServiceResponse { string name = 1 }`.
fn list_services(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        let mut service = Vec::new();
        prost::encoding::string::encode(1, name, &mut service);
        prost::encoding::bytes::encode(1, &service, &mut out);
    }
    out
}

/// The file Semaphore's listener described a service with: `<service>.proto`.
fn made_file(service: &str, methods: &[(String, String, String)], schemas: &Schemas) -> FileDescriptorProto {
    let (package, name) = service.rsplit_once('.').unwrap_or(("", service));
    let mut imports: Vec<String> = Vec::new();
    for (_, input, output) in methods {
        for message in [input, output] {
            let file = match schemas.message(message) {
                Some(message) => message.parent_file().name().to_string(),
                None => "google/protobuf/empty.proto".to_string(),
            };
            if !imports.contains(&file) {
                imports.push(file);
            }
        }
    }
    FileDescriptorProto {
        name: Some(format!("{service}.proto")),
        package: (!package.is_empty()).then(|| package.to_string()),
        dependency: imports,
        service: vec![ServiceDescriptorProto {
            name: Some(name.to_string()),
            method: methods
                .iter()
                .map(|(method, input, output)| MethodDescriptorProto {
                    name: Some(method.clone()),
                    input_type: Some(format!(".{input}")),
                    output_type: Some(format!(".{output}")),
                    ..Default::default()
                })
                .collect(),
            options: None,
        }],
        syntax: Some("proto3".to_string()),
        ..Default::default()
    }
}

#[derive(Default)]
struct Files {
    files: Vec<plan::DescriptorFile>,
}

impl Files {
    fn index(&self, name: &str) -> Option<u32> {
        self.files.iter().position(|f| f.name == name).map(|i| i as u32)
    }

    /// A file of the protos (or a well-known type's), with every file it imports.
    fn add_from_pool(&mut self, name: &str, pool: &DescriptorPool) -> Option<u32> {
        if let Some(index) = self.index(name) {
            return Some(index);
        }
        let file = pool.get_file_by_name(name).or_else(|| DescriptorPool::global().get_file_by_name(name))?;
        let proto = file.file_descriptor_proto().clone();
        self.add_made(proto, pool)
    }

    /// `file`, after the files it imports.
    fn add_made(&mut self, file: FileDescriptorProto, pool: &DescriptorPool) -> Option<u32> {
        let imports: Vec<u32> =
            file.dependency.iter().filter_map(|name| self.add_from_pool(name, pool)).collect();
        let name = file.name().to_string();
        if let Some(index) = self.index(&name) {
            return Some(index);
        }
        self.files.push(plan::DescriptorFile {
            name,
            symbols: symbols(&file),
            imports,
            descriptor: file.encode_to_vec(),
        });
        Some(self.files.len() as u32 - 1)
    }
}

/// Every fully qualified name a file defines.
fn symbols(file: &FileDescriptorProto) -> Vec<String> {
    let prefix = match file.package() {
        "" => String::new(),
        package => format!("{package}."),
    };
    let mut out = Vec::new();
    for message in &file.message_type {
        message_symbols(&prefix, message, &mut out);
    }
    enum_symbols(&prefix, &file.enum_type, &mut out);
    for service in &file.service {
        let name = format!("{prefix}{}", service.name());
        out.extend(service.method.iter().map(|m| format!("{name}.{}", m.name())));
        out.push(name);
    }
    out
}

fn message_symbols(prefix: &str, message: &DescriptorProto, out: &mut Vec<String>) {
    let name = format!("{prefix}{}", message.name());
    let nested = format!("{name}.");
    for inner in &message.nested_type {
        message_symbols(&nested, inner, out);
    }
    enum_symbols(&nested, &message.enum_type, out);
    out.push(name);
}

fn enum_symbols(prefix: &str, enums: &[EnumDescriptorProto], out: &mut Vec<String>) {
    out.extend(enums.iter().map(|e| format!("{prefix}{}", e.name())));
}
