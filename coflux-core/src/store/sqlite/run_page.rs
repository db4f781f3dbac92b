//! One page of a run's steps: the steps from `offset` (in step order, at most `limit`), their
//! executions, and what a view of them needs, without reading the rest of the run. The first
//! page of a 100,000-step run costs what a small run costs.

use super::{SqliteStore, parse_execution, run_key};
use crate::model::RunId;
use crate::store::rows::{execution_from_row, step_from_row};
use crate::store::{RunSnapshot, StoreError};

impl SqliteStore {
    /// The run with steps `offset..offset + limit` (in step order) and everything of theirs,
    /// plus how many steps the run has; `None` for an unknown run. The snapshot's `children`
    /// hold only the runs its executions started (other runs' initial executions), and its
    /// `calls` are left empty: a view needs neither more.
    pub fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let page = self.run_page(run, offset, limit);
        let end = self.conn.execute_batch("COMMIT");
        let page = page?;
        end?;
        Ok(page)
    }

    fn run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        let key = run_key(run)?;
        let Some(record) = self.run_record(run)? else {
            return Ok(None);
        };
        let total: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM steps WHERE run_id = ?1")?
            .query_row([key], |row| row.get(0))?;
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut steps = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(concat!(
                "SELECT ",
                step_columns!(),
                " FROM steps WHERE run_id = ?1 ORDER BY number LIMIT ?2 OFFSET ?3"
            ))?;
            let mut rows = stmt.query((key, as_i64(limit), as_i64(offset)))?;
            while let Some(row) = rows.next()? {
                steps.push(step_from_row(run, row)?);
            }
        }
        let (first, last) = match (steps.first(), steps.last()) {
            (Some(f), Some(l)) => (f.id.number, l.id.number),
            _ => (1, 0),
        };
        let mut executions = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(concat!(
                executions_select!(),
                " WHERE e.run_id = ?1 AND e.step_number BETWEEN ?2 AND ?3 \
                 ORDER BY e.step_number, e.attempt"
            ))?;
            let mut rows = stmt.query((key, i64::from(first), i64::from(last)))?;
            while let Some(row) = rows.next()? {
                executions.push(execution_from_row(run, row)?);
            }
        }
        // Only links to other runs (workflows its executions started).
        let mut children = Vec::new();
        {
            let own = format!("{run}:");
            let mut stmt = self.conn.prepare_cached(
                "SELECT parent, child FROM children
                 WHERE run_id = ?1 AND substr(child, 1, length(?2)) <> ?2",
            )?;
            let mut rows = stmt.query((key, own))?;
            while let Some(row) = rows.next()? {
                let parent: String = row.get(0)?;
                let child: String = row.get(1)?;
                children.push((parse_execution(&parent)?, parse_execution(&child)?));
            }
            children.sort_unstable();
        }
        let in_page = |number: u32| (first..=last).contains(&number);
        let mut checkpoints = crate::store::checkpoints::load(&self.conn, run)?;
        checkpoints.retain(|(step, _, _)| in_page(step.number));
        let mut streams = crate::store::streams::load(&self.conn, run)?;
        streams.retain(|s| in_page(s.id.step.number));
        let mut inputs = crate::store::inputs::load(&self.conn, run)?;
        inputs.retain(|i| in_page(i.execution.step.number));
        let snapshot = RunSnapshot {
            run: record,
            steps,
            executions,
            children,
            calls: Vec::new(),
            checkpoints,
            streams,
            inputs,
        };
        Ok(Some((snapshot, usize::try_from(total).unwrap_or(0))))
    }
}
