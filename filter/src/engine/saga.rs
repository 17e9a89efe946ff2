//! The saga's policy once a flow has failed: its compensations run one after the other, in the
//! order the execution built them; each is tried again, with exponential backoff and jitter,
//! when it gets no answer, a 5xx or a timeout; at most so many run at once per VM, at most so
//! many wait; and what is given up is logged as a request someone can replay by hand.
//!
//! The adapter only dispatches (through the closure it passes in), keeps the timer ticking until
//! [`Sagas::next_wakeup`], and reports answers with [`Sagas::answered`].

use std::collections::VecDeque;
use std::time::Duration;

use crate::engine::value::{json, Map, Value};
use base64::Engine as _;
use log::{error, info, warn};

use super::codec;
use super::Callout;

/// The header carrying a flow execution's id, on every call and every compensation, so that
/// upstreams can make both idempotent.
pub const EXECUTION_ID_HEADER: &str = "x-semaphore-execution-id";

/// One compensating call of a failed flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Compensation {
    pub execution_id: String,
    /// Indices into the plan's flows and the flow's nodes, for metrics.
    pub flow: usize,
    pub node: usize,
    /// Names, for logs.
    pub flow_name: String,
    pub node_name: String,
    pub callout: Callout,
    /// Attempts after the first before it is given up.
    pub retries: u32,
}

impl Compensation {
    /// Everything needed to send it again by hand, as one line of JSON.
    pub fn replay(&self) -> String {
        let header = |name: &str| self.callout.header(name).unwrap_or_default().to_string();
        let headers: Map = self
            .callout
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with(':'))
            .map(|(name, value)| (name.to_string(), json!(value)))
            .collect();
        let body = self.callout.body.as_deref().unwrap_or_default();
        let body = match std::str::from_utf8(body) {
            Ok(text) => json!(text),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(body) }),
        };
        let mut replay = json!({
            "execution": self.execution_id,
            "flow": self.flow_name,
            "resource": self.node_name,
            "cluster": self.callout.cluster,
            "authority": self.callout.authority,
            "method": header(":method"),
            "path": header(":path"),
            "headers": headers,
            "body": body,
        });
        if let (Some(grpc), Value::Object(members)) = (&self.callout.grpc, &mut replay) {
            members.insert("grpc".into(), Value::String(format!("{}/{}", grpc.service, grpc.method)));
        }
        codec::json_text(&replay)
    }
}

/// How many compensations a VM runs at once, and how many wait beyond those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub in_flight: usize,
    pub queued: usize,
}

impl Default for Limits {
    /// A failing target then holds a few dozen connections per worker, not Envoy's whole pool,
    /// so calls to the same cluster keep getting through.
    fn default() -> Self {
        Limits { in_flight: 32, queued: 4096 }
    }
}

/// The backoff before attempt `n + 1`: 100 ms doubling up to 10 s, with full jitter.
const BACKOFF_BASE_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 10_000;

/// What happened to compensations, for metrics (the adapter counts them) and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaEvent {
    Succeeded {
        flow: usize,
        node: usize,
    },
    /// An attempt failed and another is scheduled.
    Retried {
        flow: usize,
        node: usize,
    },
    GivenUp {
        flow: usize,
        node: usize,
    },
}

/// The compensations of one failed flow, run one after the other.
struct Saga {
    pending: VecDeque<Compensation>,
    /// The head is in flight under this token.
    token: Option<u32>,
    /// Attempts of the head made so far.
    attempts: u32,
    /// The head waits for its backoff until then.
    not_before_ms: u64,
}

pub struct Sagas {
    sagas: VecDeque<Saga>,
    limits: Limits,
    /// Jitter's generator (splitmix64): spreads retries so a recovering target is not hit by
    /// every failed compensation at once.
    random: u64,
    /// Backoff is skipped: the VM is draining and has no time to wait.
    draining: bool,
}

impl Sagas {
    pub fn new(limits: Limits, seed: u64) -> Sagas {
        Sagas { sagas: VecDeque::new(), limits, random: seed, draining: false }
    }

    /// Compensations waiting (not in flight).
    pub fn pending(&self) -> usize {
        self.sagas.iter().map(|s| s.pending.len().saturating_sub(usize::from(s.token.is_some()))).sum()
    }

    pub fn in_flight(&self) -> usize {
        self.sagas.iter().filter(|s| s.token.is_some()).count()
    }

    pub fn is_idle(&self) -> bool {
        self.sagas.is_empty()
    }

