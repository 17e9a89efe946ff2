//! Unary gRPC methods served by axum: the length-prefixed message framing and the
//! `grpc-status` / `grpc-message` trailers, enough to stand in for a gRPC service behind Envoy.
//!
//! Serve the router with `axum::serve`: with axum's `http2` feature on it also accepts HTTP/2
//! without TLS (h2c with prior knowledge), which is how Envoy's gRPC clusters connect.
//!
//! ```no_run
//! use axum::Router;
//! use example_upstream::grpc::{self, Status};
//!
//! let app: Router = Router::new().route(
//!     "/echo.Echo/Say",
//!     grpc::unary(|message: &[u8]| {
//!         if message.is_empty() {
//!             return Err(Status::invalid_argument("say something"));
//!         }
//!         Ok(message.to_vec())
//!     }),
//! );
//! ```

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use http_body_util::{BodyExt, Full};

/// The gRPC status codes an example answers with.
pub mod code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const NOT_FOUND: u32 = 5;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
}

/// A failed call: a gRPC status code other than OK and a message for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: u32,
    pub message: String,
}

impl Status {
    pub fn new(code: u32, message: impl Into<String>) -> Status {
        Status { code, message: message.into() }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Status {
        Status::new(code::INVALID_ARGUMENT, message)
    }

    pub fn not_found(message: impl Into<String>) -> Status {
        Status::new(code::NOT_FOUND, message)
    }

    pub fn unimplemented(message: impl Into<String>) -> Status {
        Status::new(code::UNIMPLEMENTED, message)
    }

    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(code::INTERNAL, message)
    }
}

/// `(code, message)`, e.g. `(5, "no such user".to_owned())`.
impl From<(u32, String)> for Status {
    fn from((code, message): (u32, String)) -> Status {
        Status::new(code, message)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "gRPC status {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

/// A unary method whose handler takes the request message's bytes and answers the response
/// message's bytes, or a [`Status`]. Route it at `/package.Service/Method`.
pub fn unary<S, F>(handler: F) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(&[u8]) -> Result<Vec<u8>, Status> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    post(move |headers: HeaderMap, body: Bytes| {
        let handler = Arc::clone(&handler);
        async move {
            if !is_grpc(&headers) {
                return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected content-type application/grpc")
                    .into_response();
            }
            reply(unframe(&body).and_then(|message| handler(message)))
        }
    })
}

/// A unary method over prost messages: the request is decoded (a message that does not decode
/// is INVALID_ARGUMENT), the response encoded.
pub fn unary_message<S, Req, Res, F>(handler: F) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Req: prost::Message + Default,
    Res: prost::Message,
    F: Fn(Req) -> Result<Res, Status> + Send + Sync + 'static,
{
    unary(move |message: &[u8]| {
        let request = Req::decode(message)
            .map_err(|error| Status::invalid_argument(format!("the request does not decode: {error}")))?;
        handler(request).map(|response| response.encode_to_vec())
    })
}

/// The message inside a request body: one length-prefixed, uncompressed message.
pub fn unframe(body: &[u8]) -> Result<&[u8], Status> {
    let Some((&[compressed, a, b, c, d], message)) = body.split_first_chunk::<5>() else {
        return Err(Status::internal(format!(
            "a gRPC message has a 5-byte prefix; the body has {} bytes",
            body.len()
        )));
    };
    if compressed != 0 {
        return Err(Status::unimplemented("compressed messages are not supported"));
    }
    let length = u32::from_be_bytes([a, b, c, d]) as usize;
    if length != message.len() {
        return Err(Status::internal(format!(
            "the prefix announces a {length}-byte message, the body holds {} bytes",
            message.len()
        )));
    }
    Ok(message)
}

/// One message with its prefix: the uncompressed flag and the length, big-endian.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let length = u32::try_from(message.len()).expect("a gRPC message is shorter than 4 GiB");
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The response to a unary call: HTTP 200 with the framed message, then the `grpc-status`
/// trailer (0, or the error's code) and for errors the `grpc-message` trailer. The [`Status`]
/// also rides along as a response extension, for middleware that logs it.
pub fn reply(result: Result<Vec<u8>, Status>) -> Response {
    let (data, status) = match result {
        Ok(message) => (frame(&message), Status::new(code::OK, "")),
        Err(status) => (Vec::new(), status),
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status.code));
    if !status.message.is_empty() {
        if let Ok(message) = HeaderValue::try_from(percent_encode(&status.message)) {
            trailers.insert("grpc-message", message);
        }
    }
    let body = Full::new(Bytes::from(data)).with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response.extensions_mut().insert(status);
    response
}

/// `application/grpc`, or `application/grpc+proto` and the like.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
        value == "application/grpc"
            || value.starts_with("application/grpc+")
            || value.starts_with("application/grpc;")
    })
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%` itself.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_message_unframes_to_itself() {
        let framed = frame(b"hello");
        assert_eq!(framed, b"\0\0\0\0\x05hello");
        assert_eq!(unframe(&framed), Ok(&b"hello"[..]));
        assert_eq!(unframe(&frame(b"")), Ok(&b""[..]));
    }

    #[test]
    fn malformed_frames_are_statuses() {
        assert_eq!(unframe(b"\0\0\0").unwrap_err().code, code::INTERNAL);
        assert_eq!(unframe(b"\0\0\0\0\x09hello").unwrap_err().code, code::INTERNAL);
        assert_eq!(unframe(b"\x01\0\0\0\x05hello").unwrap_err().code, code::UNIMPLEMENTED);
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("no such user"), "no such user");
        assert_eq!(percent_encode("100% Ünïcode\n"), "100%25 %C3%9Cn%C3%AFcode%0A");
    }

    #[tokio::test]
    async fn a_reply_carries_its_status_in_trailers() {
        let response = reply(Err(Status::not_found("no such user")));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(response.extensions().get::<Status>().map(|status| status.code), Some(code::NOT_FOUND));
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(trailers["grpc-status"], "5");
        assert_eq!(trailers["grpc-message"], "no such user");
        assert!(collected.to_bytes().is_empty());

        let collected = reply(Ok(b"hi".to_vec())).into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(collected.trailers().unwrap().get("grpc-message"), None);
        assert_eq!(collected.to_bytes(), &b"\0\0\0\0\x02hi"[..]);
    }
}
