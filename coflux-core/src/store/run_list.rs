//! The runs list: one page of runs, newest first, filtered by environment, workflow, status
//! and submission time, continuing below a run id (the cursor).
//!
//! Run ids only grow, so a page that continues below the last id it showed never repeats or
//! skips a run while new runs are created. The scan walks `runs` by id (the primary key, or the
//! `runs_environment` index with an environment filter); each run's workflow, status and end
//! are primary-key lookups. A scan stops after [`MAX_SCANNED`] runs even when a selective
//! filter has not filled the page: the page is then shorter and its cursor continues where
//! the scan stopped, so one request stays cheap whatever the filters.

use rusqlite::{Connection, OptionalExtension};

use super::{RunSummary, StoreError};
use crate::model::{EnvironmentId, Millis, ResultKind, RunId, TargetRef};

/// The most runs one page examines.
pub const MAX_SCANNED: usize = 10_000;

/// Where a run is in its life, as the runs list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Its initial step waits for an agent.
    Queued,
    /// Something in it has not ended.
    Running,
    /// Nothing in it is active; its initial step's latest attempt ended this way.
    Finished(ResultKind),
}

impl RunStatus {
    /// Every status name, for messages.
    pub const NAMES: &'static [&'static str] = &[
        "queued",
        "running",
        "value",
        "error",
        "abandoned",
        "crashed",
        "timeout",
        "cancelled",
        "cached",
        "deferred",
        "suspended",
        "spawned",
        "recurred",
    ];

    /// Its name: `queued`, `running` or the result kind (`value`, `error`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished(kind) => kind_str(kind),
        }
    }

    /// The status with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "queued" => Self::Queued,
            "running" => Self::Running,
            other => Self::Finished(parse_kind(other)?),
        })
    }
}

fn kind_str(kind: ResultKind) -> &'static str {
    match kind {
        ResultKind::Value => "value",
        ResultKind::Error => "error",
        ResultKind::Abandoned => "abandoned",
        ResultKind::Crashed => "crashed",
        ResultKind::Timeout => "timeout",
        ResultKind::Cancelled => "cancelled",
        ResultKind::Cached => "cached",
        ResultKind::Deferred => "deferred",
        ResultKind::Suspended => "suspended",
        ResultKind::Spawned => "spawned",
        ResultKind::Recurred => "recurred",
    }
}

fn parse_kind(text: &str) -> Option<ResultKind> {
    Some(match text {
        "value" => ResultKind::Value,
        "error" => ResultKind::Error,
        "abandoned" => ResultKind::Abandoned,
        "crashed" => ResultKind::Crashed,
        "timeout" => ResultKind::Timeout,
        "cancelled" => ResultKind::Cancelled,
        "cached" => ResultKind::Cached,
        "deferred" => ResultKind::Deferred,
        "suspended" => ResultKind::Suspended,
        "spawned" => ResultKind::Spawned,
        "recurred" => ResultKind::Recurred,
        _ => return None,
    })
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs submitted in one of these environments.
    pub environments: Option<Vec<EnvironmentId>>,
    /// Only runs of this workflow.
    pub workflow: Option<TargetRef>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs submitted at or after this time.
    pub since: Option<Millis>,
    /// Only runs submitted before this time.
    pub until: Option<Millis>,
    /// Only runs older than this one (the cursor).
    pub before: Option<RunId>,
}

/// A run in a page of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct RunListing {
    /// Id, workflow, environment and submission time.
    pub summary: RunSummary,
    /// Its status.
    pub status: RunStatus,
    /// When its last execution ended, once nothing in it is active.
    pub finished_at: Option<Millis>,
}

/// A page of the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunListing>,
    /// Where the next page starts (runs older than this one), if there may be more.
    pub next: Option<RunId>,
}

