//! gRPC endpoints: a unary method, `POST /package.Service/Method`, called in any of the
//! protocols gRPC clients speak, told apart by the request's content type ([`Wire`]):
//!
//! - gRPC: one length-prefixed protobuf message; the answer is one message with
//!   `grpc-status: 0` in the trailers, or, for a failure, no message and its status as a gRPC
//!   code with `grpc-message`, as Semaphore's gRPC listener answered. How that reaches a gRPC
//!   client through Envoy is the adapter's (`proxy/grpc_hop.rs`).
//! - gRPC-Web, binary or base64 text: the same, the trailers as a last frame of the body, or
//!   with the headers of a failure, so browsers call the method without another proxy.
//! - Connect unary: the bare message in protobuf or JSON; a failure is its HTTP status and
//!   `{"code", "message"}` in JSON.

use crate::engine::value::{json, Map};
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use semaphore_plan::{Codec, Plan};

use super::Wire;
use crate::engine::codec::{self, Int64Json};
use crate::engine::host::Reply;
use crate::engine::Failure;

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%`.
const MESSAGE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// The protocol of a request, by its content type; `None` for one no gRPC client sends.
pub(super) fn wire(content_type: &str) -> Option<Wire> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    Some(match essence.as_str() {
        "application/grpc" | "application/grpc+proto" => Wire::Grpc,
        "application/grpc-web" | "application/grpc-web+proto" => Wire::GrpcWeb { text: false },
        "application/grpc-web-text" | "application/grpc-web-text+proto" => Wire::GrpcWeb { text: true },
        "application/proto" => Wire::Connect { json: false },
        "application/json" => Wire::Connect { json: true },
        _ => return None,
    })
}

/// The flow's input from the request's one message.
pub(super) fn decode_input(plan: &Plan, wire: Wire, layout: u32, body: &[u8]) -> Result<Map, Failure> {
    let invalid = |e: codec::CodecError| Failure::new(400, format!("invalid request message: {e}"));
    match wire {
        Wire::Connect { json: true } => codec::decode_json(plan, layout, body).map_err(invalid),
        Wire::Connect { json: false } => codec::proto::decode(plan, layout, body).map_err(invalid),
        Wire::GrpcWeb { text: true } => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(body.trim_ascii())
                .map_err(|_| Failure::new(400, "the gRPC-Web text request is not base64"))?;
            codec::proto::decode(plan, layout, unframe(&decoded)?).map_err(invalid)
        }
        Wire::Grpc | Wire::GrpcWeb { text: false } | Wire::Http | Wire::Graphql => {
            codec::proto::decode(plan, layout, unframe(body)?).map_err(invalid)
        }
    }
}

/// Whether a streaming request's first message has arrived whole, when the body so far is
/// `body`. gRPC-Web's text form is read once the request has ended.
pub(super) fn first_message_arrived(wire: Wire, body: &[u8]) -> bool {
    match wire {
        Wire::Grpc | Wire::GrpcWeb { text: false } => first_frame(body).is_some(),
        _ => false,
    }
}

/// A streaming request's first message, whatever follows it.
pub(super) fn first_message(wire: Wire, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let cut_short = || Failure::new(400, "the request is not a gRPC message: its frame is cut short");
    let decoded;
    let body = match wire {
        Wire::GrpcWeb { text: true } => {
            decoded = base64::engine::general_purpose::STANDARD
                .decode(body.trim_ascii())
                .map_err(|_| Failure::new(400, "the gRPC-Web text request is not base64"))?;
            &decoded
        }
        _ => body,
    };
    first_frame(body).ok_or_else(cut_short).map(<[u8]>::to_vec)
}

/// The first frame's message, once it has arrived whole.
fn first_frame(body: &[u8]) -> Option<&[u8]> {
    let (&[_, l0, l1, l2, l3], rest) = body.split_first_chunk::<5>()?;
    rest.get(..u32::from_be_bytes([l0, l1, l2, l3]) as usize)
}

/// A message answered as the protocol frames it, with no metadata.
pub(super) fn message_reply(wire: Wire, message: Vec<u8>) -> Reply {
    answer(wire, message, Vec::new())
}

/// The message of a unary request's one frame: a compression flag, a big-endian length, the
/// message.
fn unframe(body: &[u8]) -> Result<&[u8], Failure> {
    let Some((&[compressed, l0, l1, l2, l3], message)) = body.split_first_chunk::<5>() else {
        return Err(Failure::new(400, "the request is not one gRPC message: its frame is cut short"));
    };
    if compressed != 0 {
        return Err(Failure::new(
            501,
            "compressed request messages are not supported; send them uncompressed",
        ));
    }
    let length = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    match message.len().cmp(&length) {
        std::cmp::Ordering::Equal => Ok(message),
        std::cmp::Ordering::Less => {
            Err(Failure::new(400, "the request is not one gRPC message: its frame is cut short"))
        }
        std::cmp::Ordering::Greater => {
            Err(Failure::new(400, "a unary method takes one request message; more came"))
        }
    }
}

/// One length-prefixed frame: a message (`flags` 0), or gRPC-Web's trailers (0x80).
fn frame(flags: u8, message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(flags);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The output as the method's one response message; the output's headers travel as trailing
/// metadata, as Semaphore sent them.
pub(super) fn reply(
    plan: &Plan,
    wire: Wire,
    layout: u32,
    message: codec::Outgoing,
    metadata: Vec<(String, String)>,
) -> Reply {
    let (codec, int64) = match wire {
        // Connect's JSON is protobuf's JSON mapping, which writes 64-bit integers as strings.
        Wire::Connect { json: true } => (Codec::Json, Int64Json::String),
        _ => (Codec::Proto, Int64Json::Number),
    };
    let (_, body) = codec::encode_outgoing(plan, layout, codec, int64, &message);
    answer(wire, body, metadata)
}

/// A flow without an output answers the empty message.
pub(super) fn empty_reply(wire: Wire) -> Reply {
    let body = if wire == (Wire::Connect { json: true }) { b"{}".to_vec() } else { Vec::new() };
    answer(wire, body, Vec::new())
}

fn answer(wire: Wire, message: Vec<u8>, metadata: Vec<(String, String)>) -> Reply {
    let mut trailers = vec![("grpc-status".to_string(), "0".to_string())];
    trailers.extend(metadata);
    match wire {
        Wire::Connect { json } => Reply {
            status: 200,
            headers: std::iter::once(("content-type".to_string(), connect_content_type(json).to_string()))
                .chain(trailers.into_iter().skip(1).map(|(name, value)| (format!("trailer-{name}"), value)))
                .collect(),
            body: message,
            trailers: Vec::new(),
        },
        Wire::GrpcWeb { text } => {
            let mut body = frame(0, &message);
            let lines: String = trailers.iter().map(|(name, value)| format!("{name}:{value}\r\n")).collect();
            body.extend(frame(0x80, lines.as_bytes()));
            grpc_web(text, body, Vec::new())
        }
        Wire::Grpc | Wire::Http | Wire::Graphql => Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/grpc".into())],
            body: frame(0, &message),
            trailers,
        },
    }
}

fn grpc_web(text: bool, body: Vec<u8>, mut headers: Vec<(String, String)>) -> Reply {
    let (content_type, body) = if text {
        (
            "application/grpc-web-text+proto",
            base64::engine::general_purpose::STANDARD.encode(body).into_bytes(),
        )
    } else {
        ("application/grpc-web+proto", body)
    };
    headers.insert(0, ("content-type".into(), content_type.into()));
    Reply { status: 200, headers, body, trailers: Vec::new() }
}

fn connect_content_type(json: bool) -> &'static str {
    if json {
        "application/json"
    } else {
        "application/proto"
    }
}

/// A failure: its HTTP status as a gRPC code, with its message, and no message.
pub(super) fn error_reply(wire: Wire, status: u16, message: &str) -> Reply {
    let code = code(status);
    let status_lines = vec![
        ("grpc-status".to_string(), code.to_string()),
        ("grpc-message".to_string(), utf8_percent_encode(message, MESSAGE_ESCAPES).to_string()),
    ];
    match wire {
        Wire::Connect { .. } => {
            let (name, http) = CONNECT_CODES.get(code as usize).copied().unwrap_or(("unknown", 500));
            Reply {
                status: http,
                headers: vec![("content-type".into(), "application/json".into())],
                body: codec::json_text(&json!({ "code": name, "message": message })).into_bytes(),
                trailers: Vec::new(),
            }
        }
        // Trailers-only: the status travels with the headers.
        Wire::GrpcWeb { text } => grpc_web(text, Vec::new(), status_lines),
        Wire::Grpc | Wire::Http | Wire::Graphql => Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/grpc".into())],
            body: Vec::new(),
            trailers: status_lines,
        },
    }
}

/// Connect's name of each gRPC code, and the HTTP status it answers with, by code.
const CONNECT_CODES: [(&str, u16); 17] = [
    ("ok", 200),
    ("canceled", 499),
    ("unknown", 500),
    ("invalid_argument", 400),
    ("deadline_exceeded", 504),
    ("not_found", 404),
    ("already_exists", 409),
    ("permission_denied", 403),
    ("resource_exhausted", 429),
    ("failed_precondition", 400),
    ("aborted", 409),
    ("out_of_range", 400),
    ("unimplemented", 501),
    ("internal", 500),
    ("unavailable", 503),
    ("data_loss", 500),
    ("unauthenticated", 401),
];

/// A flow's HTTP status as a gRPC status code: Semaphore's mapping (`CodeFromStatus`), with
/// every status it did not name, which it sent as an invalid code, as UNKNOWN.
pub fn code(status: u16) -> u32 {
    match status {
        200..=299 => 0,
        408 => 1,  // CANCELLED
        400 => 3,  // INVALID_ARGUMENT
        504 => 4,  // DEADLINE_EXCEEDED
        404 => 5,  // NOT_FOUND
        409 => 6,  // ALREADY_EXISTS
        403 => 7,  // PERMISSION_DENIED
        429 => 8,  // RESOURCE_EXHAUSTED
        501 => 12, // UNIMPLEMENTED
        500 => 13, // INTERNAL
        503 => 14, // UNAVAILABLE
        401 => 16, // UNAUTHENTICATED
        _ => 2,    // UNKNOWN
    }
}

/// The client's deadline, in milliseconds from now: Connect's `connect-timeout-ms`, gRPC's
/// `grpc-timeout` (rounded up to a millisecond).
pub(super) fn timeout_ms(wire: Wire, headers: &[(String, String)]) -> Option<u64> {
    let header = |wanted: &str| headers.iter().find(|(name, _)| name == wanted).map(|(_, value)| value);
    if let Wire::Connect { .. } = wire {
        let value = header("connect-timeout-ms")?;
        return (value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse().ok())?;
    }
    let value = header("grpc-timeout")?;
    let digits = value.get(..value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let nanos_per_unit: u64 = match value.as_bytes().last()? {
        b'H' => 3_600_000_000_000,
        b'M' => 60_000_000_000,
        b'S' => 1_000_000_000,
        b'm' => 1_000_000,
        b'u' => 1_000,
        b'n' => 1,
        _ => return None,
    };
    Some(amount.saturating_mul(nanos_per_unit).div_ceil(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(timeout: &str) -> Vec<(String, String)> {
        vec![("grpc-timeout".to_string(), timeout.to_string())]
    }

    #[test]
    fn timeouts_in_every_unit() {
        assert_eq!(timeout_ms(Wire::Grpc, &headers("2S")), Some(2000));
        assert_eq!(timeout_ms(Wire::Grpc, &headers("150m")), Some(150));
        assert_eq!(timeout_ms(Wire::Grpc, &headers("1500u")), Some(2));
        assert_eq!(timeout_ms(Wire::Grpc, &headers("1n")), Some(1));
        assert_eq!(timeout_ms(Wire::Grpc, &headers("1H")), Some(3_600_000));
        assert_eq!(timeout_ms(Wire::Grpc, &headers("99999999M")), Some(5_999_999_940_000));
        for refused in ["", "S", "123456789S", "10x", "-1S", "1.5S", "5ß"] {
            assert_eq!(timeout_ms(Wire::Grpc, &headers(refused)), None, "{refused}");
        }
    }

    #[test]
    fn frames_are_read_whole_or_refused() {
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 8, 1]).ok(), Some(&[8u8, 1][..]));
        assert_eq!(unframe(&[0, 0, 0, 0, 0]).ok(), Some(&[][..]));
        assert_eq!(unframe(&[0, 0, 0]).map_err(|f| f.status).err(), Some(400));
        assert_eq!(unframe(&[0, 0, 0, 0, 3, 8, 1]).map_err(|f| f.status).err(), Some(400));
        assert_eq!(unframe(&[0, 0, 0, 0, 1, 8, 1]).map_err(|f| f.status).err(), Some(400));
        assert_eq!(unframe(&[1, 0, 0, 0, 1, 8]).map_err(|f| f.status).err(), Some(501));
    }

    #[test]
    fn failures_carry_their_code_and_escaped_message() {
        let reply = error_reply(Wire::Grpc, 404, "no user 7% – gone\n");
        assert_eq!(reply.status, 200);
        assert!(reply.body.is_empty());
        assert_eq!(
            reply.trailers,
            vec![
                ("grpc-status".to_string(), "5".to_string()),
                ("grpc-message".to_string(), "no user 7%25 %E2%80%93 gone%0A".to_string()),
            ]
        );
        assert_eq!(code(418), 2);
        assert_eq!(code(201), 0);

        let reply = error_reply(Wire::Connect { json: false }, 404, "no user 7");
        assert_eq!(reply.status, 404);
        assert_eq!(reply.body, br#"{"code":"not_found","message":"no user 7"}"#);
        let reply = error_reply(Wire::GrpcWeb { text: true }, 504, "late");
        assert_eq!(
            reply.headers,
            [
                ("content-type".to_string(), "application/grpc-web-text+proto".to_string()),
                ("grpc-status".to_string(), "4".to_string()),
                ("grpc-message".to_string(), "late".to_string()),
            ]
        );
    }

    #[test]
    fn grpc_web_answers_end_with_a_trailers_frame() {
        let metadata = vec![("x-served-by".to_string(), "semaphore".to_string())];
        let reply = answer(Wire::GrpcWeb { text: false }, vec![8, 1], metadata.clone());
        let trailers = b"grpc-status:0\r\nx-served-by:semaphore\r\n";
        let mut expected = vec![0, 0, 0, 0, 2, 8, 1, 0x80, 0, 0, 0, trailers.len() as u8];
        expected.extend_from_slice(trailers);
        assert_eq!(reply.body, expected);
        assert!(reply.trailers.is_empty());
        let text = answer(Wire::GrpcWeb { text: true }, vec![8, 1], metadata.clone());
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&text.body).unwrap(), expected);
        let connect = answer(Wire::Connect { json: false }, vec![8, 1], metadata);
        assert_eq!(connect.headers[1], ("trailer-x-served-by".to_string(), "semaphore".to_string()));
        assert_eq!(connect.body, [8, 1]);
    }

    #[test]
    fn connect_timeouts_are_milliseconds() {
        let headers = vec![("connect-timeout-ms".to_string(), "250".to_string())];
        assert_eq!(timeout_ms(Wire::Connect { json: true }, &headers), Some(250));
        let headers = vec![("connect-timeout-ms".to_string(), "25x".to_string())];
        assert_eq!(timeout_ms(Wire::Connect { json: true }, &headers), None);
    }
}