    /// Takes a failed flow's compensations. Beyond the queue's bound, they are given up at once,
    /// logged for replay: nothing is dropped in silence.
    pub fn admit(&mut self, compensations: Vec<Compensation>) -> Vec<SagaEvent> {
        if compensations.is_empty() {
            return Vec::new();
        }
        if self.pending() + compensations.len() > self.limits.queued {
            return compensations
                .iter()
                .map(|c| give_up(c, &format!("{} compensations are waiting already", self.limits.queued)))
                .collect();
        }
        self.sagas.push_back(Saga {
            pending: compensations.into(),
            token: None,
            attempts: 0,
            not_before_ms: 0,
        });
        Vec::new()
    }

    /// Dispatches what is due, within the in-flight limit, oldest saga first.
    pub fn pump(
        &mut self,
        now_ms: u64,
        dispatch: &mut dyn FnMut(&Callout) -> Result<u32, String>,
    ) -> Vec<SagaEvent> {
        let mut events = Vec::new();
        let mut in_flight = self.in_flight();
        for index in 0..self.sagas.len() {
            if in_flight >= self.limits.in_flight {
                break;
            }
            loop {
                let callout = match self.sagas.get(index) {
                    Some(saga) if saga.token.is_none() && (saga.not_before_ms <= now_ms || self.draining) => {
                        match saga.pending.front() {
                            Some(head) => head.callout.clone(),
                            None => break,
                        }
                    }
                    _ => break,
                };
                let dispatched = dispatch(&callout);
                let Some(saga) = self.sagas.get_mut(index) else { break };
                saga.attempts += 1;
                match dispatched {
                    Ok(token) => {
                        if let Some(head) = saga.pending.front() {
                            info!(
                                "flow `{}` ({}): compensating `{}` (attempt {})",
                                head.flow_name, head.execution_id, head.node_name, saga.attempts
                            );
                        }
                        saga.token = Some(token);
                        in_flight += 1;
                        break;
                    }
                    // Refused before it left: an attempt like one that got no answer.
                    Err(reason) => events.extend(self.after_failure(index, &reason, now_ms)),
                }
            }
        }
        self.sagas.retain(|s| !s.pending.is_empty());
        events
    }

    /// Whether `token` is a compensation in flight.
    pub fn awaits(&self, token: u32) -> bool {
        self.sagas.iter().any(|s| s.token == Some(token))
    }

    /// The answer of the compensation in flight under `token`; `status` is `None` when none
    /// arrived (refused, reset, timed out). Returns `None` when the token is not a compensation's.
    pub fn answered(&mut self, token: u32, status: Option<u16>, now_ms: u64) -> Option<Vec<SagaEvent>> {
        let index = self.sagas.iter().position(|s| s.token == Some(token))?;
        let saga = self.sagas.get_mut(index)?;
        saga.token = None;
        let events = match status {
            Some(200..=299) => {
                let done = saga.pending.pop_front()?;
                saga.attempts = 0;
                saga.not_before_ms = 0;
                info!("flow `{}` ({}): compensated `{}`", done.flow_name, done.execution_id, done.node_name);
                vec![SagaEvent::Succeeded { flow: done.flow, node: done.node }]
            }
            // The target refused it for what it is: another attempt would be refused the same.
            Some(status @ 400..=499) => {
                let done = saga.pending.pop_front()?;
                saga.attempts = 0;
                vec![give_up(&done, &format!("the target answered {status}"))]
            }
            other => {
                let reason = match other {
                    Some(status) => format!("the target answered {status}"),
                    None => "no answer".to_string(),
                };
                self.after_failure(index, &reason, now_ms)
            }
        };
        self.sagas.retain(|s| !s.pending.is_empty());
        Some(events)
    }

    /// A failed attempt of saga `index`'s head: schedule another, or give it up and go on with
    /// the next compensation of the saga.
    fn after_failure(&mut self, index: usize, reason: &str, now_ms: u64) -> Vec<SagaEvent> {
        let jitter = self.next_random();
        let Some(saga) = self.sagas.get_mut(index) else { return Vec::new() };
        let Some(head) = saga.pending.front() else { return Vec::new() };
        if saga.attempts <= head.retries {
            let ceiling = BACKOFF_BASE_MS.saturating_mul(1 << saga.attempts.min(16)).min(BACKOFF_MAX_MS);
            let delay = jitter % (ceiling + 1);
            warn!(
                "flow `{}` ({}): compensating `{}` failed ({reason}); attempt {} in {delay} ms",
                head.flow_name,
                head.execution_id,
                head.node_name,
                saga.attempts + 1
            );
            saga.not_before_ms = now_ms + delay;
            return vec![SagaEvent::Retried { flow: head.flow, node: head.node }];
        }
        let attempts = saga.attempts;
        saga.attempts = 0;
        saga.not_before_ms = 0;
        let Some(done) = saga.pending.pop_front() else { return Vec::new() };
        vec![give_up(&done, &format!("{reason} after {attempts} attempt(s)"))]
    }

