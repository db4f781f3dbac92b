//! Bodies of the run routes: submission, the runs list, a run's view, results, re-runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::values::{Outcome, RaisedError, state_name, value_json};
use crate::api::{ExecutionView, RunQuery, RunView, StepView};
use crate::model::{Environment, ExecutionResult, Millis, RunId, TargetRef};
use crate::store::run_list::{RunListing, RunStatus};

/// The page size of `GET …/runs` when the query gives none.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// The largest page of `GET …/runs` (a larger `limit` is lowered to it).
pub const MAX_LIST_LIMIT: usize = 1000;

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

/// The query of `GET …/runs`: filters, and where the page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Only runs with this status: `queued`, `running`, or the kind of the initial step's
    /// result (`value`, `error`, `cancelled`, `abandoned`, `crashed`, `timeout`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only runs of this workflow, `module/target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Only runs submitted in this environment (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Only runs submitted at or after this time: Unix ms or RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only runs submitted before this time: Unix ms or RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The page size (50 by default, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A parameter of [`RunsQuery`] that is not valid; its code is `invalid_<field>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid '{field}': {message}")]
pub struct InvalidParameter {
    /// The parameter (`status`, `workflow`, `since`, `until`, `cursor`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidParameter {
    /// The stable code: `invalid_status`, `invalid_cursor`, …
    pub fn code(&self) -> String {
        format!("invalid_{}", self.field)
    }
}

impl RunsQuery {
    /// The query as the store reads it; empty parameters count as absent, `limit` is kept
    /// between 1 and [`MAX_LIST_LIMIT`].
    pub fn parse(&self) -> Result<RunQuery, InvalidParameter> {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let invalid = |field, message: String| InvalidParameter { field, message };
        let status = match given(&self.status) {
            None => None,
            Some(s) => Some(RunStatus::parse(s.trim()).ok_or_else(|| {
                invalid(
                    "status",
                    format!(
                        "unknown status '{s}' (one of: {})",
                        RunStatus::NAMES.join(", ")
                    ),
                )
            })?),
        };
        let workflow = match given(&self.workflow) {
            None => None,
            Some(w) => match w.rsplit_once('/') {
                Some((module, name)) if !module.is_empty() && !name.is_empty() => {
                    Some(TargetRef::new(module, name))
                }
                _ => {
                    return Err(invalid(
                        "workflow",
                        format!("expected MODULE/TARGET, got '{w}'"),
                    ));
                }
            },
        };
        let time = |field, value: &Option<String>| match given(value) {
            None => Ok(None),
            Some(t) => parse_time(&t).map(Some).ok_or_else(|| {
                invalid(
                    field,
                    format!("expected Unix milliseconds or an RFC 3339 time, got '{t}'"),
                )
            }),
        };
        let since = time("since", &self.since)?;
        let until = time("until", &self.until)?;
        let before = match given(&self.cursor) {
            None => None,
            Some(c) => Some(
                RunCursor::decode(c.trim())
                    .ok_or_else(|| {
                        invalid(
                            "cursor",
                            "not a cursor from a previous page's 'next_cursor'".into(),
                        )
                    })?
                    .0,
            ),
        };
        Ok(RunQuery {
            environment: given(&self.environment),
            workflow,
            status,
            since,
            until,
            before,
            limit: self
                .limit
                .unwrap_or(DEFAULT_LIST_LIMIT)
                .clamp(1, MAX_LIST_LIMIT),
        })
    }
}

