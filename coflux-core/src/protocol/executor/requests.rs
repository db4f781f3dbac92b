//! The params of the requests an execution makes and waits on (`submit_execution`, `select`,
//! `cancel`, `suspend`, blob transfers), and of the worker's `execute` and `abort`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::manifest::WireOptions;
use super::traceback::WireError;
use super::value::WireValue;
use crate::model::{ExecutionResult, TargetKind};

/// `submit_execution` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitExecution {
    /// The parent (the calling execution).
    pub execution_id: String,
    /// The child's module.
    pub module: String,
    /// The child's target.
    pub target: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Vec<WireValue>,
    /// Task or workflow (default task).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TargetKind>,
    /// The group the child belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    /// Options (the target's defaults, possibly overridden at the call site).
    #[serde(flatten)]
    pub options: WireOptions,
    /// Stream configuration (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Json>,
}

/// The result of `submit_execution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitResult {
    /// The child's id.
    pub execution_id: String,
    /// Its module.
    pub module: String,
    /// Its target.
    pub target: String,
}

/// A handle in `select` and `cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    /// `execution`, `input` or `stream`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
    /// For streams: the sequence to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl Handle {
    /// An execution handle.
    pub fn execution(id: impl Into<String>) -> Self {
        Self {
            kind: "execution".into(),
            id: id.into(),
            sequence: None,
        }
    }
}

/// `select` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Select {
    /// The caller.
    pub execution_id: String,
    /// What to wait for.
    pub handles: Vec<Handle>,
    /// Whether the caller may be suspended while waiting.
    #[serde(default)]
    pub suspend: bool,
    /// How long to wait (absent: until one resolves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Cancel the handles that did not win.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_remaining: bool,
}

/// How the winner of a `select` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectStatus {
    /// Returned a value.
    Ok,
    /// Raised an error.
    Error,
    /// Was cancelled.
    Cancelled,
    /// An input was dismissed.
    Dismissed,
    /// Timed out.
    Timeout,
    /// Its worker went away.
    Abandoned,
    /// Its executor crashed.
    Crashed,
}

impl SelectStatus {
    /// The status of a final result (`None` for a result that hands over to a successor).
    pub fn of(result: &ExecutionResult) -> Option<Self> {
        if !result.is_final() {
            return None;
        }
        Some(match result {
            ExecutionResult::Value { .. } => Self::Ok,
            ExecutionResult::Error { .. } => Self::Error,
            ExecutionResult::Cancelled => Self::Cancelled,
            ExecutionResult::Timeout { .. } => Self::Timeout,
            ExecutionResult::Crashed { .. } => Self::Crashed,
            _ => Self::Abandoned,
        })
    }

    /// The result a waiter sees for a non-`ok`, non-`error` status (`None` for those two,
    /// which carry a value or an error).
    pub fn to_result(self) -> Option<ExecutionResult> {
        match self {
            Self::Ok | Self::Error => None,
            Self::Cancelled | Self::Dismissed => Some(ExecutionResult::Cancelled),
            Self::Timeout => Some(ExecutionResult::Timeout { retry: None }),
            Self::Abandoned => Some(ExecutionResult::Abandoned { retry: None }),
            Self::Crashed => Some(ExecutionResult::Crashed { retry: None }),
        }
    }
}

/// The (non-null) result of `select`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectResult {
    /// Index of the handle that resolved.
    pub winner: usize,
    /// How it ended.
    pub status: SelectStatus,
    /// Its value, for `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<WireValue>,
    /// Its error, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// `cancel` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancel {
    /// The caller.
    pub execution_id: String,
    /// What to cancel.
    pub handles: Vec<Handle>,
}

/// `suspend` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspend {
    /// The caller.
    pub execution_id: String,
    /// When to resume (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_after: Option<i64>,
    /// A stream position to wait for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_wait: Option<Json>,
}

/// Params of requests not interpreted yet: the caller, and everything else kept as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionParams {
    /// The caller.
    pub execution_id: String,
    /// The other params.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Json>,
}

/// `download_blob` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownloadBlob {
    /// The caller.
    pub execution_id: String,
    /// The blob.
    pub blob_key: String,
    /// Where to write it (parent directories are created).
    pub target_path: String,
    /// First byte of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Length of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

/// `upload_blob` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadBlob {
    /// The caller.
    pub execution_id: String,
    /// The file to store.
    pub source_path: String,
}

/// `execute` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execute {
    /// The execution (our display form, e.g. `R1:2:1`).
    pub execution_id: String,
    /// The target's module.
    pub module: String,
    /// The target's name.
    pub target: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Vec<WireValue>,
    /// A directory for the execution (the adapter changes into it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Stream configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Json>,
    /// The step's checkpoint state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<BTreeMap<String, WireValue>>,
}

/// `abort` params (our extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Abort {
    /// The execution to stop.
    pub execution_id: String,
}
