//! Semaphore's Envoy filter: runs the flows of a compiled plan inside Envoy.
//!
//! `engine` is plain Rust, tested natively and on wasm32; `proxy` is the only code that speaks
//! proxy-wasm.

pub mod config;
pub mod engine;

#[cfg(feature = "proxy-wasm")]
mod proxy;
