//! Handles and assets inside values: a [`Handle`](super::Handle) passed as an argument (e.g. to
//! a target with `wait_for`) or decoded from one travels as an execution reference, and an
//! [`Asset`](super::Asset) as an asset reference, written `{"type":"ref","index":i}` in the
//! data, as the Python SDK writes its `Execution` and `Asset` objects.
//!
//! Serde has no side channel, so the references of the value being encoded or decoded are kept
//! in a thread-local for the duration of one `serde_json` call (which never awaits).

use std::cell::RefCell;

use futures::future::{BoxFuture, Shared};
use serde_json::{Map, Value as Json};

use crate::model::{ExecutionId, Reference, RunId, StepId, TargetRef};

/// The key of the marker object a handle serializes to; [`super::encode_json`] turns
/// `{MARKER: i}` into `{"type":"ref","index":i}`.
pub(crate) const MARKER: &str = "\u{0}coflux:ref";

/// A handle's id, known once its submission is confirmed.
pub(crate) type SharedId = Shared<BoxFuture<'static, Result<ExecutionId, String>>>;

/// A handle passed on before its own submission was confirmed: its reference carries a
/// placeholder id (run 0, step number `index`) until the real one is known.
pub(crate) struct PendingRef {
    /// The placeholder's number.
    pub(crate) index: u32,
    /// The real id, once known.
    pub(crate) id: SharedId,
}

#[derive(Default)]
struct Encoding {
    references: Vec<Reference>,
}

thread_local! {
    static ENCODING: RefCell<Option<Encoding>> = const { RefCell::new(None) };
    static PENDING: RefCell<Vec<PendingRef>> = const { RefCell::new(Vec::new()) };
    static DECODING: RefCell<Option<Vec<Reference>>> = const { RefCell::new(None) };
}

/// Runs `encode` collecting the references of the handles it serializes.
pub(crate) fn encoding<R>(encode: impl FnOnce() -> R) -> (R, Vec<Reference>) {
    let outer = ENCODING.with(|e| e.borrow_mut().replace(Encoding::default()));
    let result = encode();
    let collected = ENCODING.with(|e| std::mem::replace(&mut *e.borrow_mut(), outer));
    (result, collected.unwrap_or_default().references)
}

/// Adds a handle's reference to the value being encoded; gives its index, or `None` outside
/// [`encoding`]. An id not confirmed yet gets a placeholder, which the submission replaces once
/// it is (see [`take_pending`]).
pub(crate) fn push_execution(id: &SharedId, target: &TargetRef) -> Result<Option<usize>, String> {
    if ENCODING.with(|e| e.borrow().is_none()) {
        return Ok(None);
    }
    let execution = match id.peek() {
        Some(Ok(id)) => *id,
        Some(Err(e)) => return Err(format!("the handle's submission failed: {e}")),
        None => PENDING.with(|p| {
            let mut pending = p.borrow_mut();
            let index = u32::try_from(pending.len() + 1).unwrap_or(u32::MAX);
            pending.push(PendingRef {
                index,
                id: id.clone(),
            });
            placeholder(index)
        }),
    };
    Ok(push_known(execution, target))
}

/// Adds the reference of a known execution to the value being encoded; gives its index, or
/// `None` outside [`encoding`].
pub(crate) fn push_known(execution: ExecutionId, target: &TargetRef) -> Option<usize> {
    push_reference(Reference::Execution {
        execution,
        module: target.module.clone(),
        target: target.name.clone(),
    })
}

/// Adds a reference to the value being encoded; gives its index, or `None` outside
/// [`encoding`].
pub(crate) fn push_reference(reference: Reference) -> Option<usize> {
    ENCODING.with(|e| {
        e.borrow_mut().as_mut().map(|encoding| {
            encoding.references.push(reference);
            encoding.references.len() - 1
        })
    })
}

/// The handles serialized since the last call whose ids were not yet confirmed.
pub(crate) fn take_pending() -> Vec<PendingRef> {
    PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// The placeholder id of pending reference `index`.
pub(crate) fn placeholder(index: u32) -> ExecutionId {
    StepId {
        run: RunId(0),
        number: index,
    }
    .execution(0)
}

/// Runs `decode` with `references` available to the handles it deserializes.
pub(crate) fn decoding<R>(references: &[Reference], decode: impl FnOnce() -> R) -> R {
    let outer = DECODING.with(|d| d.borrow_mut().replace(references.to_vec()));
    let result = decode();
    DECODING.with(|d| *d.borrow_mut() = outer);
    result
}

/// The reference at `index` of the value being decoded.
pub(crate) fn reference_at(index: usize) -> Result<Reference, String> {
    DECODING.with(|d| match d.borrow().as_ref().map(|r| r.get(index)) {
        Some(Some(reference)) => Ok(reference.clone()),
        Some(None) => Err(format!("the value has no reference {index}")),
        None => Err("a reference can only be decoded from an argument or result".into()),
    })
}

/// The execution reference at `index` of the value being decoded, and its target.
pub(crate) fn execution_at(index: usize) -> Result<(ExecutionId, TargetRef), String> {
    DECODING.with(|d| match d.borrow().as_ref().and_then(|r| r.get(index)) {
        Some(Reference::Execution {
            execution,
            module,
            target,
        }) => Ok((*execution, TargetRef::new(module.clone(), target.clone()))),
        Some(other) => Err(format!("reference {index} is not an execution: {other:?}")),
        None => Err(format!("the value has no reference {index}")),
    })
}

/// `{MARKER: i}` as `{"type":"ref","index":i}`, or `None` for other objects.
pub(crate) fn marker_to_ref(map: &Map<String, Json>) -> Option<Json> {
    match (map.len(), map.get(MARKER)) {
        (1, Some(index)) => {
            let mut out = Map::new();
            out.insert("type".into(), Json::String("ref".into()));
            out.insert("index".into(), index.clone());
            Some(Json::Object(out))
        }
        _ => None,
    }
}
