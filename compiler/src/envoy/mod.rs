//! The one writer of Envoy configuration, for Envoy 1.40: the bootstrap `semaphore envoy`
//! writes (one listener running the filter with the plan, one cluster per upstream host, and the
//! route that proxies' requests go on by) and the filter's configuration as ECDS and Istio carry
//! it.

mod bootstrap;
mod clusters;
mod cors;
mod filter;

pub use bootstrap::{bootstrap, EnvoyOptions, DEFAULT_ADMIN, DEFAULT_LISTEN};
pub use filter::{filter_config_resource, plugin_configuration, wasm_filter};

/// The name of the semaphore HTTP filter, in every bootstrap and manifest written here.
pub const SEMAPHORE_FILTER: &str = "semaphore";
/// Envoy's router, the last HTTP filter of every connection manager written here.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
