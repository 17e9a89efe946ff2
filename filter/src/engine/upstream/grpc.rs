//! gRPC upstreams: the request message in protobuf, sent through Envoy's gRPC client; the
//! answer's status read as the HTTP status it stands for.

use semaphore_plan::{Call, Plan, Service};

use crate::engine::codec::{proto, Outgoing};
use crate::engine::host::{Callout, GrpcMethod, HeaderText};

/// The callout of a unary call: the metadata is the call's headers, the body the request
/// message, framed by Envoy.
pub(super) fn callout(
    plan: &Plan,
    service: &Service,
    call: &Call,
    request: &Outgoing,
    headers: Vec<(HeaderText, HeaderText)>,
) -> Callout {
    Callout {
        cluster: service.cluster.clone(),
        authority: service.authority.clone(),
        headers,
        body: Some(proto::encode_outgoing(plan, call.request_message, request)),
        timeout: Default::default(),
        grpc: Some(GrpcMethod { service: service.name.clone(), method: call.method.clone() }),
    }
}

/// The HTTP status a gRPC status code stands for.
pub fn http_status_of_grpc(code: u32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}
