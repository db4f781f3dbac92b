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
    pub fn names() -> impl Iterator<Item = &'static str> {
        ["queued", "running"]
            .into_iter()
            .chain(ResultKind::ALL.into_iter().map(ResultKind::as_str))
    }

    /// Its name: `queued`, `running` or the result kind (`value`, `error`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished(kind) => kind.as_str(),
        }
    }

    /// The status with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "queued" => Self::Queued,
            "running" => Self::Running,
            other => Self::Finished(ResultKind::parse(other)?),
        })
    }
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
    query_runs_scanning(conn, filter, limit, MAX_SCANNED)
}

fn query_runs_scanning(
    conn: &Connection,
    filter: &RunFilter,
    limit: usize,
    max_scanned: usize,
) -> Result<RunPage, StoreError> {
    query_page(&mut SqliteRuns::new(conn)?, filter, limit, max_scanned)
}

/// One run as the scan reads it.
pub(crate) struct ScanRow {
    /// The run.
    pub(crate) id: RunId,
    /// Its environment.
    pub(crate) environment: i64,
    /// When it was submitted.
    pub(crate) created_at: Millis,
    /// Whether it has executions without a result.
    pub(crate) active: bool,
}

/// The reads a page needs, from one backend.
pub(crate) trait RunSource {
    /// At most `limit` runs with ids below `before`, newest first, in the filter's
    /// environments.
    fn scan(
        &mut self,
        filter: &RunFilter,
        before: i64,
        limit: usize,
    ) -> Result<Vec<ScanRow>, StoreError>;
    /// The run's workflow (its initial step's target).
    fn target(&mut self, run: RunId) -> Result<Option<TargetRef>, StoreError>;
    /// The initial step's latest attempt: (assigned, result kind).
    fn root(&mut self, run: RunId) -> Result<Option<(bool, Option<String>)>, StoreError>;
    /// When the run's last result was recorded.
    fn finished_at(&mut self, run: RunId) -> Result<Option<Millis>, StoreError>;
}

/// The scan of runs below the first parameter (`before`), newest first, at most the second
/// (`limit`), in the environments of `filter` (ids are integers written into the text, so the
/// planner sees them and picks the index). The SQL is the same on both backends apart from
/// the parameters' spelling.
pub(crate) fn scan_sql_with(filter: &RunFilter, before: &str, limit: &str) -> String {
    let mut sql = format!(
        "SELECT id, environment_id, created_at, open_executions > 0 FROM runs WHERE id < {before}"
    );
    match filter.environments.as_deref() {
        Some([one]) => sql.push_str(&format!(" AND environment_id = {}", one.0)),
        Some(many) => {
            // Several environments of one name (an archived one and its successor): walk the
            // primary key and check each run (`+` keeps the planner off the index, whose
            // order would need a sort).
            let ids: Vec<String> = many.iter().map(|e| e.0.to_string()).collect();
            sql.push_str(&format!(" AND +environment_id IN ({})", ids.join(",")));
        }
        None => {}
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
    sql
}

#[cfg(test)]
fn scan_sql(filter: &RunFilter) -> String {
    scan_sql_with(filter, "?1", "?2")
}

/// One page from `source`: walks runs newest first in growing chunks (the first just over a
/// page), filtering each, until the page is full or `max_scanned` runs were examined.
pub(crate) fn query_page(
    source: &mut dyn RunSource,
    filter: &RunFilter,
    limit: usize,
    max_scanned: usize,
) -> Result<RunPage, StoreError> {
    let limit = limit.max(1);
    let mut page = RunPage::default();
    if filter.environments.as_deref() == Some(&[]) {
        return Ok(page);
    }
    let mut before = filter.before.map_or(i64::MAX, |b| to_i64(b.0));
    let mut scanned = 0;
    let mut last = None;
    let mut chunk = limit + 1;
    loop {
        let rows = source.scan(filter, before, chunk)?;
        let exhausted = rows.len() < chunk;
        for row in rows {
            let id = row.id;
            if page.runs.len() == limit || scanned == max_scanned {
                // More runs exist below the last one examined.
                page.next = last;
                return Ok(page);
            }
            scanned += 1;
            last = Some(id);
            before = to_i64(id.0);
            if filter.since.is_some_and(|s| row.created_at < s)
                || filter.until.is_some_and(|u| row.created_at >= u)
            {
                continue;
            }
            let Some(target) = source.target(id)? else {
                continue;
            };
            if filter.workflow.as_ref().is_some_and(|w| *w != target) {
                continue;
            }
            let status = status(source.root(id)?, row.active)?;
            if filter.status.is_some_and(|s| s != status) {
                continue;
            }
            let finished_at = if row.active {
                None
            } else {
                source.finished_at(id)?
            };
            page.runs.push(RunListing {
                summary: RunSummary {
                    id,
                    target,
                    environment: EnvironmentId(
                        u32::try_from(row.environment).map_err(|_| {
                            StoreError::Corrupt("environment id out of range".into())
                        })?,
                    ),
                    created_at: row.created_at,
                },
                status,
                finished_at,
            });
        }
        if exhausted {
            return Ok(page);
        }
        chunk = chunk.saturating_mul(2).min(max_scanned + 1);
    }
}

/// The initial step's latest attempt decides, `running` while anything else is active.
fn status(root: Option<(bool, Option<String>)>, active: bool) -> Result<RunStatus, StoreError> {
    Ok(match root {
        None | Some((false, None)) => RunStatus::Queued,
        Some((true, None)) => RunStatus::Running,
        Some((_, Some(_))) if active => RunStatus::Running,
        Some((_, Some(kind))) => RunStatus::Finished(
            ResultKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("result kind '{kind}'")))?,
        ),
    })
}

