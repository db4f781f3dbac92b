//! The runs list, `GET /api/projects/{project}/runs`: its query (filters, cursor, limit) and
//! its pages.

use serde::{Deserialize, Serialize};

use crate::api::RunQuery;
use crate::model::{Environment, Millis, RunId, TargetRef};
use crate::store::run_list::{RunListing, RunStatus};

/// The page size of `GET …/runs` when the query gives none.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// The largest page of `GET …/runs` (a larger `limit` is lowered to it).
pub const MAX_LIST_LIMIT: usize = 1000;

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
                        RunStatus::names().collect::<Vec<_>>().join(", ")
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
