//! The one writer of Envoy configuration, for Envoy 1.40, that the CLI, the end-to-end tests
//! and `cargo xtask` share: the bootstrap `semaphore envoy` writes (one listener running the
//! filter with the plan, one cluster per upstream host, and the route that proxies' requests go
//! on by); the filter's configuration as ECDS and Istio carry it; a plain proxy without the
//! filter; and the edits an operator makes to a generated bootstrap.

mod bootstrap;
mod clusters;
mod cors;
mod edit;
mod filter;
pub mod grpc_hop;
mod plain;
#[cfg(test)]
mod tests;

pub use bootstrap::{bootstrap, EnvoyOptions, DEFAULT_ADMIN, DEFAULT_LISTEN, HTTP_CONNECTION_MANAGER};
pub use edit::{append_routes, insert_before_router, insert_before_semaphore, replace_module, EditError};
pub use filter::{
    extension_config_resource, filter_config_resource, filter_from_ads, plugin_configuration, wasm_filter,
};
pub use plain::{plain_proxy_bootstrap, PLAIN_PROXY_CLUSTER};

/// The name of the semaphore HTTP filter, in every bootstrap and manifest written here.
pub const SEMAPHORE_FILTER: &str = "semaphore";
/// Envoy's router, the last HTTP filter of every connection manager written here.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
