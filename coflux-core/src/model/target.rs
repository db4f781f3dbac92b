//! Target definitions (workflows and tasks) and the options of a step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether a target is a run entry point or a step within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A run entry point, submitted by users.
    Workflow,
    /// Called from a workflow or another task; a step within the run.
    Task,
}

impl TargetKind {
    /// `workflow` or `task`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workflow => "workflow",
            Self::Task => "task",
        }
    }
}

/// Names a target: its module (repository path) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetRef {
    /// The module, e.g. `quickstart` or `app.flows`.
    pub module: String,
    /// The target's name within the module.
    pub name: String,
}

impl TargetRef {
    /// Builds a reference.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.module, self.name)
    }
}

/// A declared parameter of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Its name (only for display: caching and memoising go by position).
    pub name: String,
    /// Its type, as written in code.
    pub annotation: Option<String>,
    /// Its default, as JSON text.
    pub default: Option<String>,
}

/// Which parameters take part in a key: all of them, or some by position (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamSelection {
    /// `true`: every parameter.
    All(bool),
    /// The chosen parameter indexes.
    Indexes(Vec<u32>),
}

impl ParamSelection {
    /// Whether parameter `index` is selected.
    pub fn includes(&self, index: usize) -> bool {
        match self {
            Self::All(all) => *all,
            Self::Indexes(ix) => ix.iter().any(|i| *i as usize == index),
        }
    }
}

/// Cache options: successful results are reused across runs, within `max_age`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// The parameters that make up the key.
    pub params: ParamSelection,
    /// Results older than this are not reused (`None`: any age).
    #[serde(default)]
    pub max_age_ms: Option<u64>,
    /// Replaces `module:target` in the key, so different targets can share results.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Part of the key: bump it to invalidate earlier results.
    #[serde(default)]
    pub version: Option<String>,
}

/// Automatic retries of errors, abandonment and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many retries after consecutive failures (`None`: unlimited).
    pub limit: Option<u32>,
    /// Delay before the first retry.
    #[serde(default)]
    pub backoff_min_ms: u64,
    /// Delay before the last retry (delays grow linearly from min to max).
    #[serde(default)]
    pub backoff_max_ms: u64,
}

impl RetryPolicy {
    /// A policy of `limit` retries without delay.
    pub fn limit(limit: u32) -> Self {
        Self {
            limit: Some(limit),
            backoff_min_ms: 0,
            backoff_max_ms: 0,
        }
    }
}

/// Debounce: pending executions with the same key collapse into the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferConfig {
    /// The parameters that make up the key.
    pub params: ParamSelection,
}

/// Tags a worker must provide (`key → accepted values`).
pub type Requires = BTreeMap<String, Vec<String>>;

/// The options of a step, from the target's definition and the call site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOptions {
    /// Reuse successful results across runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// Retry failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryPolicy>,
    /// Collapse pending executions with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defer: Option<DeferConfig>,
    /// Reuse executions within the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<ParamSelection>,
    /// Wait this long before the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Fail an execution that runs longer than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Tags the worker must provide.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requires: Requires,
    /// Argument indexes whose referenced executions must finish first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_for: Vec<u32>,
    /// A null result schedules the next execution.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recurrent: bool,
    /// The named group (`cf.group`) the call was made in, shown with its step (call sites
    /// only; no effect on scheduling or keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The call site's stream settings (`with_streams(...)`), handed to the executor: the
    /// default buffer and idle timeout of the streams the execution produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<StreamDefaults>,
}

/// Stream settings of a call site, as the Python SDK's `cf.Streams` sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDefaults {
    /// Items a producer may run ahead of its slowest consumer (`None`: unbounded; absent: 0).
    #[serde(default = "lockstep")]
    pub buffer: Option<u32>,
    /// How long a consumer waits for the next item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn lockstep() -> Option<u32> {
    Some(0)
}

/// A workflow or task as declared in code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetDefinition {
    /// Where it lives and what it is called.
    pub target: TargetRef,
    /// Workflow or task.
    pub kind: TargetKind,
    /// Its parameters, in order.
    pub parameters: Vec<Parameter>,
    /// Its default options.
    pub options: StepOptions,
    /// Its doc comment, shown to users.
    #[serde(default)]
    pub instruction: Option<String>,
}

/// A child call, as sent to the orchestrator.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitRequest {
    /// The target to call.
    pub target: TargetRef,
    /// Workflow or task.
    pub kind: TargetKind,
    /// Encoded arguments.
    pub arguments: Vec<crate::model::Value>,
    /// Options (the target's defaults, possibly overridden at the call site).
    pub options: StepOptions,
}

/// Per-run changes to a workflow's options, given with a submission (each replaces the
/// option it names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptionOverrides {
    /// Replaces `requires` (`{}` clears them).
    pub requires: Option<Requires>,
    /// Turns memoising of the run's steps on (all parameters) or off.
    pub memo: Option<bool>,
    /// Replaces the delay before the first attempt (milliseconds; 0: none).
    pub delay_ms: Option<u64>,
    /// Replaces the retries: at most this many, without backoff (0: none).
    pub retries: Option<u32>,
}

impl OptionOverrides {
    /// Applies the overrides to `options`; an invalid `requires` (an empty key or no values)
    /// is named in the error.
    pub fn apply(&self, options: &mut StepOptions) -> Result<(), String> {
        if let Some(requires) = &self.requires {
            for (key, values) in requires {
                if key.trim().is_empty() || values.is_empty() || values.iter().any(String::is_empty)
                {
                    return Err(format!(
                        "invalid requires '{key}': a tag needs a non-empty key and values"
                    ));
                }
            }
            options.requires = requires.clone();
        }
        if let Some(memo) = self.memo {
            options.memo = memo.then_some(ParamSelection::All(true));
        }
        if let Some(delay) = self.delay_ms {
            options.delay_ms = (delay > 0).then_some(delay);
        }
        if let Some(retries) = self.retries {
            options.retries = (retries > 0).then(|| RetryPolicy::limit(retries));
        }
        Ok(())
    }
}
