//! One page of a run's steps over PostgreSQL, as `SqliteStore::load_run_page`: the steps from
//! `offset` (in step order, at most `limit`), their executions and what a view of them needs,
//! without reading the rest of the run's steps and executions.

use std::collections::HashSet;

use super::read::Reader;
use super::run_data;
use crate::model::{EnvironmentId, ExecutionId, RunId, StepRecord};
use crate::store::rows::{execution_from_row, step_from_row};
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
    /// See `ProjectReader::load_run_page`.
    pub(super) fn run_page(
        &mut self,
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
        let (offset, limit) = (as_i64(offset), as_i64(limit));
        let (rows, total) = match view {
            None => {
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
                (rows, total)
            }
            Some(view) => {
                let home = i64::from(record.environment.0);
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
                (rows, total)
            }
        };
        let steps: Vec<StepRecord> = rows
            .iter()
            .map(|row| step_from_row(run, row))
            .collect::<Result<_, _>>()?;
        let (first, last) = match (steps.first(), steps.last()) {
            (Some(f), Some(l)) => (i64::from(f.id.number), i64::from(l.id.number)),
            _ => (1, 0),
        };
        let mut executions = self
            .conn
            .query(
                "SELECT e.step_number, e.attempt, e.environment_id, e.execute_after, e.created_at,
                        e.worker_id, e.assigned_at, r.result, r.created_at, e.dependencies
                 FROM executions e
                 LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                    AND r.attempt = e.attempt
                 WHERE e.run_id = $1 AND e.step_number BETWEEN $2 AND $3
                 ORDER BY e.step_number, e.attempt",
                &[&key, &first, &last],
            )?
            .iter()
            .map(|row| execution_from_row(run, row))
            .collect::<Result<Vec<_>, _>>()?;
        // Seen from a view, steps between the page's first and last may not be on it.
        let numbers: HashSet<u32> = steps.iter().map(|s| s.id.number).collect();
        let in_page = |number: u32| numbers.contains(&number);
        executions.retain(|e| in_page(e.id.step.number));
        let parents: Vec<String> = executions.iter().map(|e| e.id.to_string()).collect();
        let children = self.spawned_by(run, key, &parents)?;
        let mut checkpoints = run_data::checkpoints(self.conn, run)?;
        checkpoints.retain(|(step, _, _)| in_page(step.number));
        let mut streams = run_data::streams(self.conn, run)?;
        streams.retain(|s| in_page(s.id.step.number));
        let mut inputs = run_data::inputs(self.conn, run)?;
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

    /// The links from `parents` (execution ids) to other runs' initial executions, sorted:
    /// the children outside this run's id range (`R5:` sorts between them in byte order).
    fn spawned_by(
        &mut self,
        run: RunId,
        key: i64,
        parents: &[String],
    ) -> Result<Vec<(ExecutionId, ExecutionId)>, StoreError> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let own = format!("{run}:");
        let after = format!("{run};");
        let mut children = self
            .conn
            .query(
                "SELECT parent, child FROM children WHERE run_id = $1 AND parent = ANY($2)
                 AND (child COLLATE \"C\" < $3 OR child COLLATE \"C\" >= $4)",
                &[&key, &parents, &own, &after],
            )?
            .iter()
            .map(|row| {
                let parent: String = row.try_get(0)?;
                let child: String = row.try_get(1)?;
                Ok((parse_execution(&parent)?, parse_execution(&child)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        children.sort_unstable();
        Ok(children)
    }
}
