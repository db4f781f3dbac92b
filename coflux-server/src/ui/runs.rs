//! The runs list shared by the project and workflow pages: newest first, filtered by status,
//! workflow and environment, paged with a `before=` run id cursor.

use coflux_core::Project;
use coflux_core::model::{Environment, Millis, RunId};
use maud::{Markup, html};

use super::page::{badge, elapsed, run_finished_at, run_status, time};
use super::{UiError, enc, query};

/// Runs read from the store to filter one page from (the list's reach).
const SCAN: usize = 5_000;
/// Runs inspected at most for one page (a status filter may skip many).
const MAX_INSPECTED: usize = 500;

/// What to list.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunFilter {
    /// Only runs with this status (`running`, `value`, `error`, …).
    pub status: Option<String>,
    /// Only runs of this workflow (`module/target`).
    pub workflow: Option<String>,
    /// Only runs submitted in this environment.
    pub environment: Option<String>,
    /// Only runs older than this one.
    pub before: Option<RunId>,
    /// Page size.
    pub limit: usize,
}

/// One row of the list.
pub(crate) struct RunRow {
    pub id: RunId,
    pub module: String,
    pub target: String,
    pub environment: String,
    pub created_at: Millis,
    pub status: &'static str,
    pub duration: String,
}

/// A page of runs, and the cursor of the next page when there is one.
pub(crate) async fn list(
    project: &Project,
    environments: &[Environment],
    filter: &RunFilter,
) -> Result<(Vec<RunRow>, Option<RunId>), UiError> {
    let summaries = project.list_runs(SCAN).await?;
    let env_name = |id| {
        environments
            .iter()
            .find(|e| e.id == id)
            .map_or_else(|| id.to_string(), |e| e.name.to_string())
    };
    let mut rows = Vec::new();
    let mut inspected = 0;
    let mut next = None;
    for summary in summaries {
        if filter.before.is_some_and(|b| summary.id >= b) {
            continue;
        }
        if filter
            .workflow
            .as_deref()
            .is_some_and(|w| w != summary.target.to_string())
        {
            continue;
        }
        let environment = env_name(summary.environment);
        if filter
            .environment
            .as_deref()
            .is_some_and(|e| e != environment)
        {
            continue;
        }
        if rows.len() == filter.limit || inspected == MAX_INSPECTED {
            next = rows.last().map(|r: &RunRow| r.id);
            break;
        }
        inspected += 1;
        let Ok(view) = project.inspect_run(summary.id, None).await else {
            continue;
        };
        let status = run_status(&view);
        if filter.status.as_deref().is_some_and(|s| s != status) {
            continue;
        }
        rows.push(RunRow {
            id: summary.id,
            module: summary.target.module.clone(),
            target: summary.target.name.clone(),
            environment,
            created_at: summary.created_at,
            status,
            duration: elapsed(view.created_at, run_finished_at(&view)),
        });
    }
    Ok((rows, next))
}

/// The runs table. `base` is the page's path and `keep` the query pairs to keep in the "older"
/// link.
pub(crate) fn table(
    project: &str,
    rows: &[RunRow],
    next: Option<RunId>,
    base: &str,
    keep: &[(&str, Option<&str>)],
) -> Markup {
    let next_link = next.map(|n| {
        let before = n.to_string();
        let mut pairs = keep.to_vec();
        pairs.push(("before", Some(before.as_str())));
        format!("{base}{}", query(&pairs))
    });
    html! {
        @if rows.is_empty() {
            p.empty data-testid="runs-empty" { "No runs." }
        } @else {
            table.runs data-testid="runs-table" {
                thead { tr { th { "Run" } th { "Status" } th { "Workflow" } th { "Environment" }
                    th { "Created" } th { "Duration" } } }
                tbody {
                    @for row in rows {
                        @let href = format!("/projects/{}/runs/{}{}", enc(project), row.id,
                            query(&[("environment", Some(row.environment.as_str()))]));
                        tr data-testid="run-row" data-run=(row.id) {
                            td { a href=(href) { (row.id) } }
                            td { (badge(row.status)) }
                            td.mono { (row.module) " / " strong { (row.target) } }
                            td { (row.environment) }
                            td { (time(row.created_at)) }
                            td { (row.duration) }
                        }
                    }
                }
            }
        }
        @if let Some(link) = next_link {
            p { a.button href=(link) data-testid="runs-older" { "Older runs →" } }
        }
    }
}
