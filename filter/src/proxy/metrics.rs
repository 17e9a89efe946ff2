//! The filter's metrics: defined once per plan, recorded from the engine's events.

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::engine::{Engine, Event, SagaEvent, Sagas};

#[derive(Default)]
pub(super) struct Metrics {
    flows: Vec<FlowMetrics>,
    /// Compensation attempts dispatched, and those that failed.
    pub(super) rollbacks: Option<u32>,
    rollback_failures: Option<u32>,
    compensations_pending: Option<u32>,
    compensations_in_flight: Option<u32>,
    /// The gauges' values as last set.
    gauges: std::cell::Cell<Option<(u64, u64)>>,
}

struct FlowMetrics {
    requests: Option<u32>,
    failures: Option<u32>,
    duration: Option<u32>,
    nodes: Vec<NodeMetrics>,
}

struct NodeMetrics {
    calls: Option<u32>,
    failures: Option<u32>,
    duration: Option<u32>,
    compensations_succeeded: Option<u32>,
    compensations_retried: Option<u32>,
    compensations_given_up: Option<u32>,
}

/// Stat names hold letters, digits and `_`; other characters of a flow or resource name become
/// `_`.
fn stat_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

impl Metrics {
    pub(super) fn define(engine: &Engine) -> Metrics {
        let define = |kind: MetricType, name: String| match hostcalls::define_metric(kind, &name) {
            Ok(id) => Some(id),
            Err(status) => {
                warn!("cannot define the metric {name}: {status:?}");
                None
            }
        };
        let flows = engine
            .plan
            .flows
            .iter()
            .map(|flow| {
                let prefix = format!("semaphore.flow.{}", stat_name(&flow.name));
                FlowMetrics {
                    requests: define(MetricType::Counter, format!("{prefix}.requests")),
                    failures: define(MetricType::Counter, format!("{prefix}.failures")),
                    duration: define(MetricType::Histogram, format!("{prefix}.duration_ms")),
                    nodes: flow
                        .nodes
                        .iter()
                        .filter(|node| node.call.is_some())
                        .map(|node| {
                            let prefix = format!("{prefix}.resource.{}", stat_name(&node.name));
                            let compensation = |what: &str| match node.rollback {
                                Some(_) => {
                                    define(MetricType::Counter, format!("{prefix}.compensations.{what}"))
                                }
                                None => None,
                            };
                            NodeMetrics {
                                calls: define(MetricType::Counter, format!("{prefix}.calls")),
                                failures: define(MetricType::Counter, format!("{prefix}.failures")),
                                duration: define(MetricType::Histogram, format!("{prefix}.duration_ms")),
                                compensations_succeeded: compensation("succeeded"),
                                compensations_retried: compensation("retried"),
                                compensations_given_up: compensation("given_up"),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        Metrics {
            flows,
            rollbacks: define(MetricType::Counter, "semaphore.rollbacks".into()),
            rollback_failures: define(MetricType::Counter, "semaphore.rollback_failures".into()),
            compensations_pending: define(MetricType::Gauge, "semaphore.compensations.pending".into()),
            compensations_in_flight: define(MetricType::Gauge, "semaphore.compensations.in_flight".into()),
            gauges: Default::default(),
        }
    }

    pub(super) fn record_sagas(&self, engine: &Engine, sagas: &Sagas, events: &[SagaEvent]) {
        for event in events {
            let (flow, node) = match event {
                SagaEvent::Succeeded { flow, node }
                | SagaEvent::Retried { flow, node }
                | SagaEvent::GivenUp { flow, node } => (*flow, *node),
            };
            let Some(metrics) = self.node(engine, flow, node) else { continue };
            match event {
                SagaEvent::Succeeded { .. } => increment(metrics.compensations_succeeded),
                SagaEvent::Retried { .. } => {
                    increment(metrics.compensations_retried);
                    increment(self.rollback_failures);
                }
                SagaEvent::GivenUp { .. } => {
                    increment(metrics.compensations_given_up);
                    increment(self.rollback_failures);
                }
            }
        }
        // Gauges are set when they change, not on every answer.
        let gauges = (sagas.pending() as u64, sagas.in_flight() as u64);
        if self.gauges.replace(Some(gauges)) != Some(gauges) {
            observe(self.compensations_pending, gauges.0);
            observe(self.compensations_in_flight, gauges.1);
        }
    }

    fn node(&self, engine: &Engine, flow: usize, node: usize) -> Option<&NodeMetrics> {
        // Metrics exist for nodes with calls only; find this node's place among them.
        let nodes = &engine.plan.flows.get(flow)?.nodes;
        let position = nodes.get(..node)?.iter().filter(|n| n.call.is_some()).count();
        self.flows.get(flow)?.nodes.get(position)
    }

    pub(super) fn record(&self, engine: &Engine, event: Event) {
        match event {
            Event::Flow { flow, failed, duration_ms } => {
                let Some(metrics) = self.flows.get(flow) else { return };
                increment(metrics.requests);
                if failed {
                    increment(metrics.failures);
                }
                observe(metrics.duration, duration_ms);
            }
            Event::Call { flow, node, failed, duration_ms } => {
                let Some(metrics) = self.node(engine, flow, node) else { return };
                increment(metrics.calls);
                if failed {
                    increment(metrics.failures);
                }
                observe(metrics.duration, duration_ms);
            }
        }
    }
}

pub(super) fn increment(metric: Option<u32>) {
    if let Some(id) = metric {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

fn observe(metric: Option<u32>, value: u64) {
    if let Some(id) = metric {
        let _ = hostcalls::record_metric(id, value);
    }
}