/// The lookup statements, the same text on both backends apart from the parameter.
pub(crate) const TARGET_SQL: &str =
    "SELECT module, target FROM steps WHERE run_id = $1 AND number = 1";
/// See [`TARGET_SQL`].
pub(crate) const ROOT_SQL: &str = "SELECT e.worker_id IS NOT NULL, r.kind FROM executions e
     LEFT JOIN results r ON r.run_id = e.run_id AND r.step_number = e.step_number
                        AND r.attempt = e.attempt
     WHERE e.run_id = $1 AND e.step_number = 1
     ORDER BY e.attempt DESC LIMIT 1";
/// See [`TARGET_SQL`].
pub(crate) const FINISHED_SQL: &str = "SELECT MAX(created_at) FROM results WHERE run_id = $1";

/// [`RunSource`] on a SQLite connection.
struct SqliteRuns<'c> {
    conn: &'c Connection,
    target: rusqlite::CachedStatement<'c>,
    root: rusqlite::CachedStatement<'c>,
    finished: rusqlite::CachedStatement<'c>,
}

impl<'c> SqliteRuns<'c> {
    fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        // SQLite reads `$1` as a parameter named `$1`: the first and only one here.
        Ok(Self {
            conn,
            target: conn.prepare_cached(TARGET_SQL)?,
            root: conn.prepare_cached(ROOT_SQL)?,
            finished: conn.prepare_cached(FINISHED_SQL)?,
        })
    }
}

