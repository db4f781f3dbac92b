//! Log records as received from agents ([`LogRecord`]), as stored and read back
//! ([`StoredLog`]), and the errors of the log store ([`LogError`]).

use std::collections::BTreeMap;

use coflux_core::model::{ExecutionId, InvalidProjectName, RunId, StepId, Value};
use coflux_core::protocol::http::LogEntry;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The highest valid log level (0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error).
pub const MAX_LEVEL: u8 = 5;

/// The largest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// The largest accepted JSON encoding of a record's values, in bytes.
pub const MAX_VALUES_BYTES: usize = 256 * 1024;

/// One log message of an execution, as an executor reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The execution that logged it.
    pub execution: ExecutionId,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error.
    pub level: u8,
    /// The message, with `{name}` placeholders for `values` (a captured output line for levels
    /// 1 and 3).
    #[serde(default)]
    pub template: Option<String>,
    /// Named values rendered into the template (or shown alongside it).
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
}

/// Why a single log record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The level is above [`MAX_LEVEL`].
    #[error("level {0} is out of range (0..=5)")]
    InvalidLevel(u8),
    /// The template is longer than [`MAX_TEMPLATE_BYTES`].
    #[error("template of {size} bytes exceeds the limit of {max} bytes")]
    TemplateTooLarge {
        /// The template's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The values encode to more than [`MAX_VALUES_BYTES`].
    #[error("values of {size} bytes exceed the limit of {max} bytes")]
    ValuesTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The timestamp does not fit the store's signed 64-bit milliseconds.
    #[error("timestamp {0} is out of range")]
    InvalidTimestamp(u64),
    /// The values could not be encoded as JSON.
    #[error("values cannot be encoded: {0}")]
    Unencodable(String),
    /// A metric definition or point is malformed (key, definition or value).
    #[error("{0}")]
    InvalidMetric(String),
}

impl RecordError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidLevel(_) => "invalid_level",
            Self::TemplateTooLarge { .. } => "template_too_large",
            Self::ValuesTooLarge { .. } => "values_too_large",
            Self::InvalidTimestamp(_) => "invalid_timestamp",
            Self::Unencodable(_) => "invalid_values",
            Self::InvalidMetric(_) => "invalid_metric",
        }
    }
}

/// An error of the log store.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The project name is not valid.
    #[error(transparent)]
    InvalidProject(#[from] InvalidProjectName),
    /// A record of an appended batch was refused (nothing of the batch was stored).
    #[error("log record {index}: {reason}")]
    InvalidRecord {
        /// The record's position in the batch.
        index: usize,
        /// Why it was refused.
        #[source]
        reason: RecordError,
    },
    /// A query parameter was malformed.
    #[error("{0}")]
    InvalidQuery(String),
    /// The execution or step filter names another run.
    #[error("{filter} does not belong to run {run}")]
    FilterOutsideRun {
        /// The filter, as text.
        filter: String,
        /// The queried run.
        run: RunId,
    },
    /// Too many records are waiting to be written; the batch was refused.
    #[error("the log writer is overloaded ({pending} records pending)")]
    Overloaded {
        /// Records waiting to be written.
        pending: usize,
    },
    /// The writer thread has stopped.
    #[error("the log writer has stopped")]
    Stopped,
    /// SQLite failed.
    #[error("log storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("log storage error: {0}")]
    Postgres(#[from] postgres::Error),
    /// The file system failed.
    #[error("log storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The log database's schema could not be brought up to date.
    #[error("log schema migration failed: {0}")]
    Migration(String),
    /// A stored row could not be decoded.
    #[error("corrupt log record: {0}")]
    Corrupt(String),
}

impl LogError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidProject(_) => "invalid_project",
            Self::InvalidRecord { reason, .. } => reason.code(),
            Self::InvalidQuery(_) => "bad_request",
            Self::FilterOutsideRun { .. } => "filter_outside_run",
            Self::Overloaded { .. } => "logs_overloaded",
            Self::Stopped => "logs_unavailable",
            Self::Sqlite(_) | Self::Postgres(_) | Self::Io(_) | Self::Migration(_) => {
                "storage_error"
            }
            Self::Corrupt(_) => "storage_corrupt",
        }
    }

    /// Whether the caller is at fault (as opposed to the server).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidProject(_)
                | Self::InvalidRecord { .. }
                | Self::InvalidQuery(_)
                | Self::FilterOutsideRun { .. }
        )
    }
}

impl LogRecord {
    /// Checks the level, the timestamp and the sizes; returns the values' JSON encoding (`None`
    /// when there are no values), as it will be stored.
    pub fn validate(&self) -> Result<Option<String>, RecordError> {
        if self.level > MAX_LEVEL {
            return Err(RecordError::InvalidLevel(self.level));
        }
        if i64::try_from(self.timestamp_ms).is_err() {
            return Err(RecordError::InvalidTimestamp(self.timestamp_ms));
        }
        if let Some(template) = &self.template
            && template.len() > MAX_TEMPLATE_BYTES
        {
            return Err(RecordError::TemplateTooLarge {
                size: template.len(),
                max: MAX_TEMPLATE_BYTES,
            });
        }
        if self.values.is_empty() {
            return Ok(None);
        }
        let json = serde_json::to_string(&self.values)
            .map_err(|e| RecordError::Unencodable(e.to_string()))?;
        if json.len() > MAX_VALUES_BYTES {
            return Err(RecordError::ValuesTooLarge {
                size: json.len(),
                max: MAX_VALUES_BYTES,
            });
        }
        Ok(Some(json))
    }
}

