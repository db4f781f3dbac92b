//! Step and execution rows decoded once for both backends: each backend's row type reads its
//! columns by index through [`Columns`], in the order `step_columns!()` and
//! `executions_select!()` (and their PostgreSQL equivalents) select them.

use crate::model::{
    EnvironmentId, ExecutionRecord, ExecutionResult, RunId, StepId, StepRecord, TargetRef, WorkerId,
};
use crate::store::StoreError;
use crate::store::codec::{from_json, parse_execution, parse_target_kind, to_u32, to_u64};

/// A result row of either backend, read by column index.
pub(crate) trait Columns {
    /// An integer column.
    fn int(&self, index: usize) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, index: usize) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError>;
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, index: usize) -> Result<i64, StoreError> {
        Ok(self.get(index)?)
    }
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(index)?)
    }
    fn text(&self, index: usize) -> Result<String, StoreError> {
        Ok(self.get(index)?)
    }
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(index)?)
    }
}

impl Columns for postgres::Row {
    fn int(&self, index: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(index)?)
    }
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(index)?)
    }
    fn text(&self, index: usize) -> Result<String, StoreError> {
        Ok(self.try_get(index)?)
    }
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(index)?)
    }
}

/// A step row: number, parent execution, module, name, kind, arguments, options, cache key,
/// memo key, creation time.
pub(crate) fn step_from_row(run: RunId, row: &impl Columns) -> Result<StepRecord, StoreError> {
    Ok(StepRecord {
        id: StepId {
            run,
            number: to_u32(row.int(0)?, "step number")?,
        },
        parent_execution: row
            .opt_text(1)?
            .as_deref()
            .map(parse_execution)
            .transpose()?,
        target: TargetRef {
            module: row.text(2)?,
            name: row.text(3)?,
        },
        kind: parse_target_kind(&row.text(4)?)?,
        arguments: from_json(&row.text(5)?, "step arguments")?,
        options: from_json(&row.text(6)?, "step options")?,
        cache_key: row.opt_text(7)?,
        memo_key: row.opt_text(8)?,
        created_at: row.int(9)?,
    })
}

/// An execution row with its result: step number, attempt, environment, execute after,
/// creation time, worker and assignment time, result and its time, dependencies.
pub(crate) fn execution_from_row(
    run: RunId,
    row: &impl Columns,
) -> Result<ExecutionRecord, StoreError> {
    let step = StepId {
        run,
        number: to_u32(row.int(0)?, "step number")?,
    };
    let assignment = match row.opt_int(5)? {
        Some(worker) => Some((WorkerId(to_u64(worker, "worker id")?), row.int(6)?)),
        None => None,
    };
    let result = match row.opt_text(7)? {
        Some(text) => Some((
            from_json::<ExecutionResult>(&text, "execution result")?,
            row.int(8)?,
        )),
        None => None,
    };
    Ok(ExecutionRecord {
        id: step.execution(to_u32(row.int(1)?, "attempt")?),
        environment: EnvironmentId(to_u32(row.int(2)?, "environment id")?),
        execute_after: row.opt_int(3)?,
        created_at: row.int(4)?,
        assignment,
        result,
        dependencies: match row.opt_text(9)? {
            Some(text) => from_json(&text, "execution dependencies")?,
            None => Default::default(),
        },
    })
}
