//! The runs list shared by the project and workflow pages: newest first, filtered by status,
//! workflow and environment, paged with a `before=` run id cursor; read with the same query as
//! `GET /api/projects/{p}/runs` ([`Project::query_runs`]).

use coflux_core::Project;
use coflux_core::api::RunQuery;
use coflux_core::model::{Environment, Millis, RunId, TargetRef};
use coflux_core::protocol::http::RunItem;
use coflux_core::store::run_list::RunStatus;
use maud::{Markup, html};

use super::page::{badge, elapsed, time};
use super::{UiError, enc, query};

/// What to list.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunFilter {
    /// Only runs with this status (`running`, `value`, `error`, …).
    pub status: Option<String>,
    /// Only runs of this workflow (`module/target`).
    pub workflow: Option<String>,
    /// Only runs submitted in this environment.
    pub environment: Option<String>,
    /// Only runs submitted within this period before now (`1h`, `24h`, `7d`, `30d`).
    pub within: Option<String>,
    /// Only runs older than this one.
    pub before: Option<RunId>,
    /// Page size.
    pub limit: usize,
}

/// The periods offered by the time filter: (value, label).
pub(crate) const PERIODS: [(&str, &str); 4] = [
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
];

/// A period's length in milliseconds.
fn period_ms(period: &str) -> Option<Millis> {
    let hour = 3_600_000;
    match period {
        "1h" => Some(hour),
        "24h" => Some(24 * hour),
        "7d" => Some(7 * 24 * hour),
        "30d" => Some(30 * 24 * hour),
        _ => None,
    }
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

/// A page of runs, and the cursor of the next page when there is one (the API's query).
pub(crate) async fn list(
    project: &Project,
    environments: &[Environment],
    filter: &RunFilter,
) -> Result<(Vec<RunRow>, Option<RunId>), UiError> {
    let status = match filter.status.as_deref() {
        None => None,
        // An unknown status matches no run.
        Some(s) => match RunStatus::parse(s) {
            Some(status) => Some(status),
            None => return Ok((Vec::new(), None)),
        },
    };
    let workflow = match filter.workflow.as_deref().map(|w| w.rsplit_once('/')) {
        None => None,
        Some(Some((module, name))) => Some(TargetRef::new(module, name)),
        Some(None) => return Ok((Vec::new(), None)),
    };
    let since = match filter.within.as_deref() {
        None => None,
        Some(w) => match period_ms(w) {
            Some(ms) => Some(coflux_core::model::now_millis() - ms),
            // An unknown period matches no run.
            None => return Ok((Vec::new(), None)),
        },
    };
    let query = RunQuery {
        environment: filter.environment.clone(),
        workflow,
        status,
        since,
        before: filter.before,
        limit: filter.limit,
        ..RunQuery::default()
    };
    let page = match project.query_runs(query).await {
        Ok(page) => page,
        Err(e) if e.code() == "environment_not_found" => return Ok((Vec::new(), None)),
        Err(e) => return Err(e.into()),
    };
    let rows = page
        .runs
        .iter()
        .map(|r| {
            let item = RunItem::new(r, environments);
            RunRow {
                id: r.summary.id,
                module: item.module,
                target: item.target,
                environment: item.environment,
                created_at: item.created_at,
                status: r.status.as_str(),
                duration: elapsed(item.created_at, item.finished_at),
            }
        })
        .collect();
    Ok((rows, page.next))
}

/// The runs table. `base` is the page's path and `keep` the query pairs to keep in the "older"
/// link and the filter links (a row's status, workflow and environment narrow the list to
/// runs like it: `status=`, `workflow=`, `env=`).
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
    let filter_link = |key: &str, value: &str| {
        let mut pairs: Vec<(&str, Option<&str>)> = keep
            .iter()
            .filter(|(k, _)| *k != key && *k != "before")
            .copied()
            .collect();
        pairs.push((key, Some(value)));
        format!("{base}{}", query(&pairs))
    };
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
                            td { a.filter href=(filter_link("status", row.status)) title="Runs with this status" { (badge(row.status)) } }
                            td.mono {
                                a.filter href=(filter_link("workflow", &format!("{}/{}", row.module, row.target))) title="Runs of this workflow" {
                                    (row.module) " / " strong { (row.target) }
                                }
                            }
                            td { a.filter href=(filter_link("env", &row.environment)) title="Runs in this environment" { (row.environment) } }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_link_to_the_runs_like_them() {
        let row = RunRow {
            id: RunId(7),
            module: "app.flows".into(),
            target: "main".into(),
            environment: "prod & co".into(),
            created_at: 0,
            status: "error",
            duration: "1 s".into(),
        };
        let html = table(
            "acme",
            &[row],
            None,
            "/projects/acme",
            &[
                ("environment", Some("prod")),
                ("status", Some("value")),
                ("before", Some("R9")),
            ],
        )
        .into_string();
        assert!(
            html.contains(r#"href="/projects/acme?environment=prod&amp;status=error""#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/projects/acme?environment=prod&amp;status=value&amp;workflow=app.flows%2Fmain""#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"href="/projects/acme?environment=prod&amp;status=value&amp;env=prod%20%26%20co""#
            ),
            "{html}"
        );
    }
}
