//! The SQLite queries of a run page ([`crate::store::run_page`] assembles it): each a search by
//! key, so the first page of a 100,000-step run costs what a small run costs, whether it is
//! seen from every environment or from one.

use super::{SqliteStore, parse_execution, run_key};
use crate::model::{
    Checkpoints, EnvironmentId, ExecutionId, ExecutionRecord, InputRecord, RunId, RunRecord,
    StepId, StepRecord, StreamRecord,
};
use crate::store::rows::{execution_from_row, step_from_row};
use crate::store::run_page::{self, PageSource};
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
    /// See [`run_page::load`]: one read transaction.
    pub fn load_run_page(
        &self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let page = run_page::load(&mut &*self, run, offset, limit, view);
        let end = self.conn.execute_batch("COMMIT");
        let page = page?;
        end?;
        Ok(page)
    }

    fn step_rows(
        &self,
        run: RunId,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StepRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut steps = Vec::new();
        while let Some(row) = rows.next()? {
            steps.push(step_from_row(run, row)?);
        }
        Ok(steps)
    }
}

impl PageSource for &SqliteStore {
    fn run_record(&mut self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        SqliteStore::run_record(self, run)
    }

    fn steps(
        &mut self,
        run: RunId,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<StepRecord>, usize), StoreError> {
        let key = run_key(run)?;
        let steps = self.step_rows(run, PAGE_STEPS, (key, offset, limit))?;
        // Steps are numbered from 1 without gaps: the highest is the count (one index lookup
        // instead of counting the rows).
        let max: Option<i64> = self
            .conn
            .prepare_cached(STEP_COUNT)?
            .query_row([key], |row| row.get(0))?;
        let total = max.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
        Ok((steps, total))
    }

    fn visible_steps(
        &mut self,
        run: RunId,
        home: EnvironmentId,
        view: &[EnvironmentId],
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<StepRecord>, usize), StoreError> {
        let key = run_key(run)?;
        let home = i64::from(home.0);
        let ids: Vec<String> = view.iter().map(|e| e.0.to_string()).collect();
        let ids = format!("[{}]", ids.join(","));
        // Reading stops after the page: its cost is the offset's, not the run's.
        let sql = format!(
            "SELECT {STEP_COLUMNS_S} FROM steps s WHERE s.run_id = ?1 AND EXISTS \
             (SELECT 1 FROM executions e WHERE e.run_id = ?1 AND e.step_number = s.number \
              AND {VISIBLE}) \
             ORDER BY s.number LIMIT ?4 OFFSET ?5"
        );
        let steps = self.step_rows(run, &sql, (key, home, &ids, limit, offset))?;
        let total: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(DISTINCT e.step_number) FROM executions e \
                 WHERE e.run_id = ?1 AND {VISIBLE}"
            ))?
            .query_row((key, home, &ids), |row| row.get(0))?;
        Ok((steps, usize::try_from(total).unwrap_or(0)))
    }

    fn executions(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(PAGE_EXECUTIONS)?;
        let mut rows = stmt.query((run_key(run)?, i64::from(first), i64::from(last)))?;
        let mut executions = Vec::new();
        while let Some(row) = rows.next()? {
            executions.push(execution_from_row(run, row)?);
        }
        Ok(executions)
    }

    /// Each parent's links are two index range reads around the run's own children (`R5:`
    /// sorts between them), so a parent with 100,000 children in its own run costs two seeks.
    fn spawned_by(
        &mut self,
        run: RunId,
        parents: &[ExecutionId],
    ) -> Result<Vec<(ExecutionId, ExecutionId)>, StoreError> {
        let key = run_key(run)?;
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
        Ok(children)
    }

    fn checkpoints(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<(StepId, EnvironmentId, Checkpoints)>, StoreError> {
        crate::store::checkpoints::load_steps(&self.conn, run, first, last)
    }

    fn streams(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        crate::store::streams::load_steps(&self.conn, run, first, last)
    }

    fn inputs(&mut self, run: RunId) -> Result<Vec<InputRecord>, StoreError> {
        crate::store::inputs::load(&self.conn, run)
    }
}

#[cfg(test)]
#[path = "run_page_tests.rs"]
mod tests;
