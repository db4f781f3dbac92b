//! Stored values, errors and results as the API shows them.
//!
//! Values are plain JSON (Coflux's typed encoding decoded with [`crate::sdk::decode_json`]).
//! What plain JSON cannot hold is described honestly: a reference becomes
//! `{"execution":id,"module","target"}`, `{"asset":id}`, `{"input":id}` or
//! `{"fragment":{"format","blob","size"}}`, and a value stored as a blob becomes
//! `{"blob":key,"size":n}`.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::model::{
    ErrorInfo, ExecutionResult, ExecutionState, Frame, Reference, ResultKind, Value,
};
use crate::sdk::{decode_json, encode_json};

/// An error raised by a target: `{"type","message","frames":[{"file","line","name","code"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaisedError {
    /// Its type, e.g. `builtins.ValueError`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Its message.
    pub message: String,
    /// Its stack, innermost last.
    #[serde(default)]
    pub frames: Vec<Frame>,
}

impl From<&ErrorInfo> for RaisedError {
    fn from(error: &ErrorInfo) -> Self {
        Self {
            error_type: error.error_type.clone(),
            message: error.message.clone(),
            frames: error.frames.clone(),
        }
    }
}

/// How an execution ended: `{"type":kind}` plus `value` (plain JSON), `error`, `retry` or
/// `successor` as the kind has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The kind: `value`, `error`, `abandoned`, `crashed`, `timeout`, `cancelled`, `cached`,
    /// `deferred`, `suspended`, `spawned` or `recurred`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value, for `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// The error, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RaisedError>,
    /// The execution that retries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    /// The execution whose result it takes (cached, deferred, suspended, spawned, recurred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
}

impl From<&ExecutionResult> for Outcome {
    fn from(result: &ExecutionResult) -> Self {
        let mut out = Self {
            kind: result_kind_name(result.kind()).into(),
            value: None,
            error: None,
            retry: None,
            successor: None,
        };
        match result {
            ExecutionResult::Value { value } => out.value = Some(value_json(value)),
            ExecutionResult::Error { error, retry } => {
                out.error = Some(error.into());
                out.retry = retry.map(|r| r.to_string());
            }
            ExecutionResult::Abandoned { retry }
            | ExecutionResult::Crashed { retry }
            | ExecutionResult::Timeout { retry } => out.retry = retry.map(|r| r.to_string()),
            ExecutionResult::Cancelled => {}
            ExecutionResult::Cached { successor }
            | ExecutionResult::Deferred { successor }
            | ExecutionResult::Suspended { successor }
            | ExecutionResult::Spawned { successor }
            | ExecutionResult::Recurred { successor } => {
                out.successor = Some(successor.to_string());
            }
        }
        out
    }
}

/// The name of a result kind (`value`, `error`, `cancelled`, …).
pub fn result_kind_name(kind: ResultKind) -> &'static str {
    kind.as_str()
}

/// An execution's state: `queued`, `assigned`, or the kind of its result.
pub fn state_name(state: ExecutionState) -> &'static str {
    match state {
        ExecutionState::Queued => "queued",
        ExecutionState::Assigned => "assigned",
        ExecutionState::Finished(kind) => result_kind_name(kind),
    }
}

fn reference_json(reference: &Reference) -> Json {
    match reference {
        Reference::Execution {
            execution,
            module,
            target,
        } => json!({"execution": execution.to_string(), "module": module, "target": target}),
        Reference::Asset { id, .. } => json!({ "asset": id }),
        Reference::Input { id } => json!({ "input": id }),
        Reference::Fragment {
            format,
            blob_key,
            size,
            ..
        } => json!({"fragment": {"format": format, "blob": blob_key, "size": size}}),
    }
}

/// Replaces `{"type":"ref","index":i}` in encoded data with the (encoded) description of the
/// reference, so decoding yields plain JSON throughout.
fn substitute_references(data: Json, references: &[Reference]) -> Json {
    match data {
        Json::Object(map) => {
            let is_ref = map.get("type").and_then(Json::as_str) == Some("ref");
            let index = map.get("index").and_then(Json::as_u64);
            if let (true, Some(i)) = (is_ref, index) {
                let described = usize::try_from(i)
                    .ok()
                    .and_then(|i| references.get(i))
                    .map_or_else(|| json!({ "missing_reference": i }), reference_json);
                return encode_json(described);
            }
            Json::Object(
                map.into_iter()
                    .map(|(k, v)| (k, substitute_references(v, references)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|v| substitute_references(v, references))
                .collect(),
        ),
        other => other,
    }
}

/// A value as plain JSON (see the module docs for references and blobs).
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Raw { data, references } if references.is_empty() => decode_json(data.clone()),
        Value::Raw { data, references } => {
            decode_json(substitute_references(data.clone(), references))
        }
        Value::Blob {
            key,
            size,
            references,
        } => {
            let mut out = json!({ "blob": key, "size": size });
            if !references.is_empty() {
                out["references"] = Json::Array(references.iter().map(reference_json).collect());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExecutionId, RunId, StepId};

    #[test]
    fn values_decode_to_plain_json_with_described_references() {
        let plain = json!({"a": [1, 2], "b": null});
        assert_eq!(value_json(&Value::raw(encode_json(plain.clone()))), plain);

        let execution = ExecutionId {
            step: StepId {
                run: RunId(1),
                number: 2,
            },
            attempt: 1,
        };
        let value = Value::Raw {
            data: json!([{"type": "ref", "index": 0}, {"type": "ref", "index": 1}, {"type": "ref", "index": 7}]),
            references: vec![
                Reference::Execution {
                    execution,
                    module: "m".into(),
                    target: "t".into(),
                },
                Reference::Fragment {
                    format: "pickle".into(),
                    blob_key: "ab".repeat(32),
                    size: 12,
                    metadata: json!({"type": "Point"}),
                },
            ],
        };
        assert_eq!(
            value_json(&value),
            json!([
                {"execution": "R1:2:1", "module": "m", "target": "t"},
                {"fragment": {"format": "pickle", "blob": "ab".repeat(32), "size": 12}},
                {"missing_reference": 7}
            ])
        );

        let blob = Value::Blob {
            key: "cd".repeat(32),
            size: 99,
            references: Vec::new(),
        };
        assert_eq!(
            value_json(&blob),
            json!({"blob": "cd".repeat(32), "size": 99})
        );
    }

    #[test]
    fn results_keep_their_shape() {
        let error = ExecutionResult::Error {
            error: ErrorInfo::new("demo.Boom", "it blew up"),
            retry: None,
        };
        assert_eq!(
            serde_json::to_value(Outcome::from(&error)).unwrap(),
            json!({"type": "error", "error": {"type": "demo.Boom", "message": "it blew up", "frames": []}})
        );
        let null = ExecutionResult::Value {
            value: Value::raw(Json::Null),
        };
        assert_eq!(
            serde_json::to_value(Outcome::from(&null)).unwrap(),
            json!({"type": "value", "value": null})
        );
    }
}
