//! Deleting runs (retention, `runs delete`): while a run is being deleted no actor is created
//! for it, so nothing re-runs or re-loads it halfway. Messages that arrive for it meanwhile are
//! held and routed once the deletion is decided: to the run if it was kept, answered as for an
//! unknown run if it is gone.

use std::sync::Arc;

use crate::model::RunId;
use crate::orchestration::messages::RunMsg;

use super::{Router, lock};

impl Router {
    /// Marks `runs` as being deleted, except those in memory (active, or finished and not yet
    /// retired: they are left alone). Returns the runs marked; messages to them are held until
    /// [`Router::end_delete`].
    pub fn begin_delete(&self, runs: &[RunId]) -> Vec<RunId> {
        let actors = lock(&self.runs);
        let mut deleting = lock(&self.deleting);
        runs.iter()
            .copied()
            .filter(|run| !actors.contains_key(run))
            .inspect(|run| {
                deleting.insert(*run, Vec::new());
            })
            .collect()
    }

    /// The deletion of `runs` is over (committed or abandoned): the messages held for them are
    /// routed now, in the order they came.
    pub fn end_delete(self: &Arc<Self>, runs: &[RunId]) {
        let held: Vec<(RunId, Vec<RunMsg>)> = {
            let mut deleting = lock(&self.deleting);
            runs.iter()
                .filter_map(|run| deleting.remove(run).map(|msgs| (*run, msgs)))
                .collect()
        };
        for (run, msgs) in held {
            for msg in msgs {
                self.route_run(run, msg);
            }
        }
    }

    /// Holds `msg` if `run` is being deleted; gives it back otherwise (always a `Create`: a
    /// new run is never being deleted).
    pub(super) fn hold_if_deleting(&self, run: RunId, msg: RunMsg) -> Option<RunMsg> {
        if matches!(msg, RunMsg::Create { .. }) {
            return Some(msg);
        }
        match lock(&self.deleting).get_mut(&run) {
            Some(held) => {
                held.push(msg);
                None
            }
            None => Some(msg),
        }
    }
}
