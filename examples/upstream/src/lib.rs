//! The upstream services of the bundled examples, one module each, so that the
//! `example-upstream` binary and the end-to-end tests serve the same routers; and [`grpc`], the
//! unary gRPC framing both use.

pub mod checkout;
pub mod getuser;
pub mod greeter;
pub mod grpc;
pub mod jwt;
