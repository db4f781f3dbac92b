//! Checkpoint writes of one execution (`checkpoint_update`): merged while a throttle window
//! is open, then sent to the host in order, one batch at a time. `flush` (an explicit
//! `cf.flush()`, and the pool before it reports how the execution ended) cuts the window
//! short and resolves once everything recorded so far is durable.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::{Checkpoints, ExecutionId};
use coflux_core::protocol::executor::{CheckpointUpdate, WireValue};
use tokio::sync::{Notify, watch};

use super::host::ExecutorHost;
use super::values;

/// How long writes are merged before they are sent (unless flushed earlier).
const THROTTLE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Pending {
    set: BTreeMap<String, WireValue>,
    reset: BTreeSet<String>,
    /// Updates recorded so far.
    recorded: u64,
    /// Whether a task is sending.
    draining: bool,
    /// The last failure to store a batch (reported by the next flush).
    failed: Option<String>,
}

/// An execution's checkpoint writes not yet durable.
pub(crate) struct CheckpointQueue {
    execution: ExecutionId,
    scratch: PathBuf,
    pending: RefCell<Pending>,
    /// Updates durable so far (a count of `recorded`).
    committed: watch::Sender<u64>,
    urgent: Notify,
}

impl CheckpointQueue {
    pub(crate) fn new(execution: ExecutionId, scratch: PathBuf) -> Rc<Self> {
        Rc::new(Self {
            execution,
            scratch,
            pending: RefCell::default(),
            committed: watch::channel(0).0,
            urgent: Notify::new(),
        })
    }

    /// Records an update; starts sending if nothing is being sent.
    pub(crate) fn update(self: &Rc<Self>, host: &Rc<dyn ExecutorHost>, update: CheckpointUpdate) {
        let mut pending = self.pending.borrow_mut();
        for name in update.reset.unwrap_or_default() {
            pending.set.remove(&name);
            pending.reset.insert(name);
        }
        for (name, value) in update.set.unwrap_or_default() {
            pending.reset.remove(&name);
            pending.set.insert(name, value);
        }
        pending.recorded += 1;
        if !pending.draining {
            pending.draining = true;
            actix_rt::spawn(Rc::clone(self).drain(Rc::clone(host)));
        }
    }

    async fn drain(self: Rc<Self>, host: Rc<dyn ExecutorHost>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(THROTTLE) => {}
                () = self.urgent.notified() => {}
            }
            let (set, reset, upto) = {
                let mut pending = self.pending.borrow_mut();
                if pending.set.is_empty() && pending.reset.is_empty() {
                    pending.draining = false;
                    return;
                }
                (
                    std::mem::take(&mut pending.set),
                    std::mem::take(&mut pending.reset),
                    pending.recorded,
                )
            };
            if let Err(e) = self.send(&host, set, reset).await {
                tracing::warn!(execution = %self.execution, error = %e, "checkpoint write lost");
                self.pending.borrow_mut().failed = Some(e);
            }
            self.committed.send_replace(upto);
        }
    }

    async fn send(
        &self,
        host: &Rc<dyn ExecutorHost>,
        set: BTreeMap<String, WireValue>,
        reset: BTreeSet<String>,
    ) -> Result<(), String> {
        let mut values = Checkpoints::new();
        for (name, value) in set {
            let value = values::from_wire(host, value, &self.scratch)
                .await
                .map_err(|e| format!("checkpoint '{name}': {e}"))?;
            values.insert(name, value);
        }
        host.checkpoint(self.execution, values, reset.into_iter().collect())
            .await
            .map_err(|e| e.to_string())
    }

    /// Resolves once every update recorded so far is durable; the error of a batch that
    /// could not be stored since the last flush, if any.
    pub(crate) async fn flush(&self) -> Result<(), String> {
        let target = self.pending.borrow().recorded;
        if *self.committed.borrow() < target {
            self.urgent.notify_one();
            let mut committed = self.committed.subscribe();
            let _ = committed.wait_for(|c| *c >= target).await;
        }
        match self.pending.borrow_mut().failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