impl RunSource for SqliteRuns<'_> {
    fn scan(
        &mut self,
        filter: &RunFilter,
        before: i64,
        limit: usize,
    ) -> Result<Vec<ScanRow>, StoreError> {
        let mut stmt = self.conn.prepare(&scan_sql_with(filter, "?1", "?2"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([before, limit], |row| {
            Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        rows.map(|row| {
            let (id, environment, created_at, active) = row?;
            Ok(ScanRow {
                id: RunId(to_u64(id)?),
                environment,
                created_at,
                active,
            })
        })
        .collect()
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

    fn root(&mut self, run: RunId) -> Result<Option<(bool, Option<String>)>, StoreError> {
        Ok(self
            .root
            .query_row([to_i64(run.0)], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    fn finished_at(&mut self, run: RunId) -> Result<Option<Millis>, StoreError> {
        Ok(self.finished.query_row([to_i64(run.0)], |row| row.get(0))?)
    }
}

pub(crate) fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("run id {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;

    /// A run in environment `env` whose initial step has `attempts` executions: (assigned,
    /// result kind); `open` marks the run active.
    fn run(
        conn: &Connection,
        id: i64,
        env: i64,
        target: &str,
        open: bool,
        attempts: &[(bool, Option<&str>)],
    ) {
        conn.execute(
            "INSERT INTO runs (id, environment_id, created_at, open_executions) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, env, 1000 + id, i64::from(open)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO steps (run_id, number, module, target, kind, arguments, options, created_at)
             VALUES (?1, 1, 'app', ?2, 'workflow', '[]', '{}', 0)",
            rusqlite::params![id, target],
        )
        .unwrap();
        for (i, (assigned, kind)) in attempts.iter().enumerate() {
            let attempt = i64::try_from(i).unwrap() + 1;
            conn.execute(
                "INSERT INTO executions (run_id, step_number, attempt, environment_id, created_at, worker_id, assigned_at)
                 VALUES (?1, 1, ?2, ?3, 0, ?4, ?5)",
                rusqlite::params![id, attempt, env, assigned.then_some(1), assigned.then_some(5)],
            )
            .unwrap();
            if let Some(kind) = kind {
                conn.execute(
                    "INSERT INTO results (run_id, step_number, attempt, kind, result, created_at)
                     VALUES (?1, 1, ?2, ?3, '{}', ?4)",
                    rusqlite::params![id, attempt, kind, 2000 + id * 10 + attempt],
                )
                .unwrap();
            }
        }
    }

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrations().to_latest(&mut conn).unwrap();
        run(&conn, 1, 1, "main", false, &[]);
        run(&conn, 2, 1, "main", true, &[(false, None)]);
        run(&conn, 3, 2, "main", true, &[(true, None)]);
        run(
            &conn,
            4,
            1,
            "other",
            false,
            &[(true, Some("error")), (true, Some("value"))],
        );
        run(&conn, 5, 2, "main", true, &[(true, Some("value"))]);
        run(&conn, 6, 1, "main", false, &[(true, Some("error"))]);
        conn
    }

    fn ids(page: &RunPage) -> Vec<u64> {
        page.runs.iter().map(|r| r.summary.id.0).collect()
    }

    #[test]
    fn statuses_follow_the_initial_step_and_activity() {
        let conn = database();
        let page = query_runs(&conn, &RunFilter::default(), 10).unwrap();
        let statuses: Vec<(u64, &str, Option<Millis>)> = page
            .runs
            .iter()
            .map(|r| (r.summary.id.0, r.status.as_str(), r.finished_at))
            .collect();
        assert_eq!(
            statuses,
            [
                (6, "error", Some(2061)),
                (5, "running", None),
                (4, "value", Some(2042)),
                (3, "running", None),
                (2, "queued", None),
                (1, "queued", None),
            ]
        );
        assert_eq!(page.next, None);
        assert_eq!(page.runs[0].summary.target, TargetRef::new("app", "main"));
    }

    #[test]
    fn filters_combine_and_pages_continue_below_the_cursor() {
        let conn = database();
        let filter = |f: fn(&mut RunFilter)| {
            let mut filter = RunFilter::default();
            f(&mut filter);
            filter
        };
        let page = |f: &RunFilter, limit| query_runs(&conn, f, limit).unwrap();
        let running = filter(|f| f.status = RunStatus::parse("running"));
        assert_eq!(ids(&page(&running, 10)), [5, 3]);
        let env1 = filter(|f| f.environments = Some(vec![EnvironmentId(1)]));
        assert_eq!(ids(&page(&env1, 10)), [6, 4, 2, 1]);
        let other = filter(|f| f.workflow = Some(TargetRef::new("app", "other")));
        assert_eq!(ids(&page(&other, 10)), [4]);
        let window = filter(|f| {
            f.since = Some(1002);
            f.until = Some(1005);
        });
        assert_eq!(ids(&page(&window, 10)), [4, 3, 2]);
        let none = filter(|f| f.environments = Some(Vec::new()));
        assert_eq!(page(&none, 10), RunPage::default());

        let first = page(&RunFilter::default(), 4);
        assert_eq!(
            (ids(&first), first.next),
            (vec![6, 5, 4, 3], Some(RunId(3)))
        );
        let rest = RunFilter {
            before: first.next,
            ..RunFilter::default()
        };
        let second = page(&rest, 4);
        assert_eq!((ids(&second), second.next), (vec![2, 1], None));
    }

    #[test]
    fn a_selective_filter_stops_after_its_scan_budget() {
        let conn = database();
        let queued = RunFilter {
            status: RunStatus::parse("queued"),
            ..RunFilter::default()
        };
        // Runs 6, 5 and 4 are examined and none is queued: the page is empty but continues.
        let page = query_runs_scanning(&conn, &queued, 10, 3).unwrap();
        assert_eq!((ids(&page), page.next), (vec![], Some(RunId(4))));
        let rest = RunFilter {
            before: page.next,
            ..queued
        };
        let page = query_runs_scanning(&conn, &rest, 10, 3).unwrap();
        assert_eq!((ids(&page), page.next), (vec![2, 1], None));
    }

    #[test]
    fn scans_walk_an_index_newest_first_without_sorting() {
        let conn = database();
        let plan = |filter: &RunFilter| -> String {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", scan_sql(filter)))
                .unwrap();
            let rows = stmt
                .query_map([i64::MAX, 10], |row| row.get::<_, String>(3))
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let all = plan(&RunFilter::default());
        assert!(
            all.contains("INTEGER PRIMARY KEY") && !all.contains("TEMP B-TREE"),
            "{all}"
        );
        let env = plan(&RunFilter {
            environments: Some(vec![EnvironmentId(2)]),
            ..RunFilter::default()
        });
        assert!(
            env.contains("runs_environment") && !env.contains("TEMP B-TREE"),
            "{env}"
        );
        let two = plan(&RunFilter {
            environments: Some(vec![EnvironmentId(1), EnvironmentId(2)]),
            ..RunFilter::default()
        });
        assert!(!two.contains("TEMP B-TREE"), "{two}");
        let runs = |environments| {
            let filter = RunFilter {
                environments: Some(environments),
                ..RunFilter::default()
            };
            ids(&query_runs(&conn, &filter, 10).unwrap())
        };
        assert_eq!(
            runs(vec![EnvironmentId(1), EnvironmentId(2)]),
            [6, 5, 4, 3, 2, 1]
        );
        assert_eq!(runs(vec![EnvironmentId(2), EnvironmentId(9)]), [5, 3]);
    }

    #[test]
    fn status_names_round_trip() {
        for name in RunStatus::names() {
            assert_eq!(RunStatus::parse(name).map(RunStatus::as_str), Some(name));
        }
        assert_eq!(RunStatus::names().count(), 13);
        assert_eq!(RunStatus::parse("done"), None);
        assert_eq!(RunStatus::parse("Value"), None);
    }
}
