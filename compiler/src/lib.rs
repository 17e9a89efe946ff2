//! Semaphore compiler: HCL flows + protobuf schemas -> checked flows -> binary plan.

pub mod config;
pub mod diagnostics;
pub mod envoy;
pub mod graphql;
pub mod inspect;
pub mod istio;
pub mod listener;
pub mod lower;
pub mod openapi;
pub mod schema;
pub mod template;

use std::path::Path;

pub use semaphore_plan::Plan;

use crate::diagnostics::Reporter;

/// A configuration compiled into a plan, with what the Envoy generator needs beside it.
#[derive(Debug)]
pub struct Compiled {
    pub plan: Plan,
    /// The `http` block: the listener the Envoy generator writes.
    pub listener: listener::Listener,
    /// Rendered warnings; empty when there are none.
    pub warnings: String,
    /// The GraphQL schema's `__schema` document, when a flow has a GraphQL endpoint.
    pub graphql: Option<serde_json::Value>,
}

/// Every error (and warning) of a compile, rendered like rustc's.
#[derive(Debug)]
pub struct Diagnostics {
    pub rendered: String,
    pub errors: usize,
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.rendered)
    }
}

impl std::error::Error for Diagnostics {}

/// How the plan names the Envoy clusters of services that do not name their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClusterNaming {
    /// `host:port`, the clusters `semaphore envoy` writes.
    #[default]
    HostPort,
    /// Istio's `outbound|<port>||<fqdn>`, short Kubernetes names expanded in this namespace.
    Istio { namespace: String },
}

#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    pub clusters: ClusterNaming,
}

pub fn compile_file(path: &Path) -> Result<Compiled, Diagnostics> {
    compile_file_with(path, &CompileOptions::default())
}

pub fn compile_file_with(path: &Path, options: &CompileOptions) -> Result<Compiled, Diagnostics> {
    let mut reporter = Reporter::default();
    let config = config::load(path, &mut reporter);
    // Every phase runs whatever went wrong before it, so that one run reports every mistake.
    let schemas = schema::Schemas::load(&config, &mut reporter);
    let (mut plan, graphql) = lower::lower(&config, &schemas, options, &mut reporter);
    plan.log_level = listener::log_level(&config, &mut reporter);
    let listener = listener::listener(&config, &mut reporter);
    if reporter.errors() > 0 {
        return Err(Diagnostics { rendered: reporter.render(), errors: reporter.errors() });
    }
    Ok(Compiled { plan, listener, warnings: reporter.render(), graphql })
}
