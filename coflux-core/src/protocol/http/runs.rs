//! Bodies of the run routes: submission, a run's view, results, re-runs (the runs list is
//! in [`super::run_list`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::values::{Outcome, RaisedError, state_name, value_json};
use crate::api::{ExecutionView, RunView, StepView};
use crate::model::{ExecutionResult, Millis, OptionOverrides, Requires, RunId, StepOptions};

/// `POST …/environments/{env}/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRun {
    /// The workflow's module.
    pub module: String,
    /// The workflow's name.
    pub target: String,
    /// Arguments as plain JSON.
    #[serde(default)]
    pub arguments: Vec<Json>,
    /// Submissions with the same key in the same environment get the same run.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Accept a workflow that no agent hosts and no manifest registers (yet).
    #[serde(default)]
    pub allow_unregistered: bool,
    /// Replaces the workflow's `requires` for this run (`{}` clears them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requires>,
    /// Turns memoising of the run's steps on (all parameters) or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<bool>,
    /// Replaces the workflow's delay before its first attempt (milliseconds; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Replaces the workflow's retries: at most this many, without backoff (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

impl SubmitRun {
    /// Applies this submission's overrides to the workflow's options; an invalid `requires`
    /// (an empty key or no values) is named in the error.
    pub fn override_options(&self, options: &mut StepOptions) -> Result<(), String> {
        self.overrides().apply(options)
    }

    /// This submission's overrides of the workflow's options.
    pub fn overrides(&self) -> OptionOverrides {
        OptionOverrides {
            requires: self.requires.clone(),
            memo: self.memo,
            delay_ms: self.delay_ms,
            retries: self.retries,
        }
    }
}

/// The answer of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The new run.
    pub run_id: String,
    /// Its initial step.
    pub step_id: String,
    /// Its initial execution.
    pub execution_id: String,
}

/// A run with its steps (`GET …/runs/{run}?environment=E&offset=&limit=`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Its id.
    pub run_id: String,
    /// Where it was submitted.
    pub environment: String,
    /// Submission time.
    pub created_at: Millis,
    /// The execution that started it (a workflow called from another run).
    #[serde(default)]
    pub parent: Option<String>,
    /// Its steps by number (with `offset` and `limit`, one page of them); `parent` links a
    /// step to the execution that called it.
    pub steps: Vec<Step>,
    /// How many steps the run has (in the chosen environment's view).
    #[serde(default)]
    pub total_steps: usize,
    /// Where the next page of steps starts (`offset`), if `steps` is not the last page.
    #[serde(default)]
    pub next_offset: Option<usize>,
    /// Runs started by its executions (workflows they called); on a page (`limit` given),
    /// those started by the page's executions.
    #[serde(default)]
    pub spawned: Vec<SpawnedRun>,
}

/// A step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `R…:n`.
    pub step_id: String,
    /// The target's module.
    pub module: String,
    /// The target's name.
    pub target: String,
    /// `workflow` or `task`.
    pub kind: String,
    /// The execution that called it (`null` for the initial step).
    pub parent: Option<String>,
    /// Its arguments as plain JSON.
    #[serde(default)]
    pub arguments: Vec<Json>,
    /// Whether it has a cache key.
    #[serde(default)]
    pub cached: bool,
    /// The group (`cf.group`) it was called in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its executions (attempts), oldest first.
    pub executions: Vec<Execution>,
    /// Checkpoint state (`cf.Checkpoint`) per environment name: `{name: value}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoints: BTreeMap<String, BTreeMap<String, Json>>,
    /// The streams it produced (`cf.stream`, generator tasks), by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StepStream>,
    /// The inputs (`cf.Prompt`) its executions asked for, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<StepInput>,
}

/// An input a step's execution asked for (answer it with `coflux inputs respond`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInput {
    /// Its id (`R…:In`).
    pub input_id: String,
    /// The execution that asked.
    pub execution_id: String,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `pending`, `responded`, `dismissed` or `cancelled`.
    pub state: String,
}

/// A stream of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStream {
    /// Its id (`R…:n_i`, the form of stream handles).
    pub stream_id: String,
    /// The execution producing it (the latest to register it).
    pub producer: String,
    /// How many items it holds.
    pub items: u64,
    /// How far the producer may run ahead of the slowest consumer (`null`: unbounded).
    #[serde(default)]
    pub buffer: Option<u32>,
    /// Its idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How it ended (`complete`, `errored`, `cancelled`, `abandoned`, `crashed`, `timeout`,
    /// `recurred`); `null` while open.
    #[serde(default)]
    pub closed: Option<String>,
}

/// A run started by one of this run's executions (a workflow it called).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnedRun {
    /// The calling execution.
    pub parent: String,
    /// The spawned run.
    pub run_id: String,
    /// Its initial execution.
    #[serde(default)]
    pub execution_id: String,
}

