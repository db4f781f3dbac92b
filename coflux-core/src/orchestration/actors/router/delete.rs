//! Deleting runs (retention, `runs delete`): while a run is being deleted no actor is created
//! for it, so nothing re-runs or re-loads it halfway.

use crate::model::RunId;

use super::{Router, lock};

impl Router {
    /// Marks `runs` as being deleted, except those in memory (active, or finished and not yet
    /// retired: they are left alone). Returns the runs marked; messages to them are answered
    /// as for an unknown run until [`Router::end_delete`].
    pub fn begin_delete(&self, runs: &[RunId]) -> Vec<RunId> {
        let actors = lock(&self.runs);
        let mut deleting = lock(&self.deleting);
        runs.iter()
            .copied()
            .filter(|run| !actors.contains_key(run))
            .inspect(|run| {
                deleting.insert(*run);
            })
            .collect()
    }

    /// The deletion of `runs` is over (committed or abandoned).
    pub fn end_delete(&self, runs: &[RunId]) {
        let mut deleting = lock(&self.deleting);
        for run in runs {
            deleting.remove(run);
        }
    }

    /// Whether `run` is being deleted.
    pub(super) fn is_deleting(&self, run: RunId) -> bool {
        lock(&self.deleting).contains(&run)
    }
}
