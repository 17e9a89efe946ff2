//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, the same messages), answered
//! from what the compiler put in the plan, so that `grpcurl list` and `describe` work without
//! the protos. Each call answers its first request, then ends; reflection clients open a new
//! call for the next.

use prost::{encoding, Message};

use semaphore_plan::{Plan, Reflection};

use super::{grpc, Wire};
use crate::engine::host::Reply;

#[derive(Clone, PartialEq, Message)]
struct ServerReflectionRequest {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(oneof = "Request", tags = "3, 4, 5, 6, 7")]
    request: Option<Request>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Request {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(message, tag = "5")]
    FileContainingExtension(ExtensionRequest),
    #[prost(string, tag = "6")]
    AllExtensionNumbersOfType(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

#[derive(Clone, PartialEq, Message)]
struct ExtensionRequest {
    #[prost(string, tag = "1")]
    containing_type: String,
    #[prost(int32, tag = "2")]
    extension_number: i32,
}

/// gRPC's NOT_FOUND, which reflection answers inside its message.
const NOT_FOUND: i32 = 5;

/// The answer to the call's first request: `ServerReflectionResponse`, written field by
/// field, since the compiler wrote what it answers (`Plan::reflection`).
pub(super) fn answer(plan: &Plan, wire: Wire, body: &[u8]) -> Reply {
    let message = match grpc::first_message(wire, body) {
        Ok(message) => message,
        Err(failure) => return grpc::error_reply(wire, failure.status, &failure.message),
    };
    let Ok(request) = ServerReflectionRequest::decode(message.as_slice()) else {
        return grpc::error_reply(wire, 400, "invalid reflection request");
    };
    let empty = Reflection::default();
    let reflection = plan.reflection.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    encoding::string::encode(1, &request.host, &mut out); // valid_host
    encoding::bytes::encode(2, &message, &mut out); // original_request, as it came
    respond(reflection, request.request.as_ref(), &mut out);
    grpc::message_reply(wire, out)
}

/// The response's `message_response`.
fn respond(reflection: &Reflection, request: Option<&Request>, out: &mut Vec<u8>) {
    let defining = |symbol: &str| reflection.files.iter().position(|f| f.symbols.iter().any(|s| s == symbol));
    let Some(request) = request else { return };
    let missing = match request {
        Request::ListServices(_) => return encoding::bytes::encode(6, &reflection.list_services, out),
        Request::FileByFilename(name) => match reflection.files.iter().position(|f| &f.name == name) {
            Some(index) => return files(reflection, index, out),
            None => format!("no file named {name}"),
        },
        Request::FileContainingSymbol(symbol) => match defining(symbol.trim_start_matches('.')) {
            Some(index) => return files(reflection, index, out),
            None => format!("no symbol {symbol}"),
        },
        // The flows' messages declare no extensions.
        Request::AllExtensionNumbersOfType(name) => match defining(name.trim_start_matches('.')) {
            Some(_) => {
                let mut numbers = Vec::new();
                encoding::string::encode(1, name, &mut numbers); // base_type_name
                return encoding::bytes::encode(5, &numbers, out);
            }
            None => format!("no message {name}"),
        },
        Request::FileContainingExtension(extension) => {
            format!("no extension {} of {}", extension.extension_number, extension.containing_type)
        }
    };
    let mut error = Vec::new();
    encoding::int32::encode(1, &NOT_FOUND, &mut error); // error_code
    encoding::string::encode(2, &missing, &mut error); // error_message
    encoding::bytes::encode(7, &error, out);
}

/// `FileDescriptorResponse`: a file, then every file it imports.
fn files(reflection: &Reflection, index: usize, out: &mut Vec<u8>) {
    let Some(file) = reflection.files.get(index) else { return };
    let imports = file.imports.iter().filter_map(|&i| reflection.files.get(i as usize));
    let mut response = Vec::new();
    for sent in std::iter::once(file).chain(imports) {
        encoding::bytes::encode(1, &sent.descriptor, &mut response);
    }
    encoding::bytes::encode(4, &response, out);
}
