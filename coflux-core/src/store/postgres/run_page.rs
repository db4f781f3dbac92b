//! The PostgreSQL queries of a run page ([`crate::store::run_page`] assembles it): the page's
//! steps and their executions, without reading the rest of the run's steps and executions.

use super::read::Reader;
use super::run_data;
use crate::model::{
    Checkpoints, EnvironmentId, ExecutionId, ExecutionRecord, InputRecord, RunId, RunRecord,
    StepId, StepRecord, StreamRecord,
};
use crate::store::rows::{execution_from_row, step_from_row};
use crate::store::run_page::{self, PageSource};
use crate::store::sqlite::{parse_execution, run_key};
use crate::store::{RunSnapshot, StoreError};

/// The step columns, as `step_from_row` reads them.
macro_rules! step_columns {
    () => {
        "s.number, s.parent_execution, s.module, s.target, s.kind, s.arguments, s.options,
         s.cache_key, s.memo_key, s.created_at"
    };
}

/// An execution `e` is visible from the view: in the run's environment (`$2`) or one of the
/// view's (`$3`).
macro_rules! visible {
    () => {
        "(e.environment_id = $2 OR e.environment_id = ANY($3))"
    };
}

impl Reader<'_> {
    /// See `ProjectReader::load_run_page` and [`run_page::load`].
    pub(super) fn run_page(
        &mut self,
        run: RunId,
        offset: usize,
        limit: usize,
        view: Option<&[EnvironmentId]>,
    ) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
        run_page::load(self, run, offset, limit, view)
    }
}

fn steps_of(run: RunId, rows: &[postgres::Row]) -> Result<Vec<StepRecord>, StoreError> {
    rows.iter().map(|row| step_from_row(run, row)).collect()
}

impl PageSource for Reader<'_> {
    fn run_record(&mut self, run: RunId) -> Result<Option<RunRecord>, StoreError> {
        Reader::run_record(self, run)
    }

    fn steps(
        &mut self,
        run: RunId,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<StepRecord>, usize), StoreError> {
        let key = run_key(run)?;
        let rows = self.conn.query(
            concat!(
                "SELECT ",
                step_columns!(),
                " FROM steps s WHERE s.run_id = $1 AND s.number > $2
                 ORDER BY s.number LIMIT $3"
            ),
            &[&key, &offset, &limit],
        )?;
        // Steps are numbered from 1 without gaps: the highest is the count.
        let total = self.conn.count(
            "SELECT COALESCE(MAX(number), 0) FROM steps WHERE run_id = $1",
            &[&key],
        )?;
        Ok((steps_of(run, &rows)?, usize::try_from(total).unwrap_or(0)))
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
        let ids: Vec<i64> = view.iter().map(|e| i64::from(e.0)).collect();
        let rows = self.conn.query(
            concat!(
                "SELECT ",
                step_columns!(),
                " FROM steps s WHERE s.run_id = $1 AND EXISTS
                 (SELECT 1 FROM executions e WHERE e.run_id = $1
                  AND e.step_number = s.number AND ",
                visible!(),
                ") ORDER BY s.number LIMIT $4 OFFSET $5"
            ),
            &[&key, &home, &ids, &limit, &offset],
        )?;
        let total = self.conn.count(
            concat!(
                "SELECT COUNT(DISTINCT e.step_number) FROM executions e
                 WHERE e.run_id = $1 AND ",
                visible!()
            ),
            &[&key, &home, &ids],
        )?;
        Ok((steps_of(run, &rows)?, usize::try_from(total).unwrap_or(0)))
    }

    fn executions(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        let (first, last) = (i64::from(first), i64::from(last));
        self.conn
            .query(
                "SELECT e.step_number, e.attempt, e.environment_id, e.execute_after, e.created_at,
                        e.worker_id, e.assigned_at, r.result, r.created_at, e.dependencies
                 FROM executions e
                 LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                    AND r.attempt = e.attempt
                 WHERE e.run_id = $1 AND e.step_number BETWEEN $2 AND $3
                 ORDER BY e.step_number, e.attempt",
                &[&run_key(run)?, &first, &last],
            )?
            .iter()
            .map(|row| execution_from_row(run, row))
            .collect()
    }

    /// The children outside this run's id range (`R5:` sorts between them in byte order).
    fn spawned_by(
        &mut self,
        run: RunId,
        parents: &[ExecutionId],
    ) -> Result<Vec<(ExecutionId, ExecutionId)>, StoreError> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let parents: Vec<String> = parents.iter().map(ExecutionId::to_string).collect();
        let own = format!("{run}:");
        let after = format!("{run};");
        self.conn
            .query(
                "SELECT parent, child FROM children WHERE run_id = $1 AND parent = ANY($2)
                 AND (child COLLATE \"C\" < $3 OR child COLLATE \"C\" >= $4)",
                &[&run_key(run)?, &parents, &own, &after],
            )?
            .iter()
            .map(|row| {
                let parent: String = row.try_get(0)?;
                let child: String = row.try_get(1)?;
                Ok((parse_execution(&parent)?, parse_execution(&child)?))
            })
            .collect()
    }

    /// The whole run's (the assembly keeps the page's).
    fn checkpoints(
        &mut self,
        run: RunId,
        _first: u32,
        _last: u32,
    ) -> Result<Vec<(StepId, EnvironmentId, Checkpoints)>, StoreError> {
        run_data::checkpoints(self.conn, run)
    }

    /// The whole run's (the assembly keeps the page's).
    fn streams(
        &mut self,
        run: RunId,
        _first: u32,
        _last: u32,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        run_data::streams(self.conn, run)
    }

    fn inputs(&mut self, run: RunId) -> Result<Vec<InputRecord>, StoreError> {
        run_data::inputs(self.conn, run)
    }
}
