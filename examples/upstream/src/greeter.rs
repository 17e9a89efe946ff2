//! The greeter example's upstream: the gRPC service `helloworld.Greeter` with its one unary
//! method `SayHello`, over HTTP/2 without TLS.

use axum::Router;

use crate::grpc::{self, Status};

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The path of `SayHello`, as gRPC clients call it.
pub const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

pub fn router() -> Router {
    Router::new().route(SAY_HELLO, grpc::unary_message(say_hello))
}

/// Greets anyone by name, except `nobody`: NOT_FOUND.
pub fn say_hello(request: HelloRequest) -> Result<HelloReply, Status> {
    match request.name.as_str() {
        "" => Err(Status::invalid_argument("name is required")),
        "nobody" => Err(Status::not_found("there is nobody to greet")),
        name => Ok(HelloReply { message: format!("Hello {name}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name_except_nobody() {
        let reply = say_hello(HelloRequest { name: "Ada".into() }).unwrap();
        assert_eq!(reply.message, "Hello Ada");
        assert_eq!(
            say_hello(HelloRequest { name: "nobody".into() }).unwrap_err().code,
            grpc::code::NOT_FOUND
        );
        assert_eq!(say_hello(HelloRequest::default()).unwrap_err().code, grpc::code::INVALID_ARGUMENT);
    }
}
