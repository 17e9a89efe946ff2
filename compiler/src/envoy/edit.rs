//! Edits to a bootstrap written here, for what `semaphore envoy` leaves to the operator: HTTP
//! filters of their own around ours (jwt_authn before it, a buffer before the router), routes of
//! their own, or another module in the filter's place (the benchmark's minimal filter). YAML
//! in, YAML out.

use std::path::Path;

use serde_json::{json, Value};

use super::bootstrap::{to_yaml, HTTP_CONNECTION_MANAGER};
use super::filter::local_code;
use super::{ROUTER_FILTER, SEMAPHORE_FILTER};

/// Why a bootstrap could not be edited.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// `what` does not read as the YAML it should be.
    Unreadable { what: &'static str, reason: String },
    /// No HTTP connection manager runs an HTTP filter of this name.
    NoSuchFilter(&'static str),
    /// The connection manager running the semaphore filter has no virtual host with routes.
    NoVirtualHost,
    /// The semaphore filter's configuration comes over ECDS, not in the bootstrap.
    NotInline,
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Unreadable { what, reason } => write!(f, "cannot read {what}: {reason}"),
            EditError::NoSuchFilter(name) => {
                write!(f, "no HTTP connection manager in the bootstrap runs the `{name}` HTTP filter")
            }
            EditError::NoVirtualHost => {
                write!(f, "the connection manager running the `{SEMAPHORE_FILTER}` filter has no virtual host with routes")
            }
            EditError::NotInline => {
                write!(
                    f,
                    "the `{SEMAPHORE_FILTER}` filter's configuration comes over ECDS, not in the bootstrap"
                )
            }
        }
    }
}

impl std::error::Error for EditError {}

/// `bootstrap` with `filters`, a YAML list of HTTP filters, just before the semaphore filter,
/// in the connection manager that runs it: they see each request before a flow does.
pub fn insert_before_semaphore(bootstrap: &str, filters: &str) -> Result<String, EditError> {
    insert_before(bootstrap, filters, SEMAPHORE_FILTER)
}

/// `bootstrap` with `filters`, a YAML list of HTTP filters, just before Envoy's router, in the
/// connection manager that runs the semaphore filter: after it, they see what a proxy forwards.
pub fn insert_before_router(bootstrap: &str, filters: &str) -> Result<String, EditError> {
    insert_before(bootstrap, filters, ROUTER_FILTER)
}

/// `bootstrap` with `routes`, a YAML list of routes, after the generated ones in the virtual host
/// of the connection manager that runs the semaphore filter: they serve the requests no flow
/// endpoint matches, and the route proxies' requests go on by stays first.
pub fn append_routes(bootstrap: &str, routes: &str) -> Result<String, EditError> {
    let mut document = read(bootstrap, "the bootstrap")?;
    let routes = read_list(routes, "the routes (a YAML list)")?;
    let manager = connection_manager_running(&mut document, SEMAPHORE_FILTER)?;
    let generated = manager.pointer_mut("/route_config/virtual_hosts/0/routes").and_then(Value::as_array_mut);
    generated.ok_or(EditError::NoVirtualHost)?.extend(routes);
    Ok(to_yaml(&document))
}

/// `bootstrap` with the semaphore filter running the module `wasm` with `configuration` (its
/// plugin configuration) instead: the same Envoy, listener and clusters around another module.
pub fn replace_module(bootstrap: &str, wasm: &Path, configuration: &str) -> Result<String, EditError> {
    let mut document = read(bootstrap, "the bootstrap")?;
    let http_filters = http_filters_running(&mut document, SEMAPHORE_FILTER)?;
    let semaphore = http_filters.iter_mut().find(|filter| filter["name"] == SEMAPHORE_FILTER);
    let config = semaphore.and_then(|filter| filter.pointer_mut("/typed_config/config"));
    let config = config.ok_or(EditError::NotInline)?;
    config["vm_config"]["code"] = local_code(wasm);
    config["configuration"]["value"] = json!(configuration);
    Ok(to_yaml(&document))
}

fn insert_before(bootstrap: &str, filters: &str, name: &'static str) -> Result<String, EditError> {
    let mut document = read(bootstrap, "the bootstrap")?;
    let filters = read_list(filters, "the HTTP filters (a YAML list)")?;
    let http_filters = http_filters_running(&mut document, SEMAPHORE_FILTER)?;
    let at =
        http_filters.iter().position(|filter| filter["name"] == name).ok_or(EditError::NoSuchFilter(name))?;
    http_filters.splice(at..at, filters);
    Ok(to_yaml(&document))
}

fn read(yaml: &str, what: &'static str) -> Result<Value, EditError> {
    serde_norway::from_str(yaml).map_err(|error| EditError::Unreadable { what, reason: error.to_string() })
}

fn read_list(yaml: &str, what: &'static str) -> Result<Vec<Value>, EditError> {
    serde_norway::from_str(yaml).map_err(|error| EditError::Unreadable { what, reason: error.to_string() })
}

/// The configuration of the first connection manager, in any listener, that runs the HTTP
/// filter `name`.
fn connection_manager_running<'a>(
    bootstrap: &'a mut Value,
    name: &'static str,
) -> Result<&'a mut Value, EditError> {
    elements(bootstrap.pointer_mut("/static_resources/listeners"))
        .flat_map(|listener| elements(listener.get_mut("filter_chains")))
        .flat_map(|chain| elements(chain.get_mut("filters")))
        .filter(|filter| filter["name"] == HTTP_CONNECTION_MANAGER)
        .filter_map(|manager| manager.get_mut("typed_config"))
        .find(|config| {
            config["http_filters"]
                .as_array()
                .is_some_and(|filters| filters.iter().any(|filter| filter["name"] == name))
        })
        .ok_or(EditError::NoSuchFilter(name))
}

/// The HTTP filters of the first connection manager, in any listener, that runs `name`.
fn http_filters_running<'a>(
    bootstrap: &'a mut Value,
    name: &'static str,
) -> Result<&'a mut Vec<Value>, EditError> {
    let http_filters = connection_manager_running(bootstrap, name)?["http_filters"].as_array_mut();
    http_filters.ok_or(EditError::NoSuchFilter(name))
}

/// The elements of an array; none when the value is absent or not an array.
fn elements(value: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
    value.and_then(Value::as_array_mut).into_iter().flatten()
}
