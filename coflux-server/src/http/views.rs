//! JSON shapes of the API's answers: environments, runs, steps, executions, results and values.
//!
//! Values are shown as plain JSON (Coflux's typed encoding decoded with
//! [`coflux_core::sdk::decode_json`]). What plain JSON cannot hold is described honestly: a
//! reference becomes `{"execution":id,"module","target"}`, `{"asset":id}`, `{"input":id}` or
//! `{"fragment":{"format","blob","size"}}`, and a value stored as a blob becomes
//! `{"blob":key,"size":n}`.

use std::collections::BTreeMap;

use coflux_core::api::{ExecutionView, RunView, StepView};
use coflux_core::model::{
    Environment, ErrorInfo, ExecutionResult, ExecutionState, Millis, Reference, Value,
};
use coflux_core::sdk::{decode_json, encode_json};
use coflux_core::store::RunSummary;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

/// An environment: `{"name","parent","state","created_at"}`.
#[derive(Debug, Serialize)]
pub struct EnvironmentJson {
    /// Its name.
    pub name: String,
    /// The name of the environment it inherits from.
    pub parent: Option<String>,
    /// `active`, `paused` or `archived`.
    pub state: &'static str,
    /// Creation time (ms since the epoch).
    pub created_at: Millis,
}

impl EnvironmentJson {
    /// Renders `env`, resolving its parent's name among `all`.
    pub fn new(env: &Environment, all: &[Environment]) -> Self {
        Self {
            name: env.name.to_string(),
            parent: env.parent.map(|id| {
                all.iter()
                    .find(|e| e.id == id)
                    .map_or_else(|| id.to_string(), |e| e.name.to_string())
            }),
            state: env.state.as_str(),
            created_at: env.created_at,
        }
    }
}

/// A run in a list: `{"run_id","module","target","environment","created_at"}`.
#[derive(Debug, Serialize)]
pub struct RunSummaryJson {
    /// The run's id (`R…`).
    pub run_id: String,
    /// The workflow's module.
    pub module: String,
    /// The workflow's name.
    pub target: String,
    /// The environment it was submitted in.
    pub environment: String,
    /// Submission time (ms since the epoch).
    pub created_at: Millis,
}

impl RunSummaryJson {
    /// Renders a summary, resolving its environment's name among `environments`.
    pub fn new(run: &RunSummary, environments: &[Environment]) -> Self {
        Self {
            run_id: run.id.to_string(),
            module: run.target.module.clone(),
            target: run.target.name.clone(),
            environment: environments
                .iter()
                .find(|e| e.id == run.environment)
                .map_or_else(|| run.environment.to_string(), |e| e.name.to_string()),
            created_at: run.created_at,
        }
    }
}

/// A run with its steps (`GET …/runs/{run}`).
#[derive(Debug, Serialize)]
pub struct RunJson {
    /// The run's id.
    pub run_id: String,
    /// The environment it was submitted in.
    pub environment: String,
    /// Submission time.
    pub created_at: Millis,
    /// The execution that started it (a workflow called from another run).
    pub parent: Option<String>,
    /// Its steps by number; `parent` links a step to the execution that called it. With the
    /// `offset` and `limit` query parameters, one page of them.
    pub steps: Vec<StepJson>,
    /// How many steps the run has (shown in its environment's view).
    pub total_steps: usize,
    /// Where the next page of steps starts (`offset`), if `steps` is not the last page.
    pub next_offset: Option<usize>,
    /// Runs started by its executions (workflows they called).
    pub spawned: Vec<SpawnedJson>,
}

/// A step of a run.
#[derive(Debug, Serialize)]
pub struct StepJson {
    /// `R…:n`.
    pub step_id: String,
    /// The target's module.
    pub module: String,
    /// The target's name.
    pub target: String,
    /// `workflow` or `task`.
    pub kind: &'static str,
    /// The execution that called it (`None` for the initial step).
    pub parent: Option<String>,
    /// Its arguments as plain JSON.
    pub arguments: Vec<Json>,
    /// Whether it has a cache key.
    pub cached: bool,
    /// The group (`cf.group`) it was called in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Its executions (attempts), oldest first.
    pub executions: Vec<ExecutionJson>,
    /// Checkpoint state (`cf.Checkpoint`) per environment name: `{name: value}` (plain JSON).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoints: BTreeMap<String, BTreeMap<String, Json>>,
    /// The streams it produced: id, item count, how they ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<coflux_core::api::StreamView>,
}

/// A run started by one of this run's executions (a workflow it called).
#[derive(Debug, Serialize)]
pub struct SpawnedJson {
    /// The calling execution.
    pub parent: String,
    /// The spawned run.
    pub run_id: String,
    /// Its initial execution.
    pub execution_id: String,
}

