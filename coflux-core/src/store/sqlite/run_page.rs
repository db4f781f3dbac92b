//! One page of a run's steps: the steps from `offset` (in step order, at most `limit`), their
//! executions, and what a view of them needs, without reading the rest of the run. The first
//! page of a 100,000-step run costs what a small run costs, whether it is seen from every
//! environment or from one.

use std::collections::HashSet;

use super::{SqliteStore, parse_execution, run_key};
use crate::model::{EnvironmentId, ExecutionId, RunId, StepRecord};
use crate::store::rows::{execution_from_row, step_from_row};
use crate::store::{RunSnapshot, StoreError};

/// The step columns prefixed with the `s.` alias (for the queries joining executions).
const STEP_COLUMNS_S: &str = "s.number, s.parent_execution, s.module, s.target, s.kind, \
     s.arguments, s.options, s.cache_key, s.memo_key, s.created_at";

/// An environment `e.environment_id` is visible from the view: the run's own (`?2`) or one
/// of the view's, given as a JSON array of ids (`?3`).
const VISIBLE: &str =
    "(e.environment_id = ?2 OR e.environment_id IN (SELECT value FROM json_each(?3)))";

/// Steps `?2 + 1 ..= ?2 + ?3` of run `?1` (by number: a range of the primary key).
const PAGE_STEPS: &str = concat!(
    "SELECT ",
    step_columns!(),
    " FROM steps WHERE run_id = ?1 AND number > ?2 ORDER BY number LIMIT ?3"
);

/// The executions of steps `?2..=?3` of run `?1`, with their results.
const PAGE_EXECUTIONS: &str = concat!(
    executions_select!(),
    " WHERE e.run_id = ?1 AND e.step_number BETWEEN ?2 AND ?3 \
     ORDER BY e.step_number, e.attempt"
);

/// The highest step number of run `?1` (its number of steps).
const STEP_COUNT: &str = "SELECT MAX(number) FROM steps WHERE run_id = ?1";

/// The children of execution `?2` of run `?1` outside the run (`?3`, `?4`: the bounds of its
/// own execution ids).
const SPAWNED_BY: &str =
    "SELECT child FROM children WHERE run_id = ?1 AND parent = ?2 AND child < ?3
     UNION ALL
     SELECT child FROM children WHERE run_id = ?1 AND parent = ?2 AND child >= ?4";

/// Every query a page from every environment makes whose cost could grow with the run (the
/// run's own row aside): each must be a search by key (see the tests).
#[cfg(test)]
const PAGE_QUERIES: [&str; 6] = [
    PAGE_STEPS,
    PAGE_EXECUTIONS,
    STEP_COUNT,
    SPAWNED_BY,
    crate::store::checkpoints::LOAD_STEPS,
    crate::store::streams::LOAD_STEPS,
];

