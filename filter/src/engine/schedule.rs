//! The scheduling policy of a flow, as pure functions of the plan and the nodes' states: when a
//! node is ready, which failures are retried, how long a call may take under the flow's
//! deadline, and in which order completed calls are compensated.

use semaphore_plan::{Call, Flow, Node};

/// A node is ready once every node it depends on has settled (completed or skipped).
pub fn ready(node: &Node, settled: impl Fn(usize) -> bool) -> bool {
    node.depends_on.iter().all(|&dependency| settled(dependency as usize))
}

/// Failures worth another attempt: nothing arrived, or the upstream said it could not serve.
fn transient(status: Option<u16>) -> bool {
    matches!(status, None | Some(502..=504))
}

fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
}

/// Whether a failed attempt (`attempt` counts from 0) is tried again: a transient failure of an
/// idempotent call (or one allowed to retry anyway) with attempts left, before the deadline.
pub fn retries(call: &Call, attempt: u32, status: Option<u16>, past_deadline: bool) -> bool {
    transient(status)
        && attempt < call.retries
        && (idempotent(&call.http_method) || call.retry_unsafe)
        && !past_deadline
}

/// The time a call may take: its own timeout, cut to what is left of the flow's deadline;
/// `None` once the deadline has passed.
pub fn call_timeout_ms(call: &Call, deadline_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    let own = u64::from(call.timeout_ms);
    match deadline_ms {
        Some(deadline) if now_ms >= deadline => None,
        Some(deadline) => Some(own.min(deadline - now_ms)),
        None => Some(own),
    }
}

/// How long a request waits for the first data of its body, for a flow without a timeout.
/// None comes when Envoy does not deliver bodies to the filter (see the adapter).
pub const BODY_WAIT_MS: u64 = 10_000;

/// How long a request waits for the first data of its body: its flow's timeout, else
/// [`BODY_WAIT_MS`].
pub fn body_wait_ms(flow: Option<&Flow>) -> u64 {
    flow.map(|flow| u64::from(flow.timeout_ms)).filter(|ms| *ms > 0).unwrap_or(BODY_WAIT_MS)
}

/// How a completed node's call ended, as the rollback order needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It answered as expected.
    Done,
    /// It timed out or was reset after it was sent: it may have been performed.
    Unknown,
}

/// What becomes of a completed node when its flow fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollback {
    /// Its `rollback` call runs.
    Compensate(usize),
    /// It may have been performed, and its rollback needs the answer that never came: it is
    /// logged for a person to compensate.
    GiveUp(usize),
}

/// The rollbacks of a failed flow, from its nodes in the order their calls completed: the last
/// completed first, so that a node is compensated only after every completed node that
/// depended on it. Nodes without a `rollback` are left out.
pub fn rollbacks(flow: &Flow, completed: &[(usize, Completion)]) -> Vec<Rollback> {
    completed
        .iter()
        .rev()
        .filter_map(|&(index, completion)| {
            let node = flow.nodes.get(index)?;
            node.rollback.as_ref()?;
            Some(match completion {
                Completion::Unknown if node.rollback_reads_response => Rollback::GiveUp(index),
                Completion::Done | Completion::Unknown => Rollback::Compensate(index),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn node(name: &str, depends_on: &[u32], rollback: bool) -> Node {
        Node {
            name: name.into(),
            depends_on: depends_on.to_vec(),
            call: Some(Call::default()),
            rollback: rollback.then(Call::default),
            ..Default::default()
        }
    }

    /// create-order, then reserve-stock and charge-card on it, then ship after both.
    fn checkout() -> Flow {
        Flow {
            nodes: vec![
                node("order", &[], true),
                node("stock", &[0], true),
                node("card", &[0], true),
                node("ship", &[1, 2], false),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_last_completed_is_compensated_first() {
        let flow = checkout();
        let completed = [(0, Completion::Done), (2, Completion::Done), (1, Completion::Done)];
        assert_eq!(
            rollbacks(&flow, &completed),
            [Rollback::Compensate(1), Rollback::Compensate(2), Rollback::Compensate(0)]
        );
    }

    #[test]
    fn a_node_is_compensated_after_every_completed_node_that_depended_on_it() {
        let flow = checkout();
        // Dependents complete after their dependencies, so any completion order the scheduler
        // can produce puts them first in the rollback order.
        for completed in [[0, 1, 2], [0, 2, 1]] {
            let completed: Vec<_> = completed.iter().map(|&i| (i, Completion::Done)).collect();
            let order = rollbacks(&flow, &completed);
            let position = |index| order.iter().position(|r| *r == Rollback::Compensate(index));
            for (index, node) in flow.nodes.iter().enumerate() {
                for &dependency in &node.depends_on {
                    if let (Some(dependent), Some(dependency)) =
                        (position(index), position(dependency as usize))
                    {
                        assert!(dependent < dependency, "{order:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn nodes_without_a_rollback_are_left_out() {
        let flow = checkout();
        let completed = [(0, Completion::Done), (1, Completion::Done), (3, Completion::Done)];
        assert_eq!(rollbacks(&flow, &completed), [Rollback::Compensate(1), Rollback::Compensate(0)]);
    }

    #[test]
    fn an_unknown_outcome_is_compensated_unless_its_rollback_reads_the_answer() {
        let mut flow = checkout();
        let completed = [(0, Completion::Done), (1, Completion::Unknown), (2, Completion::Unknown)];
        if let Some(card) = flow.nodes.get_mut(2) {
            card.rollback_reads_response = true;
        }
        assert_eq!(
            rollbacks(&flow, &completed),
            [Rollback::GiveUp(2), Rollback::Compensate(1), Rollback::Compensate(0)]
        );
    }

    #[test]
    fn nothing_completed_nothing_to_compensate() {
        assert_eq!(rollbacks(&checkout(), &[]), []);
    }

    #[test]
    fn only_transient_failures_of_idempotent_calls_are_retried_while_attempts_and_time_remain() {
        let get = Call { http_method: "GET".into(), retries: 2, ..Default::default() };
        let post = Call { http_method: "POST".into(), ..get.clone() };
        assert!(retries(&get, 0, None, false));
        assert!(retries(&get, 1, Some(503), false));
        assert!(!retries(&get, 2, Some(503), false), "out of attempts");
        assert!(!retries(&get, 0, Some(500), false), "not transient");
        assert!(!retries(&get, 0, Some(502), true), "past the deadline");
        assert!(!retries(&post, 0, Some(502), false), "not idempotent");
        assert!(retries(&Call { retry_unsafe: true, ..post }, 0, Some(502), false));
    }

    #[test]
    fn a_call_gets_what_is_left_of_the_deadline() {
        let call = Call { timeout_ms: 1_000, ..Default::default() };
        assert_eq!(call_timeout_ms(&call, None, 50), Some(1_000));
        assert_eq!(call_timeout_ms(&call, Some(5_000), 4_700), Some(300));
        assert_eq!(call_timeout_ms(&call, Some(5_000), 1_000), Some(1_000));
        assert_eq!(call_timeout_ms(&call, Some(5_000), 5_000), None);
    }

    #[test]
    fn a_node_is_ready_once_its_dependencies_settled() {
        let flow = checkout();
        let ship = &flow.nodes[3];
        assert!(!ready(ship, |i| i == 1));
        assert!(ready(ship, |i| i == 1 || i == 2));
        assert!(ready(&flow.nodes[0], |_| false));
    }
}
