//! End-to-end harness: real upstream servers ([`Upstream`]) and a real Envoy ([`Envoy`]) that a
//! test starts, talks to over loopback, and that are torn down when dropped, also on panic.
//!
//! Every server binds port 0, so tests run in parallel without clashing. The wasm filter is the
//! one `cargo xtask build` produced ([`wasm_path`]).

mod envoy;
mod semaphore;
mod upstream;
pub mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use envoy::{envoy_version, Envoy, StartError};
pub use semaphore::{start_semaphore, start_semaphore_with_args};
pub use upstream::{RecordedRequest, Reply, Upstream, UpstreamBuilder};

/// The workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().expect("the e2e crate lives one folder below the workspace root").to_path_buf()
}

/// The built filter: `SEMAPHORE_WASM` if set, else the release build under the workspace target
/// directory. Panics with what to run when it is missing.
pub fn wasm_path() -> PathBuf {
    let path = match std::env::var_os("SEMAPHORE_WASM") {
        Some(path) => PathBuf::from(path),
        None => {
            let target = match std::env::var_os("CARGO_TARGET_DIR") {
                Some(dir) => workspace_root().join(dir),
                None => workspace_root().join("target"),
            };
            target.join("wasm32-unknown-unknown/release/semaphore_filter.wasm")
        }
    };
    assert!(
        path.is_file(),
        "the Semaphore filter is not built: {} does not exist. Run `cargo xtask build` first \
         (or point SEMAPHORE_WASM at a built semaphore_filter.wasm).",
        path.display()
    );
    path
}

/// An HTTP client for loopback servers: it ignores proxy settings from the environment, which
/// would otherwise send 127.0.0.1 traffic elsewhere.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building an HTTP client")
}
