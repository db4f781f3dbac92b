//! One page of a run's steps, assembled once for both backends: the steps from `offset` (in
//! step order, at most `limit`), their executions, and what a view of them needs, without
//! reading the rest of the run. Each backend is a [`PageSource`] (its queries only, SQL in
//! `sqlite/run_page.rs` and `postgres/run_page.rs`); [`load`] does the rest.

use std::collections::HashSet;

use crate::model::{
    Checkpoints, EnvironmentId, ExecutionId, ExecutionRecord, InputRecord, RunId, RunRecord,
    StepId, StepRecord, StreamRecord,
};
use crate::store::{RunSnapshot, StoreError};

/// The reads a run page needs, from one backend.
pub(crate) trait PageSource {
    /// The run's row.
    fn run_record(&mut self, run: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// Steps `offset + 1 ..= offset + limit` (by number), and how many steps the run has.
    fn steps(
        &mut self,
        run: RunId,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<StepRecord>, usize), StoreError>;
    /// The steps with an execution in `home` or one of `view`, skipping the first `offset` of
    /// them (at most `limit`, by number), and how many such steps there are.
    fn visible_steps(
        &mut self,
        run: RunId,
        home: EnvironmentId,
        view: &[EnvironmentId],
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<StepRecord>, usize), StoreError>;
    /// The executions of steps `first..=last`, with their results, by step then attempt.
    fn executions(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// The links from `parents` to other runs' initial executions (in any order).
    fn spawned_by(
        &mut self,
        run: RunId,
        parents: &[ExecutionId],
    ) -> Result<Vec<(ExecutionId, ExecutionId)>, StoreError>;
    /// Checkpoint states of (at least) steps `first..=last`.
    fn checkpoints(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<(StepId, EnvironmentId, Checkpoints)>, StoreError>;
    /// Streams of (at least) steps `first..=last`.
    fn streams(
        &mut self,
        run: RunId,
        first: u32,
        last: u32,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// The run's inputs (few per run: prompts).
    fn inputs(&mut self, run: RunId) -> Result<Vec<InputRecord>, StoreError>;
}

/// The run with steps `offset..offset + limit` (in step order) and everything of theirs, plus
/// how many steps the run has; `None` for an unknown run. With `view` (the environments seen
/// besides the run's own, as in an inspection from one environment), only the steps with an
/// execution visible from it are counted and paged. The snapshot's `children` hold only the
/// runs the page's executions started (other runs' initial executions), and its `calls` are
/// left empty: a view needs neither more.
pub(crate) fn load(
    source: &mut impl PageSource,
    run: RunId,
    offset: usize,
    limit: usize,
    view: Option<&[EnvironmentId]>,
) -> Result<Option<(RunSnapshot, usize)>, StoreError> {
    let Some(record) = source.run_record(run)? else {
        return Ok(None);
    };
    let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (offset, limit) = (as_i64(offset), as_i64(limit));
    let (steps, total) = match view {
        None => source.steps(run, offset, limit)?,
        Some(view) => source.visible_steps(run, record.environment, view, offset, limit)?,
    };
    let (first, last) = match (steps.first(), steps.last()) {
        (Some(f), Some(l)) => (f.id.number, l.id.number),
        _ => (1, 0),
    };
    // Seen from a view, steps between the page's first and last may not be on it.
    let numbers: HashSet<u32> = steps.iter().map(|s| s.id.number).collect();
    let in_page = |number: u32| numbers.contains(&number);
    let mut executions = source.executions(run, first, last)?;
    executions.retain(|e| in_page(e.id.step.number));
    let parents: Vec<ExecutionId> = executions.iter().map(|e| e.id).collect();
    let mut children = source.spawned_by(run, &parents)?;
    children.sort_unstable();
    let mut checkpoints = source.checkpoints(run, first, last)?;
    checkpoints.retain(|(step, _, _)| in_page(step.number));
    let mut streams = source.streams(run, first, last)?;
    streams.retain(|s| in_page(s.id.step.number));
    let mut inputs = source.inputs(run)?;
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
