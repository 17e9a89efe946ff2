//! The data of one execution: what each node has come to, and what its templates read from
//! it. The execution (`execution.rs`) decides; this only holds and answers.

use crate::engine::value::{json, Value};
use semaphore_plan::{Property, Reference, ERROR_SLOT, INPUT_SLOT};

use super::host::Callout;

pub(super) enum NodeState {
    Waiting,
    Running(Running),
    Done(Completed),
    /// Its condition was false: it leaves its values absent.
    Skipped,
    /// Its call failed; `error` is its decoded error body, for `{{ node.error:path }}`.
    Failed {
        error: Value,
    },
    /// Its call timed out or was reset after it was sent: the upstream may have performed it.
    /// What it sent is known, what it answered is not.
    Unknown {
        request: Value,
        params: Value,
    },
}

impl NodeState {
    pub(super) fn settled(&self) -> bool {
        matches!(self, NodeState::Done(_) | NodeState::Skipped)
    }
}

pub(super) struct Running {
    pub(super) token: u32,
    pub(super) request: Value,
    pub(super) params: Value,
    pub(super) callout: Callout,
    pub(super) attempt: u32,
    pub(super) started_ms: u64,
}

pub(super) struct Completed {
    pub(super) request: Value,
    pub(super) response: Value,
    pub(super) headers: Vec<(String, String)>,
    pub(super) params: Value,
}

/// The failure being handled: what `{{ error:... }}` and `{{ error.params:... }}` read.
pub(super) struct Handled {
    /// `{message, status}`.
    pub(super) error: Value,
    pub(super) params: Value,
}

impl Handled {
    pub(super) fn new(status: u16, message: &str, params: Value) -> Handled {
        Handled { error: json!({ "message": message, "status": status }), params }
    }
}

/// What a flow's templates read: its input, the request's headers, each node's state, and the
/// failure being handled.
pub(super) struct Scope {
    pub(super) input: Value,
    pub(super) headers: Vec<(String, String)>,
    pub(super) nodes: Vec<NodeState>,
    pub(super) failure: Option<Handled>,
}

impl Scope {
    /// Replaces a node's state, returning the one before.
    pub(super) fn set(&mut self, index: usize, state: NodeState) -> Option<NodeState> {
        self.nodes.get_mut(index).map(|slot| std::mem::replace(slot, state))
    }

    /// The node whose call `token` is.
    pub(super) fn running(&self, token: u32) -> Option<usize> {
        self.nodes.iter().position(|n| matches!(n, NodeState::Running(r) if r.token == token))
    }

    pub(super) fn in_flight(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n, NodeState::Running(_)))
    }

    /// The value a reference reads; `None` when it is absent.
    pub(super) fn resolve(&self, reference: &Reference) -> Option<Value> {
        if reference.property() != Property::Header {
            return self.get(reference).cloned();
        }
        let headers = match reference.slot {
            INPUT_SLOT => &self.headers,
            slot => match self.nodes.get((slot as usize).checked_sub(1)?)? {
                NodeState::Done(completed) => &completed.headers,
                _ => return None,
            },
        };
        let name = reference.path.first()?;
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| Value::String(v.clone()))
    }

    /// The value a reference reads, where it is held; `None` when it is absent, and for a
    /// header, which is text rather than a value.
    pub(super) fn get(&self, reference: &Reference) -> Option<&Value> {
        let property = reference.property();
        let root = match reference.slot {
            INPUT_SLOT => match property {
                Property::Header => return None,
                _ => &self.input,
            },
            ERROR_SLOT => {
                let handled = self.failure.as_ref()?;
                match property {
                    Property::Params => &handled.params,
                    _ => &handled.error,
                }
            }
            slot => match self.nodes.get((slot as usize).checked_sub(1)?)? {
                NodeState::Done(completed) => match property {
                    Property::Header => return None,
                    Property::Request => &completed.request,
                    Property::Response => &completed.response,
                    Property::Params => &completed.params,
                    Property::Error => return None,
                },
                NodeState::Failed { error } if property == Property::Error => error,
                NodeState::Unknown { request, .. } if property == Property::Request => request,
                NodeState::Unknown { params, .. } if property == Property::Params => params,
                _ => return None,
            },
        };
        let mut current = root;
        for name in &reference.path {
            current = current.as_object()?.get(name)?;
        }
        Some(current)
    }
}
