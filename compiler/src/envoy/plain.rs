//! Envoy alone, for comparison: what a request costs without the filter.

use serde_json::json;

use super::bootstrap::{document, http_connection_manager, listener, router_filter, to_yaml};
use super::clusters::upstream_cluster;

/// The cluster a plain proxy sends every request to.
pub const PLAIN_PROXY_CLUSTER: &str = "upstream";

/// A bootstrap with no filter: a listener at `listen` sending every request to one cluster,
/// [`PLAIN_PROXY_CLUSTER`], of the host at `upstream` (`host:port`); its admin at `admin`. The
/// floor of one hop the benchmark measures the filter against, and the end-to-end harness's own
/// check that Envoy and the test upstreams work before any filter runs.
pub fn plain_proxy_bootstrap(listen: &str, admin: &str, upstream: &str) -> String {
    let route_config = json!({ "virtual_hosts": [{
        "name": "all",
        "domains": ["*"],
        "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": PLAIN_PROXY_CLUSTER } }],
    }] });
    let manager = http_connection_manager("proxy", route_config, vec![router_filter()]);
    let listener = listener("proxy", listen, json!({ "filters": [manager] }));
    to_yaml(&document(admin, listener, vec![upstream_cluster(PLAIN_PROXY_CLUSTER, upstream, "1s")]))
}