/// Restricts a query to one step or one execution of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFilter {
    /// Every attempt of a step.
    Step(StepId),
    /// One execution.
    Execution(ExecutionId),
}

impl LogFilter {
    /// The run the filter belongs to.
    pub fn run(self) -> RunId {
        match self {
            Self::Step(step) => step.run,
            Self::Execution(execution) => execution.run(),
        }
    }

    /// Whether a log of `execution` passes the filter.
    pub fn matches(self, execution: ExecutionId) -> bool {
        match self {
            Self::Step(step) => execution.step == step,
            Self::Execution(e) => execution == e,
        }
    }
}

/// A stored log record: a [`LogRecord`] with its cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    /// Position in the project's log (increases with every record, never reused).
    pub cursor: u64,
    /// The execution that logged it.
    pub execution: ExecutionId,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error.
    pub level: u8,
    /// The message template.
    pub template: Option<String>,
    /// Named values.
    pub values: BTreeMap<String, Value>,
}

impl StoredLog {
    /// The record as the HTTP API shows it, with values decoded to plain JSON (blobs as
    /// `{"blob": key}`).
    pub fn to_entry(&self) -> LogEntry {
        LogEntry {
            cursor: self.cursor,
            execution_id: self.execution.to_string(),
            level: self.level,
            template: self.template.clone(),
            values: self
                .values
                .iter()
                .map(|(name, value)| (name.clone(), display_value(value)))
                .collect(),
            timestamp: self.timestamp_ms,
        }
    }
}

/// A page of a query: the logs, and the cursor to continue after (the last log's, or the one
/// the query started after).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogPage {
    /// The logs, in cursor order.
    pub logs: Vec<StoredLog>,
    /// Where the next page starts (`None` when nothing was read and no cursor was given).
    pub cursor: Option<u64>,
}

/// A value as plain JSON for display (the same rendering as run views and results).
pub fn display_value(value: &Value) -> Json {
    coflux_core::protocol::http::values::value_json(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coflux_core::model::Reference;
    use serde_json::json;

    fn execution() -> ExecutionId {
        "R1:1:1".parse().unwrap()
    }

    fn record(level: u8) -> LogRecord {
        LogRecord {
            execution: execution(),
            timestamp_ms: 1,
            level,
            template: Some("hello {name}".into()),
            values: BTreeMap::new(),
        }
    }

    #[test]
    fn records_are_validated() {
        for level in 0..=5 {
            assert_eq!(record(level).validate(), Ok(None));
        }
        assert_eq!(record(6).validate(), Err(RecordError::InvalidLevel(6)));
        let mut big = record(2);
        big.template = Some("x".repeat(MAX_TEMPLATE_BYTES + 1));
        assert_eq!(big.validate().unwrap_err().code(), "template_too_large");
        let mut late = record(2);
        late.timestamp_ms = u64::MAX;
        assert_eq!(late.validate().unwrap_err().code(), "invalid_timestamp");
        let mut heavy = record(2);
        heavy
            .values
            .insert("v".into(), Value::raw(json!("y".repeat(MAX_VALUES_BYTES))));
        assert_eq!(heavy.validate().unwrap_err().code(), "values_too_large");
        let mut ok = record(2);
        ok.values.insert("name".into(), Value::raw(json!("bob")));
        assert!(ok.validate().unwrap().unwrap().contains("bob"));
    }

    #[test]
    fn values_are_displayed_as_plain_json() {
        let dict = Value::raw(json!({"type":"dict","items":["a",[1,{"type":"ref","index":0}]]}));
        let dict = match dict {
            Value::Raw { data, .. } => Value::Raw {
                data,
                references: vec![Reference::Asset {
                    id: "A1".into(),
                    name: None,
                    count: None,
                    size: None,
                }],
            },
            other => other,
        };
        assert_eq!(display_value(&dict), json!({"a": [1, {"asset": "A1"}]}));
        let blob = Value::Blob {
            key: "ab".into(),
            size: 3,
            references: vec![],
        };
        assert_eq!(display_value(&blob), json!({"blob": "ab", "size": 3}));
        // A user dictionary that looks like a reference stays as it is.
        let user = Value::Raw {
            data: json!({"type":"dict","items":["type","ref","index",0]}),
            references: vec![Reference::Asset {
                id: "A1".into(),
                name: None,
                count: None,
                size: None,
            }],
        };
        assert_eq!(display_value(&user), json!({"type": "ref", "index": 0}));
    }

    #[test]
    fn filters_match_their_step_or_execution() {
        let e: ExecutionId = "R1:2:3".parse().unwrap();
        assert!(LogFilter::Execution(e).matches(e));
        assert!(!LogFilter::Execution(e).matches("R1:2:1".parse().unwrap()));
        assert!(LogFilter::Step(e.step).matches("R1:2:1".parse().unwrap()));
        assert!(!LogFilter::Step(e.step).matches("R1:3:1".parse().unwrap()));
        assert_eq!(LogFilter::Step(e.step).run(), RunId(1));
    }
}