/// A time given as Unix milliseconds or RFC 3339 (`2026-12-06T10:00:00Z`).
pub fn parse_time(text: &str) -> Option<Millis> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<Millis>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The answer of `GET …/runs`: a page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunList {
    /// The runs.
    pub runs: Vec<RunItem>,
    /// Where the next page starts (`cursor=`); `null` on the last page. A page may hold fewer
    /// runs than asked when a filter is selective; follow the cursor until it is `null`.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A run in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunItem {
    /// Its id.
    pub run_id: String,
    /// The workflow's module.
    pub module: String,
    /// The workflow's name.
    pub target: String,
    /// Where it was submitted.
    pub environment: String,
    /// Submission time.
    pub created_at: Millis,
    /// `queued`, `running`, or the kind of its initial step's latest result.
    #[serde(default)]
    pub status: String,
    /// When its last execution ended, once nothing in it is active.
    #[serde(default)]
    pub finished_at: Option<Millis>,
    /// `finished_at - created_at`, once finished.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

impl RunItem {
    /// Shows a listed run, resolving its environment's name among `environments`.
    pub fn new(run: &RunListing, environments: &[Environment]) -> Self {
        let summary = &run.summary;
        Self {
            run_id: summary.id.to_string(),
            module: summary.target.module.clone(),
            target: summary.target.name.clone(),
            environment: environments
                .iter()
                .find(|e| e.id == summary.environment)
                .map_or_else(|| summary.environment.to_string(), |e| e.name.to_string()),
            created_at: summary.created_at,
            status: run.status.as_str().into(),
            finished_at: run.finished_at,
            duration_ms: run.finished_at.map(|f| f - summary.created_at),
        }
    }
}

/// An opaque position in the runs list (`cursor`, `next_cursor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCursor(
    /// Runs older than this one come next.
    pub RunId,
);

impl RunCursor {
    const PREFIX: &'static str = "rc1_";

    /// The cursor's text.
    pub fn encode(self) -> String {
        format!("{}{:x}", Self::PREFIX, self.0.0)
    }

    /// Reads a cursor's text (`None` if it is not one).
    pub fn decode(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(Self::PREFIX)?;
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let id = u64::from_str_radix(hex, 16).ok().filter(|id| *id > 0)?;
        Some(Self(RunId(id)))
    }
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
    /// Runs started by its executions (workflows they called).
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
        Self {
            run_id: view.id.to_string(),
            environment: view.environment.clone(),
            created_at: view.created_at,
            parent: view.parent.map(|p| p.to_string()),
            steps: view.steps[start..end].iter().map(Step::from).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        for id in [1, 9, 255, u64::MAX] {
            let cursor = RunCursor(RunId(id));
            assert_eq!(RunCursor::decode(&cursor.encode()), Some(cursor));
        }
        for bad in [
            "",
            "rc1_",
            "rc1_0",
            "rc1_xyz",
            "R5",
            "5",
            "rc1_10000000000000000",
        ] {
            assert_eq!(RunCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn queries_name_the_parameter_they_refuse() {
        let query = |f: fn(&mut RunsQuery)| {
            let mut q = RunsQuery::default();
            f(&mut q);
            q.parse()
        };
        let code = |f| query(f).unwrap_err().code();
        assert_eq!(code(|q| q.status = Some("done".into())), "invalid_status");
        assert_eq!(
            code(|q| q.workflow = Some("main".into())),
            "invalid_workflow"
        );
        assert_eq!(
            code(|q| q.since = Some("yesterday".into())),
            "invalid_since"
        );
        assert_eq!(code(|q| q.until = Some("12:00".into())), "invalid_until");
        assert_eq!(code(|q| q.cursor = Some("R5".into())), "invalid_cursor");

        let parsed = query(|q| {
            q.status = Some("error".into());
            q.workflow = Some("app.flows/main".into());
            q.since = Some("2026-01-01T00:00:00Z".into());
            q.until = Some("1767225600001".into());
            q.cursor = Some(RunCursor(RunId(7)).encode());
            q.environment = Some(String::new());
            q.limit = Some(5000);
        })
        .unwrap();
        assert_eq!(
            parsed.status,
            Some(RunStatus::Finished(crate::model::ResultKind::Error))
        );
        assert_eq!(parsed.workflow, Some(TargetRef::new("app.flows", "main")));
        assert_eq!(parsed.since, Some(1_767_225_600_000));
        assert_eq!(parsed.until, Some(1_767_225_600_001));
        assert_eq!(parsed.before, Some(RunId(7)));
        assert_eq!(parsed.environment, None);
        assert_eq!(parsed.limit, MAX_LIST_LIMIT);
    }
}