    /// When the earliest waiting compensation is due, for the adapter's timer; `None` when
    /// nothing waits on time.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.sagas
            .iter()
            .filter(|s| s.token.is_none() && !s.pending.is_empty())
            .map(|s| s.not_before_ms)
            .min()
    }

    /// The VM is going away: what waits goes out now, without backoff and past the in-flight
    /// limit, and failed attempts are retried at once.
    pub fn drain(&mut self) {
        self.draining = true;
        self.limits.in_flight = usize::MAX;
    }

    /// Every compensation not yet confirmed, as replayable lines: what a VM that may be stopped
    /// at any moment logs before it tries to finish them.
    pub fn unconfirmed(&self) -> Vec<String> {
        self.sagas
            .iter()
            .flat_map(|saga| saga.pending.iter())
            .map(|c| {
                format!(
                    "flow `{}` ({}): `{}` is not compensated yet; if no \"compensated `{}`\" line follows, replay: {}",
                    c.flow_name,
                    c.execution_id,
                    c.node_name,
                    c.node_name,
                    c.replay()
                )
            })
            .collect()
    }

    /// Out of time: every compensation not done is given up, logged for replay.
    pub fn abandon(&mut self) -> Vec<SagaEvent> {
        let mut events = Vec::new();
        for saga in std::mem::take(&mut self.sagas) {
            let reason =
                if saga.token.is_some() { "still in flight when the VM stopped" } else { "the VM stopped" };
            events.extend(saga.pending.iter().map(|c| give_up(c, reason)));
        }
        events
    }

    fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn give_up(compensation: &Compensation, reason: &str) -> SagaEvent {
    error!(
        "flow `{}` ({}): gave up compensating `{}`: {reason}; replay: {}",
        compensation.flow_name,
        compensation.execution_id,
        compensation.node_name,
        compensation.replay()
    );
    SagaEvent::GivenUp { flow: compensation.flow, node: compensation.node }
}

