//! [`ExecutionContext`]: what the handlers of an execution's requests, logs and metrics share
//! (its scratch directory, suspension and end, checkpoint and stream state), and the
//! [`SlotLender`] through which a waiting execution lends its slot to the pool.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use coflux_core::model::ExecutionId;
use tokio::sync::{Semaphore, watch};

use super::checkpoints::CheckpointQueue;
use super::ending::Suspension;
use super::metrics::ExecutionMetrics;
use super::streams::ExecutionStreams;

/// An execution running in a process: what its requests and logs need.
pub(crate) struct ExecutionContext {
    /// The execution.
    pub(crate) execution: ExecutionId,
    /// Where values fetched for it go (removed with it).
    pub(crate) scratch: PathBuf,
    /// Lends the execution's slot while it waits for others.
    pub(crate) lender: SlotLender,
    finished: watch::Sender<bool>,
    suspension: watch::Sender<Option<Suspension>>,
    /// Names of the groups (`cf.group`) the execution registered, by id.
    groups: RefCell<HashMap<u32, String>>,
    /// Its metrics' throttles (and when it started, their default x-axis).
    pub(crate) metrics: Rc<ExecutionMetrics>,
    /// Its checkpoint writes not yet durable.
    pub(crate) checkpoints: Rc<CheckpointQueue>,
    /// The streams it produces and reads.
    pub(crate) streams: Rc<ExecutionStreams>,
}

impl ExecutionContext {
    pub(crate) fn new(execution: ExecutionId, scratch: PathBuf, lender: SlotLender) -> Rc<Self> {
        Rc::new(Self {
            execution,
            checkpoints: CheckpointQueue::new(execution, scratch.clone()),
            streams: ExecutionStreams::new(execution, scratch.clone()),
            scratch,
            lender,
            finished: watch::channel(false).0,
            suspension: watch::channel(None).0,
            groups: RefCell::new(HashMap::new()),
            metrics: ExecutionMetrics::new(execution),
        })
    }

    /// Records the name of a group (`cf.group`) the execution registered.
    pub(crate) fn register_group(&self, group: u32, name: String) {
        self.groups.borrow_mut().insert(group, name);
    }

    /// The name of a group the execution registered (its id when it has no name).
    pub(crate) fn group_name(&self, group: u32) -> String {
        self.groups
            .borrow()
            .get(&group)
            .cloned()
            .unwrap_or_else(|| format!("group {group}"))
    }

    /// Asks for the execution to end as suspended (the first request wins).
    pub(crate) fn suspend(&self, suspension: Suspension) {
        self.suspension.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(suspension);
            }
            first
        });
    }

    /// Resolves once the execution asked to be suspended.
    pub(crate) async fn suspended(&self) -> Suspension {
        let mut suspension = self.suspension.subscribe();
        match suspension.wait_for(Option::is_some).await {
            Ok(s) => s.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Marks the execution over: its pending requests are dropped.
    pub(crate) fn finish(&self) {
        self.finished.send_replace(true);
    }

    /// Resolves once the execution is over.
    pub(crate) async fn finished(&self) {
        let mut finished = self.finished.subscribe();
        let _ = finished.wait_for(|f| *f).await;
    }
}

/// Lends and reclaims the slots of executions that wait for others.
///
/// While an execution waits (in `select`), its slot is given back to the pool, up to
/// [`PoolConfig::max_waiting`](super::PoolConfig::max_waiting) at once. When it resumes it takes a free slot back; if none is
/// free it runs anyway (briefly over the limit) and the pool keeps the next freed slot.
#[derive(Clone)]
pub(crate) struct SlotLender {
    pub(super) slots: Arc<Semaphore>,
    pub(super) lent: Rc<Cell<usize>>,
    pub(super) debt: Rc<Cell<usize>>,
    pub(super) max_lent: usize,
}

impl SlotLender {
    /// Lends a slot; false when the bound is reached (the execution keeps its slot).
    pub(crate) fn lend(&self) -> bool {
        if self.lent.get() >= self.max_lent {
            return false;
        }
        self.lent.set(self.lent.get() + 1);
        self.slots.add_permits(1);
        true
    }

    /// Whether a slot is free right now.
    pub(crate) fn has_free_slot(&self) -> bool {
        self.slots.available_permits() > 0
    }

    /// Takes a lent slot back.
    pub(crate) fn reclaim(&self) {
        self.lent.set(self.lent.get().saturating_sub(1));
        match self.slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => self.debt.set(self.debt.get() + 1),
        }
    }

    /// Pays back slots owed by reclaims that found none free.
    pub(crate) fn settle(&self) {
        while self.debt.get() > 0 {
            match self.slots.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    self.debt.set(self.debt.get() - 1);
                }
                Err(_) => break,
            }
        }
    }
}
