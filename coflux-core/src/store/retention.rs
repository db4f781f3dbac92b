//! Run retention: which of the finished runs old enough to go may be deleted together, given
//! the links between runs, and the size report. The SQLite reads and the deletion of a batch
//! of runs ([`Write::DeleteRuns`](super::Write::DeleteRuns)) are in the store's `retention`
//! module.
//!
//! A run is *linked to* when an execution of another run points at one of its executions: a
//! cache hit or a deferral (`cached`/`deferred` results), a spawned workflow (`spawned`
//! results, `calls`), or an extra parent → child link (`children`). Linked runs are kept until
//! every run linking to them has gone (see docs/semantics.md, *Run retention*).

use std::collections::{HashMap, HashSet};

use crate::model::{RunId, Value};

/// How big a project's database is (see `SqliteStore::size_report`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeReport {
    /// Rows per run table (`runs`, `steps`, `executions`, ...).
    pub rows: HashMap<&'static str, u64>,
    /// Pages in use.
    pub used_pages: u64,
    /// Pages in the database file, free ones included.
    pub pages: u64,
}

/// Adds the ids of the asset records `value` refers to.
pub fn asset_ids(value: &Value, ids: &mut HashSet<String>) {
    for reference in value.references() {
        if let crate::model::Reference::Asset { id, .. } = reference {
            ids.insert(id.clone());
        }
    }
}

/// The runs of `candidates` that can all be deleted together: none of them is linked to from
/// a run outside the set (removing a linked run from the set can make the runs it links to
/// linked from outside in turn, so this repeats until nothing changes).
pub fn deletable(candidates: &[RunId], links: &[(RunId, RunId)]) -> Vec<RunId> {
    let mut set: HashSet<RunId> = candidates.iter().copied().collect();
    loop {
        let linked: HashSet<RunId> = links
            .iter()
            .filter(|(from, to)| set.contains(to) && !set.contains(from))
            .map(|(_, to)| *to)
            .collect();
        if linked.is_empty() {
            break;
        }
        set.retain(|run| !linked.contains(run));
    }
    candidates
        .iter()
        .copied()
        .filter(|r| set.contains(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_retention_keeps_runs_linked_from_outside_and_what_they_link_to() {
        let r = RunId;
        // 2 hit 1's cache; 3 spawned 4; 5 (not a candidate) hit 3's cache.
        let links = [(r(2), r(1)), (r(3), r(4)), (r(5), r(3))];
        assert_eq!(
            deletable(&[r(1), r(2), r(3), r(4)], &links),
            vec![r(1), r(2)]
        );
        assert_eq!(deletable(&[r(1)], &links), Vec::<RunId>::new());
        assert_eq!(deletable(&[r(2)], &links), vec![r(2)]);
    }
}
