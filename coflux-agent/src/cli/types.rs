//! Typed views of the server's JSON answers (the shapes documented in
//! `coflux_server::http`), used for text output. JSON output prints the answers unchanged.

use serde::Deserialize;
use serde_json::Value as Json;

/// `GET /api/projects`.
#[derive(Debug, Deserialize)]
pub struct ProjectList {
    /// The projects.
    pub projects: Vec<ProjectItem>,
}

/// A project.
#[derive(Debug, Deserialize)]
pub struct ProjectItem {
    /// Its name.
    pub name: String,
}

/// `GET …/environments`.
#[derive(Debug, Deserialize)]
pub struct EnvironmentList {
    /// The environments.
    pub environments: Vec<EnvironmentItem>,
}

/// An environment.
#[derive(Debug, Deserialize)]
pub struct EnvironmentItem {
    /// Its name.
    pub name: String,
    /// Its parent's name.
    pub parent: Option<String>,
    /// `active`, `paused` or `archived`.
    pub state: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// `POST …/runs`.
#[derive(Debug, Deserialize)]
pub struct Submitted {
    /// The new run.
    pub run_id: String,
    /// Its initial step.
    pub step_id: String,
    /// Its initial execution.
    pub execution_id: String,
}

/// `GET …/runs`.
#[derive(Debug, Deserialize)]
pub struct RunList {
    /// Runs, newest first.
    pub runs: Vec<RunSummary>,
}

/// A run in a list.
#[derive(Debug, Deserialize)]
pub struct RunSummary {
    /// Its id.
    pub run_id: String,
    /// The workflow's module.
    pub module: String,
    /// The workflow's name.
    pub target: String,
    /// Where it was submitted.
    pub environment: String,
    /// Submission time (ms).
    pub created_at: i64,
}

/// `GET …/runs/{run}`.
#[derive(Debug, Deserialize)]
pub struct Run {
    /// Its id.
    pub run_id: String,
    /// Where it was submitted.
    pub environment: String,
    /// Submission time (ms).
    pub created_at: i64,
    /// The execution that started it (a workflow called from another run).
    #[serde(default)]
    pub parent: Option<String>,
    /// Its steps.
    pub steps: Vec<Step>,
    /// Runs its executions started by calling workflows.
    #[serde(default)]
    pub spawned: Vec<SpawnedRun>,
}

/// A run started by an execution of another run.
#[derive(Debug, Deserialize)]
pub struct SpawnedRun {
    /// The calling execution.
    pub parent: String,
    /// The spawned run.
    pub run_id: String,
}

/// A step of a run.
#[derive(Debug, Deserialize)]
pub struct Step {
    /// Its id.
    pub step_id: String,
    /// The target's module.
    pub module: String,
    /// The target's name.
    pub target: String,
    /// `workflow` or `task`.
    pub kind: String,
    /// The execution that called it.
    pub parent: Option<String>,
    /// Arguments as plain JSON.
    #[serde(default)]
    pub arguments: Vec<Json>,
    /// Whether it has a cache key.
    #[serde(default)]
    pub cached: bool,
    /// The group (`cf.group`) it was called in.
    #[serde(default)]
    pub group: Option<String>,
    /// Its attempts.
    pub executions: Vec<Execution>,
    /// Its checkpoint state (`cf.Checkpoint`) per environment name.
    #[serde(default)]
    pub checkpoints: std::collections::BTreeMap<String, serde_json::Map<String, Json>>,
    /// The streams it produced.
    #[serde(default)]
    pub streams: Vec<StreamSummary>,
}

/// A stream of a step.
#[derive(Debug, Deserialize)]
pub struct StreamSummary {
    /// Its id (`RUN:STEP_INDEX`).
    pub stream_id: String,
    /// How many items it holds.
    pub items: u64,
    /// How it ended, if it has.
    #[serde(default)]
    pub closed: Option<String>,
}

/// One attempt of a step.
#[derive(Debug, Deserialize)]
pub struct Execution {
    /// Its id.
    pub execution_id: String,
    /// Its attempt number.
    pub attempt: u32,
    /// Where it ran.
    pub environment: String,
    /// `queued`, `assigned` or the kind of its result.
    pub state: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Assignment time (ms).
    pub assigned_at: Option<i64>,
    /// End time (ms).
    pub finished_at: Option<i64>,
    /// How long it ran (ms).
    pub duration_ms: Option<i64>,
    /// Its result: `{"type", "value"?, "error"?, "retry"?, "successor"?}`.
    pub result: Option<Json>,
    /// Its latest progress (added by the CLI from `…/runs/{run}/metrics`).
    #[serde(default)]
    pub progress: Option<ProgressView>,
}

/// The latest point of an execution's progress metric (`cf.progress`, `sdk::progress`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ProgressView {
    /// The metric's key.
    pub key: String,
    /// The latest value.
    pub value: f64,
    /// The total, if the metric has one.
    pub upper: Option<f64>,
    /// As shown: `3/10` or `42%`.
    pub text: String,
}

/// `GET …/runs/{run}/metrics`.
#[derive(Debug, Deserialize)]
pub struct RunMetrics {
    /// Executions with metrics.
    pub executions: Vec<ExecutionMetrics>,
}

/// The metrics of one execution.
#[derive(Debug, Deserialize)]
pub struct ExecutionMetrics {
    /// The execution.
    pub execution_id: String,
    /// Its metrics.
    pub metrics: Vec<MetricSeries>,
}

/// One metric: its definition and points in order.
#[derive(Debug, Deserialize)]
pub struct MetricSeries {
    /// Its key.
    pub key: String,
    /// Its definition (`progress`, `upper`…).
    pub definition: Option<Json>,
    /// Its points.
    pub points: Vec<MetricPoint>,
}

/// A point of a metric.
#[derive(Debug, Deserialize)]
pub struct MetricPoint {
    /// The value.
    pub value: f64,
}

/// `GET …/runs/{run}/result`.
#[derive(Debug, Deserialize)]
pub struct RunResult {
    /// The run.
    pub run_id: String,
    /// `value`, `error`, `cancelled`, `abandoned`, `timeout` or `pending`.
    pub status: String,
    /// The value, for `value`.
    pub value: Option<Json>,
    /// The error, for `error`.
    pub error: Option<ErrorDetail>,
}

/// An error raised by a target.
#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    /// Its type.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Its message.
    pub message: String,
    /// Its stack, innermost last.
    #[serde(default)]
    pub frames: Vec<Frame>,
}

/// A stack frame.
#[derive(Debug, Deserialize)]
pub struct Frame {
    /// Source file.
    pub file: String,
    /// Line.
    pub line: u32,
    /// Function.
    pub name: String,
}

/// `POST …/steps/{step}/rerun`.
#[derive(Debug, Deserialize)]
pub struct Rerun {
    /// The new execution.
    pub execution_id: String,
    /// Its attempt number.
    pub attempt: u32,
}

/// `GET …/runs/{run}/logs`.
#[derive(Debug, Deserialize)]
pub struct LogPage {
    /// Messages in order.
    pub logs: Vec<LogEntry>,
    /// Where to continue from (`after=`).
    #[serde(default)]
    pub cursor: Option<Json>,
}

/// A log message.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    /// The execution that logged it.
    pub execution_id: String,
    /// Its level: a name (`info`) or Coflux's number (0 debug … 5 error).
    pub level: Json,
    /// The message, with `{name}` placeholders.
    pub template: String,
    /// Values for the placeholders.
    #[serde(default)]
    pub values: Json,
    /// When it was logged (ms).
    pub timestamp: i64,
}
