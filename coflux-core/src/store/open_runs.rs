//! [`OpenRuns`]: how many executions without a result each active run has, kept by the writer in
//! memory so that only a run's transitions between idle and active are written to its row.
//!
//! A count missing from memory is read from the database (the executions of the run that have
//! no result), so the cache holds only the runs that are active now, and a restart needs no
//! rebuilding. Changes made during a transaction are journaled and undone if it rolls back.

use std::collections::HashMap;

/// A transition a run's row must record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The run had no open execution and now has one.
    Activated,
    /// The run's last open execution finished.
    Idled,
}

/// Open-execution counts of active runs, with an undo journal for the current transaction.
#[derive(Debug, Default)]
pub struct OpenRuns {
    counts: HashMap<i64, u64>,
    /// The count each run had before the current transaction first changed it.
    journal: HashMap<i64, Option<u64>>,
}

impl OpenRuns {
    /// Records that `run` got one more open execution. `current` reads the run's count from the
    /// database when it is not in memory (call this before the execution is inserted).
    pub fn opened<E>(
        &mut self,
        run: i64,
        current: impl FnOnce() -> Result<u64, E>,
    ) -> Result<Option<Transition>, E> {
        let before = self.count(run, current)?;
        self.set(run, before + 1);
        Ok((before == 0).then_some(Transition::Activated))
    }

    /// Records that one of `run`'s open executions got its result (call this before the
    /// result is inserted, and only when it is the execution's first).
    pub fn closed<E>(
        &mut self,
        run: i64,
        current: impl FnOnce() -> Result<u64, E>,
    ) -> Result<Option<Transition>, E> {
        let before = self.count(run, current)?;
        let after = before.saturating_sub(1);
        self.set(run, after);
        Ok((before > 0 && after == 0).then_some(Transition::Idled))
    }

    /// The transaction committed: its changes stay.
    pub fn commit(&mut self) {
        self.journal.clear();
    }

    /// The transaction rolled back: its changes are undone.
    pub fn rollback(&mut self) {
        for (run, before) in self.journal.drain() {
            match before {
                Some(count) => self.counts.insert(run, count),
                None => self.counts.remove(&run),
            };
        }
    }

    /// How many runs are held in memory (the active ones touched since the store opened).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no run is held in memory.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    fn count<E>(&mut self, run: i64, current: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
        match self.counts.get(&run) {
            Some(count) => Ok(*count),
            None => current(),
        }
    }

    fn set(&mut self, run: i64, count: u64) {
        let before = if count == 0 {
            self.counts.remove(&run)
        } else {
            self.counts.insert(run, count)
        };
        self.journal.entry(run).or_insert(before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Result<u64, ()> {
        Ok(0)
    }

    #[test]
    fn store_open_runs_reports_only_transitions() {
        let mut runs = OpenRuns::default();
        assert_eq!(runs.opened(1, none), Ok(Some(Transition::Activated)));
        assert_eq!(runs.opened(1, none), Ok(None));
        assert_eq!(runs.closed(1, none), Ok(None));
        assert_eq!(runs.closed(1, none), Ok(Some(Transition::Idled)));
        runs.commit();
        assert!(runs.is_empty(), "idle runs are not kept");
    }

    #[test]
    fn store_open_runs_reads_missing_counts_from_the_database() {
        let mut runs = OpenRuns::default();
        // A run with 2 open executions in the database (e.g. after a restart).
        assert_eq!(runs.closed(7, || Ok::<_, ()>(2)), Ok(None));
        assert_eq!(
            runs.closed(7, || -> Result<u64, ()> { panic!("read again") }),
            Ok(Some(Transition::Idled))
        );
        assert_eq!(runs.opened(8, || Err("disk")), Err("disk"));
    }

    #[test]
    fn store_open_runs_rollback_restores_the_counts() {
        let mut runs = OpenRuns::default();
        runs.opened(1, none).unwrap();
        runs.commit();
        runs.opened(1, none).unwrap();
        runs.opened(2, none).unwrap();
        runs.closed(1, none).unwrap();
        runs.closed(1, none).unwrap();
        runs.rollback();
        assert_eq!(runs.len(), 1);
        // Run 1 still has its one open execution; run 2 is unknown again.
        assert_eq!(runs.closed(1, none), Ok(Some(Transition::Idled)));
        assert_eq!(runs.opened(2, none), Ok(Some(Transition::Activated)));
    }
}
