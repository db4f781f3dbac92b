//! Metrics and progress of the running execution.
//!
//! ```ignore
//! use coflux_core::sdk::{Metric, progress};
//!
//! let loss = Metric::new("loss").group("training").units("nats");
//! for epoch in 0..10 {
//!     loss.record(train_one_epoch());
//!     progress((epoch + 1, 10));           // shown as `3/10` by `coflux runs inspect`
//! }
//! progress(0.5);                           // a fraction: shown as `50%`
//! ```
//!
//! A metric is defined (its [`MetricDefinition`] sent) before its first point in an execution,
//! and again if the definition changes. Points carry `at`, the x-axis position, which defaults
//! to the seconds since the execution started. Under an agent, they travel like the Python
//! SDK's (`define_metric` and `metric` notifications); in an embedded worker they go to the
//! [`MetricHook`] of its `WorkerOptions`, if any. Outside an execution nothing is recorded.

pub(crate) mod event;

use super::context::Context;
pub use event::{MetricDefinition, MetricEvent, MetricHook, PROGRESS_KEY};

/// A metric of the running execution (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    key: String,
    definition: MetricDefinition,
}

impl Metric {
    /// A metric named `key`, throttled to 10 points per second (as in the Python SDK).
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            definition: MetricDefinition {
                throttle: Some(10.0),
                ..MetricDefinition::default()
            },
        }
    }

    /// At most `per_second` points per second (`None`: every point is sent).
    pub fn throttle(mut self, per_second: Option<f64>) -> Self {
        self.definition.throttle = per_second;
        self
    }

    /// Shows it in the group (chart) `name`.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.definition.group = Some(name.into());
        self
    }

    /// Puts it on the scale (y-axis) `name`.
    pub fn scale(mut self, name: impl Into<String>) -> Self {
        self.definition.scale = Some(name.into());
        self
    }

    /// Units of its values.
    pub fn units(mut self, units: impl Into<String>) -> Self {
        self.definition.units = Some(units.into());
        self
    }

    /// Bounds of its values.
    pub fn bounds(mut self, lower: Option<f64>, upper: Option<f64>) -> Self {
        self.definition.lower = lower;
        self.definition.upper = upper;
        self
    }

    /// Marks it as progress towards its upper bound.
    pub fn as_progress(mut self) -> Self {
        self.definition.progress = true;
        self
    }

    /// Its key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its definition.
    pub fn definition(&self) -> &MetricDefinition {
        &self.definition
    }

    /// Records a point now (at the seconds since the execution started).
    pub fn record(&self, value: f64) {
        self.record_at(value, None);
    }

    /// Records a point at `at` on the x-axis (`None`: seconds since the execution started).
    /// Outside an execution it does nothing.
    pub fn record_at(&self, value: f64, at: Option<f64>) {
        if let Some(context) = Context::current() {
            context.record_metric(&self.key, &self.definition, value, at);
        }
    }
}

/// How far the running execution is: a fraction (`0.42`) or done of a total (`(3, 10)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// A fraction, 0 to 1.
    Fraction(f64),
    /// Items done of a total.
    Of {
        /// Done so far.
        done: f64,
        /// The total.
        total: f64,
    },
}

impl From<f64> for Progress {
    fn from(fraction: f64) -> Self {
        Self::Fraction(fraction)
    }
}

impl From<f32> for Progress {
    fn from(fraction: f32) -> Self {
        Self::Fraction(f64::from(fraction))
    }
}

macro_rules! progress_of {
    ($($t:ty),*) => {$(
        impl From<($t, $t)> for Progress {
            fn from((done, total): ($t, $t)) -> Self {
                Self::Of { done: done as f64, total: total as f64 }
            }
        }
    )*};
}
progress_of!(u32, u64, usize, i32, i64, f64);

/// Records the running execution's progress as the metric `progress` (as `cf.progress` does):
/// `progress(0.42)` or `progress((3, 10))`. Outside an execution it does nothing.
pub fn progress(progress: impl Into<Progress>) {
    let (value, upper) = match progress.into() {
        Progress::Fraction(f) => (f, None),
        Progress::Of { done, total } => (done, Some(total)),
    };
    if let Some(context) = Context::current() {
        let definition = MetricDefinition::progress(upper);
        context.record_metric(PROGRESS_KEY, &definition, value, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_serialise_like_the_python_sdk() {
        let json = serde_json::to_value(MetricDefinition::progress(Some(10.0))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"throttle": 10.0, "progress": true, "upper": 10.0})
        );
        // What `cf.progress` sends (with a null scale) parses.
        let python: MetricDefinition = serde_json::from_value(
            serde_json::json!({"throttle": 10, "scale": null, "progress": true, "upper": 4}),
        )
        .unwrap();
        assert!(python.progress);
        assert_eq!(python.upper, Some(4.0));
    }

    #[test]
    fn progress_reads_as_done_of_total_or_percent() {
        assert_eq!(
            MetricDefinition::progress(Some(10.0)).progress_text(3.0),
            "3/10"
        );
        assert_eq!(MetricDefinition::progress(None).progress_text(0.425), "42%");
        assert_eq!(
            MetricDefinition::progress(Some(1.0)).progress_text(1.0),
            "100%"
        );
    }
}