/// Reads one page of at most `limit` runs (at least 1).
pub fn query_runs(
    conn: &Connection,
    filter: &RunFilter,
    limit: usize,
) -> Result<RunPage, StoreError> {
    let limit = limit.max(1);
    let mut sql = String::from(
        "SELECT id, environment_id, created_at, open_executions > 0 FROM runs WHERE id < ?1",
    );
    match filter.environments.as_deref() {
        Some([]) => return Ok(RunPage::default()),
        Some([one]) => sql.push_str(&format!(" AND environment_id = {}", one.0)),
        Some(many) => {
            let ids: Vec<String> = many.iter().map(|e| e.0.to_string()).collect();
            sql.push_str(&format!(" AND environment_id IN ({})", ids.join(",")));
        }
        None => {}
    }
    sql.push_str(" ORDER BY id DESC");
    let before = filter.before.map_or(i64::MAX, |b| to_i64(b.0));
    let mut scan = conn.prepare(&sql)?;
    let mut rows = scan.query([before])?;
    let mut lookups = Lookups::new(conn)?;
    let mut page = RunPage::default();
    let mut scanned = 0;
    let mut last = None;
    while let Some(row) = rows.next()? {
        let id = RunId(to_u64(row.get(0)?)?);
        if page.runs.len() == limit {
            // More runs exist below the last one shown.
            page.next = last;
            return Ok(page);
        }
        if scanned == MAX_SCANNED {
            page.next = last;
            return Ok(page);
        }
        scanned += 1;
        last = Some(id);
        let created_at: Millis = row.get(2)?;
        if filter.since.is_some_and(|s| created_at < s)
            || filter.until.is_some_and(|u| created_at >= u)
        {
            continue;
        }
        let Some(target) = lookups.target(id)? else {
            continue;
        };
        if filter.workflow.as_ref().is_some_and(|w| *w != target) {
            continue;
        }
        let active: bool = row.get(3)?;
        let status = lookups.status(id, active)?;
        if filter.status.is_some_and(|s| s != status) {
            continue;
        }
        let finished_at = if active { None } else { lookups.finished_at(id)? };
        page.runs.push(RunListing {
            summary: RunSummary {
                id,
                target,
                environment: EnvironmentId(
                    u32::try_from(row.get::<_, i64>(1)?)
                        .map_err(|_| StoreError::Corrupt("environment id out of range".into()))?,
                ),
                created_at,
            },
            status,
            finished_at,
        });
    }
    Ok(page)
}

/// The per-run primary-key lookups of a scan.
struct Lookups<'c> {
    target: rusqlite::CachedStatement<'c>,
    root: rusqlite::CachedStatement<'c>,
    finished: rusqlite::CachedStatement<'c>,
}

impl<'c> Lookups<'c> {
    fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            target: conn
                .prepare_cached("SELECT module, target FROM steps WHERE run_id = ?1 AND number = 1")?,
            root: conn.prepare_cached(
                "SELECT e.worker_id IS NOT NULL, r.kind FROM executions e
                 LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                                    AND r.attempt = e.attempt
                 WHERE e.run_id = ?1 AND e.step_number = 1
                 ORDER BY e.attempt DESC LIMIT 1",
            )?,
            finished: conn.prepare_cached("SELECT MAX(created_at) FROM results WHERE run_id = ?1")?,
        })
    }

    fn target(&mut self, run: RunId) -> Result<Option<TargetRef>, StoreError> {
        Ok(self
            .target
            .query_row([to_i64(run.0)], |row| {
                Ok(TargetRef {
                    module: row.get(0)?,
                    name: row.get(1)?,
                })
            })
            .optional()?)
    }

    /// The initial step's latest attempt decides, `running` while anything else is active.
    fn status(&mut self, run: RunId, active: bool) -> Result<RunStatus, StoreError> {
        let root: Option<(bool, Option<String>)> = self
            .root
            .query_row([to_i64(run.0)], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(match root {
            None | Some((false, None)) => RunStatus::Queued,
            Some((true, None)) => RunStatus::Running,
            Some((_, Some(_))) if active => RunStatus::Running,
            Some((_, Some(kind))) => RunStatus::Finished(
                parse_kind(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("result kind '{kind}'")))?,
            ),
        })
    }

    fn finished_at(&mut self, run: RunId) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .finished
            .query_row([to_i64(run.0)], |row| row.get(0))?)
    }
}

fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("run id {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for name in RunStatus::NAMES {
            assert_eq!(RunStatus::parse(name).map(RunStatus::as_str), Some(*name));
        }
        assert_eq!(RunStatus::parse("done"), None);
        assert_eq!(RunStatus::parse("Value"), None);
    }
}