impl SqliteStore {
    /// The run with steps `offset..offset + limit` (in step order) and everything of theirs,
    /// plus how many steps the run has; `None` for an unknown run. With `view` (the
    /// environments seen besides the run's own, as in an inspection from one environment),
    /// only the steps with an execution visible from it are counted and paged. The
    /// snapshot's `children` hold only the runs the page's executions started (other runs'
    /// initial executions), and its `calls` are left empty: a view needs neither more.
    pub fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let page = self.run_page(run, offset, limit, view);
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
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        let key = run_key(run)?;
        let Some(record) = self.run_record(run)? else {
            return Ok(None);
        };
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let (steps, total) = match view {
            None => (
                self.page_steps(run, key, as_i64(offset), as_i64(limit))?,
                self.step_count(key)?,
            ),
            Some(view) => {
                let home = i64::from(record.environment.0);
                let ids: Vec<String> = view.iter().map(|e| e.0.to_string()).collect();
                let ids = format!("[{}]", ids.join(","));
                let steps = self.visible_steps(run, key, home, &ids, offset, limit)?;
                let total: i64 = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT COUNT(DISTINCT e.step_number) FROM executions e \
                         WHERE e.run_id = ?1 AND {VISIBLE}"
                    ))?
                    .query_row((key, home, &ids), |row| row.get(0))?;
                (steps, usize::try_from(total).unwrap_or(0))
            }
        };
        let (first, last) = match (steps.first(), steps.last()) {
            (Some(f), Some(l)) => (f.id.number, l.id.number),
            _ => (1, 0),
        };
        let mut executions = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(PAGE_EXECUTIONS)?;
            let mut rows = stmt.query((key, i64::from(first), i64::from(last)))?;
            while let Some(row) = rows.next()? {
                executions.push(execution_from_row(run, row)?);
            }
        }
        // Seen from a view, steps between the page's first and last may not be on it.
        let numbers: HashSet<u32> = steps.iter().map(|s| s.id.number).collect();
        let in_page = |number: u32| numbers.contains(&number);
        executions.retain(|e| in_page(e.id.step.number));
        let parents: Vec<ExecutionId> = executions.iter().map(|e| e.id).collect();
        let children = self.spawned_by(run, key, &parents)?;
        // The page's range of steps only (not the whole run's checkpoints and streams).
        let mut checkpoints = crate::store::checkpoints::load_steps(&self.conn, run, first, last)?;
        checkpoints.retain(|(step, _, _)| in_page(step.number));
        let mut streams = crate::store::streams::load_steps(&self.conn, run, first, last)?;
        streams.retain(|s| in_page(s.id.step.number));
        // Inputs are few per run (prompts), and keyed by their own number.
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
        Ok(Some((snapshot, total)))
    }

    /// How many steps the run has: its highest step number, as steps are numbered from 1
    /// without gaps (one index lookup instead of counting the rows).
    fn step_count(&self, key: i64) -> Result<usize, StoreError> {
        let max: Option<i64> = self
            .conn
            .prepare_cached(STEP_COUNT)?
            .query_row([key], |row| row.get(0))?;
        Ok(max.and_then(|n| usize::try_from(n).ok()).unwrap_or(0))
    }

    /// Steps `offset + 1 ..= offset + limit` (by number).
    fn page_steps(
        &self,
        run: RunId,
        key: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<StepRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(PAGE_STEPS)?;
        let mut rows = stmt.query((key, offset, limit))?;
        let mut steps = Vec::new();
        while let Some(row) = rows.next()? {
            steps.push(step_from_row(run, row)?);
        }
        Ok(steps)
    }

    /// The steps with an execution visible from the view, skipping the first `offset` of
    /// them: reading stops after the page (its cost is the offset's, not the run's).
    fn visible_steps(
        &self,
        run: RunId,
        key: i64,
        home: i64,
        ids: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StepRecord>, StoreError> {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS_S} FROM steps s WHERE s.run_id = ?1 AND EXISTS \
             (SELECT 1 FROM executions e WHERE e.run_id = ?1 AND e.step_number = s.number \
              AND {VISIBLE}) \
             ORDER BY s.number LIMIT ?4 OFFSET ?5"
        ))?;
        let mut rows = stmt.query((key, home, ids, as_i64(limit), as_i64(offset)))?;
        let mut steps = Vec::new();
        while let Some(row) = rows.next()? {
            steps.push(step_from_row(run, row)?);
        }
        Ok(steps)
    }

    /// The runs `parents` started (links to other runs' initial executions), sorted. Each
    /// parent's links are two index range reads around the run's own children (`R5:` sorts
    /// between them), so a parent with 100,000 children in its own run costs two seeks.
    fn spawned_by(
        &self,
        run: RunId,
        key: i64,
        parents: &[ExecutionId],
    ) -> Result<Vec<(ExecutionId, ExecutionId)>, StoreError> {
        let own = format!("{run}:");
        // ';' follows ':' in byte order: every child id of this run sorts in [own, after).
        let after = format!("{run};");
        let mut stmt = self.conn.prepare_cached(SPAWNED_BY)?;
        let mut children = Vec::new();
        for parent in parents {
            let mut rows = stmt.query((key, parent.to_string(), &own, &after))?;
            while let Some(row) = rows.next()? {
                let child: String = row.get(0)?;
                children.push((*parent, parse_execution(&child)?));
            }
        }
        children.sort_unstable();
        Ok(children)
    }
}

#[cfg(test)]
#[path = "run_page_tests.rs"]
mod tests;