/// One execution (attempt) of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// `R…:n:a`.
    pub execution_id: String,
    /// The attempt number.
    pub attempt: u32,
    /// The environment it ran in.
    pub environment: String,
    /// `queued`, `assigned`, or the kind of its result.
    pub state: String,
    /// Creation time.
    pub created_at: Millis,
    /// Assignment time.
    pub assigned_at: Option<Millis>,
    /// End time.
    pub finished_at: Option<Millis>,
    /// `finished_at - assigned_at`, when both are known.
    pub duration_ms: Option<i64>,
    /// How it ended.
    pub result: Option<Outcome>,
    /// The inputs (`R…:In`) it waits for before it may start: its predecessor suspended
    /// waiting for one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits_for_inputs: Vec<String>,
}

impl Run {
    /// Shows a run view with all its steps.
    pub fn new(view: &RunView) -> Self {
        Self::page(view, 0, None)
    }

    /// Shows a run view with the steps from `offset`, at most `limit` of them.
    pub fn page(view: &RunView, offset: usize, limit: Option<usize>) -> Self {
        let total = view.steps.len();
        let start = offset.min(total);
        let end = limit.map_or(total, |l| start.saturating_add(l).min(total));
        Self::of_steps(view, start..end, total)
    }

    /// A view holding one page already (`view.steps` start at `offset` of `total`).
    pub fn paged(view: &RunView, offset: usize, total: usize) -> Self {
        let mut run = Self::of_steps(view, 0..view.steps.len(), total);
        let end = offset.saturating_add(view.steps.len());
        run.next_offset = (end < total).then_some(end);
        run
    }

    fn of_steps(view: &RunView, range: std::ops::Range<usize>, total: usize) -> Self {
        let end = range.end;
        Self {
            run_id: view.id.to_string(),
            environment: view.environment.clone(),
            created_at: view.created_at,
            parent: view.parent.map(|p| p.to_string()),
            steps: view.steps[range].iter().map(Step::from).collect(),
            total_steps: total,
            next_offset: (end < total).then_some(end),
            spawned: view
                .spawned
                .iter()
                .map(|(parent, execution)| SpawnedRun {
                    parent: parent.to_string(),
                    run_id: execution.run().to_string(),
                    execution_id: execution.to_string(),
                })
                .collect(),
        }
    }
}

impl From<&StepView> for Step {
    fn from(step: &StepView) -> Self {
        Self {
            step_id: step.id.to_string(),
            module: step.target.module.clone(),
            target: step.target.name.clone(),
            kind: step.kind.as_str().into(),
            parent: step.parent.map(|p| p.to_string()),
            arguments: step.arguments.iter().map(value_json).collect(),
            cached: step.cached,
            group: step.group.clone(),
            executions: step.executions.iter().map(Execution::from).collect(),
            checkpoints: step
                .checkpoints
                .iter()
                .map(|(env, state)| {
                    let state = state
                        .iter()
                        .map(|(name, value)| (name.clone(), value_json(value)))
                        .collect();
                    (env.clone(), state)
                })
                .collect(),
            streams: step
                .streams
                .iter()
                .map(|s| StepStream {
                    stream_id: s.stream_id.clone(),
                    producer: s.producer.to_string(),
                    items: s.items as u64,
                    buffer: s.buffer,
                    timeout_ms: s.timeout_ms,
                    closed: s.closed.clone(),
                })
                .collect(),
            inputs: step
                .inputs
                .iter()
                .map(|i| StepInput {
                    input_id: i.id.to_string(),
                    execution_id: i.execution.to_string(),
                    title: i.title.clone(),
                    state: i.state.into(),
                })
                .collect(),
        }
    }
}

impl From<&ExecutionView> for Execution {
    fn from(e: &ExecutionView) -> Self {
        Self {
            execution_id: e.id.to_string(),
            attempt: e.id.attempt,
            environment: e.environment.clone(),
            state: state_name(e.state).into(),
            created_at: e.created_at,
            assigned_at: e.assigned_at,
            finished_at: e.finished_at,
            duration_ms: e.assigned_at.zip(e.finished_at).map(|(a, b)| b - a),
            result: e.result.as_ref().map(Outcome::from),
            waits_for_inputs: e.input_dependencies.iter().map(|i| i.to_string()).collect(),
        }
    }
}

/// `GET …/runs/{run}/result`: `{"run_id","status","value"?,"error"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run.
    pub run_id: String,
    /// `value`, `error`, `cancelled`, `abandoned`, `crashed`, `timeout` or `pending`.
    pub status: String,
    /// The value, for `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// The error, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RaisedError>,
}

impl RunResult {
    /// The result of `run`, or `pending` without one.
    pub fn new(run: RunId, result: Option<&ExecutionResult>) -> Self {
        let mut out = Self {
            run_id: run.to_string(),
            status: "pending".into(),
            value: None,
            error: None,
        };
        if let Some(result) = result {
            out.status = super::values::result_kind_name(result.kind()).into();
            match result {
                ExecutionResult::Value { value } => out.value = Some(value_json(value)),
                ExecutionResult::Error { error, .. } => out.error = Some(error.into()),
                _ => {}
            }
        }
        out
    }
}

/// `POST …/steps/{step}/rerun` (the body is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunStep {
    /// The environment to re-run in (the step's or a descendant); the step's by default.
    #[serde(default)]
    pub environment: Option<String>,
}

/// The answer of a re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rerun {
    /// The new execution.
    pub execution_id: String,
    /// Its attempt number.
    pub attempt: u32,
}