/// One execution (attempt) of a step.
#[derive(Debug, Serialize)]
pub struct ExecutionJson {
    /// `R…:n:a`.
    pub execution_id: String,
    /// The attempt number.
    pub attempt: u32,
    /// The environment it ran in.
    pub environment: String,
    /// `queued`, `assigned`, or the kind of its result (`value`, `error`, `cached`, …).
    pub state: &'static str,
    /// Creation time.
    pub created_at: Millis,
    /// Assignment time.
    pub assigned_at: Option<Millis>,
    /// End time.
    pub finished_at: Option<Millis>,
    /// `finished_at - assigned_at`, when both are known.
    pub duration_ms: Option<i64>,
    /// How it ended (see [`result_json`]).
    pub result: Option<Json>,
}

impl RunJson {
    /// Renders a run view with all its steps.
    pub fn new(view: &RunView) -> Self {
        Self::page(view, 0, None)
    }

    /// Renders a run view with the steps from `offset`, at most `limit` of them.
    pub fn page(view: &RunView, offset: usize, limit: Option<usize>) -> Self {
        let total = view.steps.len();
        let start = offset.min(total);
        let end = limit.map_or(total, |l| start.saturating_add(l).min(total));
        Self {
            run_id: view.id.to_string(),
            environment: view.environment.clone(),
            created_at: view.created_at,
            parent: view.parent.map(|p| p.to_string()),
            steps: view.steps[start..end].iter().map(step_json).collect(),
            total_steps: total,
            next_offset: (end < total).then_some(end),
            spawned: view
                .spawned
                .iter()
                .map(|(parent, execution)| SpawnedJson {
                    parent: parent.to_string(),
                    run_id: execution.run().to_string(),
                    execution_id: execution.to_string(),
                })
                .collect(),
        }
    }
}

fn step_json(step: &StepView) -> StepJson {
    StepJson {
        step_id: step.id.to_string(),
        module: step.target.module.clone(),
        target: step.target.name.clone(),
        kind: step.kind.as_str(),
        parent: step.parent.map(|p| p.to_string()),
        arguments: step.arguments.iter().map(value_json).collect(),
        cached: step.cached,
        group: step.group.clone(),
        executions: step.executions.iter().map(execution_json).collect(),
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
        streams: step.streams.clone(),
    }
}

fn execution_json(e: &ExecutionView) -> ExecutionJson {
    ExecutionJson {
        execution_id: e.id.to_string(),
        attempt: e.id.attempt,
        environment: e.environment.clone(),
        state: state_name(e.state),
        created_at: e.created_at,
        assigned_at: e.assigned_at,
        finished_at: e.finished_at,
        duration_ms: e.assigned_at.zip(e.finished_at).map(|(a, b)| b - a),
        result: e.result.as_ref().map(result_json),
    }
}

fn state_name(state: ExecutionState) -> &'static str {
    match state {
        ExecutionState::Queued => "queued",
        ExecutionState::Assigned => "assigned",
        ExecutionState::Finished(kind) => result_kind_name(kind),
    }
}

fn result_kind_name(kind: coflux_core::model::ResultKind) -> &'static str {
    use coflux_core::model::ResultKind as K;
    match kind {
        K::Value => "value",
        K::Error => "error",
        K::Abandoned => "abandoned",
        K::Crashed => "crashed",
        K::Timeout => "timeout",
        K::Cancelled => "cancelled",
        K::Cached => "cached",
        K::Deferred => "deferred",
        K::Suspended => "suspended",
        K::Spawned => "spawned",
        K::Recurred => "recurred",
    }
}

/// An error: `{"type","message","frames":[{"file","line","name","code"}]}`.
pub fn error_json(error: &ErrorInfo) -> Json {
    json!({
        "type": error.error_type,
        "message": error.message,
        "frames": error.frames,
    })
}

/// A result: `{"type":kind}` plus `value` (plain JSON), `error`, `retry` or `successor` as
/// the kind has them.
pub fn result_json(result: &ExecutionResult) -> Json {
    let mut out = Map::new();
    out.insert(
        "type".into(),
        Json::String(result_kind_name(result.kind()).into()),
    );
    match result {
        ExecutionResult::Value { value } => {
            out.insert("value".into(), value_json(value));
        }
        ExecutionResult::Error { error, retry } => {
            out.insert("error".into(), error_json(error));
            if let Some(retry) = retry {
                out.insert("retry".into(), Json::String(retry.to_string()));
            }
        }
        ExecutionResult::Abandoned { retry }
        | ExecutionResult::Crashed { retry }
        | ExecutionResult::Timeout { retry } => {
            if let Some(retry) = retry {
                out.insert("retry".into(), Json::String(retry.to_string()));
            }
        }
        ExecutionResult::Cancelled => {}
        ExecutionResult::Cached { successor }
        | ExecutionResult::Deferred { successor }
        | ExecutionResult::Suspended { successor }
        | ExecutionResult::Spawned { successor }
        | ExecutionResult::Recurred { successor } => {
            out.insert("successor".into(), Json::String(successor.to_string()));
        }
    }
    Json::Object(out)
}

/// The final status of a run, as reported by `GET …/result`: `value`, `error`, `cancelled`,
/// `abandoned` or `timeout` (a hand-over kind, which waiting follows, is reported as is).
pub fn status_name(result: &ExecutionResult) -> &'static str {
    result_kind_name(result.kind())
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
    use coflux_core::model::{ExecutionId, RunId, StepId};

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
}
