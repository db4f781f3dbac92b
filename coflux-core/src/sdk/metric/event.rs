//! What a metric is and what an execution reports about it: [`MetricDefinition`],
//! [`MetricEvent`], and the embedded worker's [`MetricHook`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::ExecutionId;

/// The key `progress` uses (as `cf.progress` does).
pub const PROGRESS_KEY: &str = "progress";

/// The definition of a metric, as `define_metric` carries it (the Python SDK's fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricDefinition {
    /// At most this many points per second are sent (the agent keeps the latest of a burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<f64>,
    /// The group (chart) the metric is shown in: its x-axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Units of the group's x-axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_units: Option<String>,
    /// Lower bound of the group's x-axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_lower: Option<f64>,
    /// Upper bound of the group's x-axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_upper: Option<f64>,
    /// The scale (y-axis) shared by metrics naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    /// Units of the y-axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    /// Whether the metric is progress towards `upper`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub progress: bool,
    /// Lower bound of the y-axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    /// Upper bound of the y-axis (for progress: the total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl MetricDefinition {
    /// The definition of a progress metric towards `upper` (`None`: a fraction of 1).
    pub fn progress(upper: Option<f64>) -> Self {
        Self {
            throttle: Some(10.0),
            progress: true,
            upper,
            ..Self::default()
        }
    }

    /// Progress as text: `3/10` towards a total, `42%` as a fraction (no total, or 1).
    pub fn progress_text(&self, value: f64) -> String {
        match self.upper {
            Some(upper) if upper != 1.0 && upper > 0.0 => {
                format!("{}/{}", number(value), number(upper))
            }
            _ => format!("{}%", number((value * 100.0).clamp(0.0, 100.0).floor())),
        }
    }
}

/// A number without a fractional part when it has none.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.2}")
    }
}

/// What a running execution reports about a metric.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricEvent {
    /// The metric's definition (sent before its first point, and when it changes).
    Define {
        /// The metric's key.
        key: String,
        /// Its definition.
        definition: MetricDefinition,
    },
    /// A point.
    Point {
        /// The metric's key.
        key: String,
        /// The value.
        value: f64,
        /// The x-axis position (seconds since the execution started unless given).
        at: f64,
    },
}

type HookFn = dyn Fn(ExecutionId, MetricEvent) + Send + Sync;

/// Receives the metrics of an embedded worker's executions (set `WorkerOptions::metrics`).
#[derive(Clone)]
pub struct MetricHook(Arc<HookFn>);

impl MetricHook {
    /// A hook calling `f` for every event, on the execution's task (keep it quick).
    pub fn new(f: impl Fn(ExecutionId, MetricEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands an event to the hook.
    pub fn record(&self, execution: ExecutionId, event: MetricEvent) {
        (self.0)(execution, event)
    }
}

impl fmt::Debug for MetricHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricHook")
    }
}
