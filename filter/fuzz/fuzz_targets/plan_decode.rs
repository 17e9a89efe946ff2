//! Any bytes as a plan: decoding refuses or succeeds, and a decoded plan, however odd its
//! indices, runs requests without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use semaphore_filter::config::load_plan;
use semaphore_filter::engine::Engine;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = load_plan(data) else { return };
    let routes: Vec<(String, String)> =
        plan.endpoints.iter().take(4).map(|e| (e.method.clone(), format!("/{}", e.route.trim_start_matches('/')))).collect();
    let engine = Engine::new(plan);
    for (method, path) in routes {
        common::run(&engine, &method, &path, b"{\"id\":\"1\"}", b"{\"id\":\"2\",\"items\":[{}]}");
    }
});
