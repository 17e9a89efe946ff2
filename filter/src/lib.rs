//! Semaphore's Envoy filter: runs the flows of a compiled plan inside Envoy.
//!
//! `engine` is plain Rust, tested natively and on wasm32; `proxy` is the only code that speaks
//! proxy-wasm.
//!
//! # Small functions
//!
//! Envoy's V8 compiles every function of the module with TurboFan when it loads it, several
//! at a time, and TurboFan's working memory for a function is about a quarter of a MiB per KB
//! of its code (5 MiB for the 18 KB a large dispatch once made). Envoy's allocator keeps the
//! peak, so the largest functions set much of what the module costs every Envoy in memory.
//! Link-time optimization and wasm-opt inline a function called from one place into its caller
//! however large it is; wasm-opt is told not to (`xtask/src/build.rs`), and `#[inline(never)]`
//! keeps the cases of a large dispatch apart. `node --no-liftoff --no-wasm-lazy-compilation
//! --trace-wasm-compilation-times` lists each function's peak ("max bytes").

#[cfg(any(test, all(target_arch = "wasm32", feature = "proxy-wasm")))]
mod alloc;
pub mod config;
pub mod engine;

#[cfg(feature = "proxy-wasm")]
mod proxy;

// The module's: the engine's tests keep the standard allocator.
#[cfg(all(target_arch = "wasm32", feature = "proxy-wasm"))]
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator::new();