/// How long a drained VM waits for its compensations before giving up what is left.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn compensation(node: usize, retries: u32) -> Compensation {
        Compensation {
            execution_id: "exec-1".into(),
            flow: 0,
            node,
            flow_name: "checkout".into(),
            node_name: format!("step{node}"),
            callout: Callout {
                cluster: "payments:80".into(),
                authority: "payments".into(),
                headers: vec![
                    (":method".into(), "POST".into()),
                    (":path".into(), format!("/undo/{node}").into()),
                    (EXECUTION_ID_HEADER.into(), "exec-1".into()),
                ],
                body: Some(br#"{"id":"c-1"}"#.to_vec()),
                timeout: Duration::from_secs(1),
                grpc: None,
            },
            retries,
        }
    }

    /// Dispatches into `sent` (path per token), tokens counting from 1.
    fn pump(sagas: &mut Sagas, now: u64, sent: &mut Vec<String>) -> Vec<SagaEvent> {
        sagas.pump(now, &mut |callout| {
            sent.push(callout.header(":path").unwrap_or_default().to_string());
            Ok(sent.len() as u32)
        })
    }

    #[test]
    fn a_failing_compensation_is_retried_with_backoff_until_it_succeeds() {
        let mut sagas = Sagas::new(Limits::default(), 7);
        let mut sent = Vec::new();
        assert!(sagas.admit(vec![compensation(1, 5)]).is_empty());
        pump(&mut sagas, 0, &mut sent);
        assert_eq!(sent, ["/undo/1"]);
        assert_eq!((sagas.pending(), sagas.in_flight()), (0, 1));

        let events = sagas.answered(1, Some(500), 0).unwrap();
        assert_eq!(events, [SagaEvent::Retried { flow: 0, node: 1 }]);
        let due = sagas.next_wakeup().unwrap();
        assert!(due <= 200, "at most 100 ms doubled once: {due}");
        // Not before it is due.
        if due > 0 {
            pump(&mut sagas, due - 1, &mut sent);
            assert_eq!(sent.len(), 1);
        }
        pump(&mut sagas, due, &mut sent);
        assert_eq!(sent.len(), 2);

        assert_eq!(sagas.answered(2, None, due).unwrap(), [SagaEvent::Retried { flow: 0, node: 1 }]);
        let due = sagas.next_wakeup().unwrap();
        pump(&mut sagas, due, &mut sent);
        assert_eq!(sagas.answered(3, Some(200), due).unwrap(), [SagaEvent::Succeeded { flow: 0, node: 1 }]);
        assert!(sagas.is_idle());
        assert_eq!(sent, ["/undo/1", "/undo/1", "/undo/1"]);
    }

    #[test]
    fn a_compensation_is_given_up_after_its_retries_and_the_saga_goes_on() {
        let mut sagas = Sagas::new(Limits::default(), 7);
        let mut sent = Vec::new();
        sagas.admit(vec![compensation(2, 1), compensation(1, 0)]);
        pump(&mut sagas, 0, &mut sent);
        assert_eq!(sent, ["/undo/2"], "one at a time, in the saga's order");
        assert_eq!(sagas.answered(1, Some(503), 0).unwrap(), [SagaEvent::Retried { flow: 0, node: 2 }]);
        pump(&mut sagas, 10_000, &mut sent);
        assert_eq!(sagas.answered(2, Some(503), 10_000).unwrap(), [SagaEvent::GivenUp { flow: 0, node: 2 }]);
        pump(&mut sagas, 10_000, &mut sent);
        assert_eq!(sent, ["/undo/2", "/undo/2", "/undo/1"]);
        // A 4xx is the target refusing it: not retried.
        assert_eq!(sagas.answered(3, Some(409), 10_000).unwrap(), [SagaEvent::GivenUp { flow: 0, node: 1 }]);
        assert!(sagas.is_idle());
        assert_eq!(sagas.answered(99, Some(200), 0), None, "not a compensation's token");
    }

    #[test]
    fn compensations_in_flight_and_waiting_are_bounded() {
        let mut sagas = Sagas::new(Limits { in_flight: 2, queued: 3 }, 7);
        let mut sent = Vec::new();
        for node in 0..3 {
            assert!(sagas.admit(vec![compensation(node, 0)]).is_empty());
        }
        pump(&mut sagas, 0, &mut sent);
        assert_eq!((sagas.in_flight(), sagas.pending()), (2, 1), "two at once, the third waits");
        let refused = sagas.admit(vec![compensation(7, 0), compensation(8, 0), compensation(9, 0)]);
        assert_eq!(refused.len(), 3, "beyond the queue's bound: given up, logged for replay");
        assert!(refused.iter().all(|e| matches!(e, SagaEvent::GivenUp { .. })));
        sagas.answered(1, Some(200), 0);
        pump(&mut sagas, 0, &mut sent);
        assert_eq!(sent, ["/undo/0", "/undo/1", "/undo/2"]);
    }

    #[test]
    fn a_dispatch_envoy_refuses_is_a_failed_attempt() {
        let mut sagas = Sagas::new(Limits::default(), 7);
        sagas.admit(vec![compensation(1, 0)]);
        let events = sagas.pump(0, &mut |_| Err("no such cluster".into()));
        assert_eq!(events, [SagaEvent::GivenUp { flow: 0, node: 1 }]);
        assert!(sagas.is_idle());
    }

    #[test]
    fn draining_sends_what_waits_at_once_and_gives_up_the_rest_when_out_of_time() {
        let mut sagas = Sagas::new(Limits { in_flight: 1, queued: 10 }, 7);
        let mut sent = Vec::new();
        sagas.admit(vec![compensation(1, 5)]);
        sagas.admit(vec![compensation(2, 5)]);
        pump(&mut sagas, 0, &mut sent);
        sagas.answered(1, Some(500), 0);
        sagas.drain();
        pump(&mut sagas, 0, &mut sent);
        assert_eq!(sent, ["/undo/1", "/undo/1", "/undo/2"], "no backoff, no in-flight limit");
        let unconfirmed = sagas.unconfirmed();
        assert_eq!(unconfirmed.len(), 2);
        assert!(unconfirmed[0].contains("`step1` is not compensated yet"), "{}", unconfirmed[0]);
        assert!(unconfirmed[0].contains(r#""path":"/undo/1""#), "{}", unconfirmed[0]);
        let given_up = sagas.abandon();
        assert_eq!(given_up.len(), 2);
        assert!(sagas.is_idle());
    }

    #[test]
    fn a_given_up_compensation_can_be_replayed_from_its_log_line() {
        let replay: Value = serde_json::from_str(&compensation(3, 0).replay()).unwrap();
        assert_eq!(
            replay,
            json!({
                "execution": "exec-1", "flow": "checkout", "resource": "step3",
                "cluster": "payments:80", "authority": "payments", "method": "POST", "path": "/undo/3",
                "headers": { EXECUTION_ID_HEADER: "exec-1" }, "body": "{\"id\":\"c-1\"}"
            })
        );
    }
}
