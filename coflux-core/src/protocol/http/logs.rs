//! Bodies of the log and metric routes of a run.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// `GET …/runs/{run}/logs?after=&limit=&execution=|step=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// Messages in cursor order.
    pub logs: Vec<LogEntry>,
    /// Where to continue from (`after=`): the last message's cursor, or the one given.
    #[serde(default)]
    pub cursor: Option<u64>,
}

/// A log message (also the `data:` of each event of `…/logs/stream`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its position in the project's log.
    #[serde(default)]
    pub cursor: u64,
    /// The execution that logged it.
    pub execution_id: String,
    /// 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error.
    pub level: u8,
    /// The message, with `{name}` placeholders.
    #[serde(default)]
    pub template: Option<String>,
    /// Values for the placeholders, as plain JSON.
    #[serde(default)]
    pub values: Map<String, Json>,
    /// When it was logged.
    pub timestamp: u64,
}

/// A run's metrics, per execution (`GET …/runs/{run}/metrics[?execution=]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// The run.
    pub run_id: String,
    /// Executions with metrics, by step and attempt.
    pub executions: Vec<ExecutionMetrics>,
    /// Whether points were left out (there is a cap per answer).
    #[serde(default)]
    pub truncated: bool,
}

/// The metrics of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionMetrics {
    /// The execution.
    pub execution_id: String,
    /// Its metrics, by key.
    pub metrics: Vec<MetricSeries>,
}

/// One metric of an execution: its definition and its points in the order they arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// The metric's key.
    pub key: String,
    /// Its definition (`progress`, `upper`, …; `null` if none arrived).
    pub definition: Option<Json>,
    /// Its points.
    pub points: Vec<MetricPoint>,
}

/// A point of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The x-axis position.
    pub at: f64,
    /// The value.
    pub value: f64,
    /// When it was reported.
    pub timestamp: u64,
}
