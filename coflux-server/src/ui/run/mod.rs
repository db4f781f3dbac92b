//! `GET /projects/{p}/runs/{r}?environment=E&step=S&attempt=N&tab=graph|timeline|logs|assets|metrics`:
//! a run's header, its tabs (graph, timeline, logs, assets, metrics) and the step panel. The part below the
//! breadcrumbs (the "main fragment") is what the live stream ([`live`]) re-renders.

mod assets;
mod compare;
mod filter;
pub mod graph;
pub mod live;
mod logs;
mod metrics;
mod panel;
pub mod timeline;

use actix_web::http::StatusCode;
use actix_web::web;
use coflux_core::api::{ExecutionView, RunView, StepView};
use coflux_core::model::{Environment, ExecutionId, RunId, StepId};
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{badge, elapsed, run_active, run_finished_at, run_status, shell, time};
use super::{Page, UiError, enc, html as respond, query};
use crate::http::existing_project;
use crate::state::AppState;

/// The run page's query (also the live stream's).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct RunQuery {
    pub environment: Option<String>,
    pub step: Option<String>,
    pub attempt: Option<String>,
    pub tab: Option<String>,
    /// `graph` or `list` (the graph tab's view).
    pub view: Option<String>,
    /// The logs tab's lowest level.
    pub level: Option<String>,
    /// The list view's first row.
    pub from: Option<String>,
    /// The list view's target (`module/name`).
    pub target: Option<String>,
    /// `step`: the logs tab shows only the selected step's logs.
    pub only: Option<String>,
    /// The graph tab's status filter: `active` (hides completed steps) or a status name.
    pub show: Option<String>,
    /// The asset file previewed (its blob key, assets tab).
    pub file: Option<String>,
    /// An environment to compare the view with (`compare::Comparison`).
    pub compare: Option<String>,
    /// The version the page was rendered at (live stream only).
    pub version: Option<String>,
}

/// Everything one rendering of a run needs.
pub(crate) struct RunCtx<'a> {
    pub project: &'a str,
    pub view: &'a RunView,
    pub environments: &'a [Environment],
    pub q: &'a RunQuery,
    /// The selected step and its shown attempt.
    pub selected: Option<(&'a StepView, &'a ExecutionView)>,
    /// The comparison asked for with `compare=`.
    pub compare: Option<&'a compare::Comparison>,
}

impl RunQuery {
    /// The page's query parameters, in URL order.
    fn pairs(&self) -> [(&'static str, Option<&str>); 12] {
        let q = self;
        [
            ("environment", q.environment.as_deref()),
            ("compare", q.compare.as_deref()),
            ("tab", q.tab.as_deref()),
            ("view", q.view.as_deref()),
            ("show", q.show.as_deref()),
            ("level", q.level.as_deref()),
            ("from", q.from.as_deref()),
            ("target", q.target.as_deref()),
            ("only", q.only.as_deref()),
            ("file", q.file.as_deref()),
            ("step", q.step.as_deref()),
            ("attempt", q.attempt.as_deref()),
        ]
    }
}

impl RunCtx<'_> {
    /// This run's page URL with the current query, changed by `changes` (`None` removes).
    pub fn href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let current = self.q.pairs();
        let pairs: Vec<(&str, Option<&str>)> = current
            .iter()
            .map(|(k, v)| {
                changes
                    .iter()
                    .find(|(c, _)| c == k)
                    .map_or((*k, *v), |(_, nv)| (*k, *nv))
            })
            .chain(
                changes
                    .iter()
                    .filter(|(c, _)| !current.iter().any(|(k, _)| k == c))
                    .copied(),
            )
            .collect();
        format!(
            "/projects/{}/runs/{}{}",
            enc(self.project),
            self.view.id,
            query(&pairs)
        )
    }

    /// As [`href`](Self::href), relative to the page: only the query (`?…`).
    pub fn query_href(&self, changes: &[(&str, Option<&str>)]) -> String {
        let full = self.href(changes);
        match full.find('?') {
            Some(i) => full[i..].to_string(),
            None => full,
        }
    }

    /// A relative link (`?…`) selecting a step (its latest attempt).
    pub fn step_query(&self, step: StepId) -> String {
        let id = step.to_string();
        self.query_href(&[("step", Some(&id)), ("attempt", None)])
    }

    /// A link selecting a step (its latest attempt).
    pub fn step_href(&self, step: StepId) -> String {
        let id = step.to_string();
        self.href(&[("step", Some(&id)), ("attempt", None)])
    }

    /// The callers other than its own that were given `execution` (memo hits), in order.
    pub fn reused_by(&self, execution: ExecutionId) -> Vec<ExecutionId> {
        let mut callers: Vec<ExecutionId> = self
            .view
            .reused
            .iter()
            .filter(|(_, child)| *child == execution)
            .map(|(caller, _)| *caller)
            .collect();
        callers.sort_unstable();
        callers.dedup();
        callers
    }

    /// The executions `caller` was given instead of new steps (memo hits), in order.
    pub fn reuses(&self, caller: ExecutionId) -> Vec<ExecutionId> {
        let mut reused: Vec<ExecutionId> = self
            .view
            .reused
            .iter()
            .filter(|(c, _)| *c == caller)
            .map(|(_, child)| *child)
            .collect();
        reused.sort_unstable();
        reused.dedup();
        reused
    }

    /// A link to an execution: in this run, selecting its step and attempt; else its run.
    pub fn execution_link(&self, id: ExecutionId) -> Markup {
        let href = if id.run() == self.view.id {
            self.href(&[
                ("step", Some(&id.step.to_string())),
                ("attempt", Some(&id.attempt.to_string())),
            ])
        } else {
            format!(
                "/projects/{}/runs/{}?step={}&attempt={}",
                enc(self.project),
                id.run(),
                enc(&id.step.to_string()),
                id.attempt
            )
        };
        html! { a href=(href) data-testid="execution-link" { (id) } }
    }

    /// How `step` differs in the comparison, if one is asked for and it does.
    pub fn differs(&self, step: StepId) -> Option<compare::Difference> {
        self.compare.and_then(|c| c.differences.get(&step).copied())
    }

    /// The tab shown.
    pub fn tab(&self) -> &str {
        match self.q.tab.as_deref() {
            Some(t @ ("timeline" | "logs" | "assets" | "metrics")) => t,
            _ => "graph",
        }
    }
}

/// Resolves `step=` and `attempt=` (404 when they name nothing in the run).
fn selection<'a>(
    view: &'a RunView,
    q: &RunQuery,
) -> Result<Option<(&'a StepView, &'a ExecutionView)>, UiError> {
    let Some(step) = q.step.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let id: StepId = step
        .parse()
        .map_err(|_| UiError::not_found(format!("step '{step}' not found")))?;
    let step_view = view
        .step(id)
        .ok_or_else(|| UiError::not_found(format!("step '{step}' not found in this run")))?;
    let execution = match q.attempt.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => {
            let n: u32 = a
                .parse()
                .map_err(|_| UiError::not_found(format!("attempt '{a}' not found")))?;
            step_view.executions.iter().find(|e| e.id.attempt == n)
        }
        None => step_view.executions.last(),
    }
    .ok_or_else(|| UiError::not_found(format!("attempt not found for step '{step}'")))?;
    Ok(Some((step_view, execution)))
}

/// Reads a run (404 for an unknown or malformed id).
pub(crate) async fn load(
    state: &AppState,
    project: &str,
    run: &str,
    q: &RunQuery,
) -> Result<(coflux_core::Project, RunView, Vec<Environment>), UiError> {
    let run: RunId = run
        .parse()
        .map_err(|_| UiError::not_found(format!("run '{run}' not found")))?;
    let project = existing_project(state, project).await?;
    let view = view_from(&project, run, q.environment.as_deref()).await?;
    let environments = project.environments().await?;
    Ok((project, view, environments))
}

/// A run as seen from `environment`, by default from the run's own environment (so a step
/// re-run in a child environment shows only when viewing from that child).
pub(crate) async fn view_from(
    project: &coflux_core::Project,
    run: RunId,
    environment: Option<&str>,
) -> Result<RunView, coflux_core::Error> {
    if let Some(environment) = environment.filter(|e| !e.is_empty()) {
        return project.inspect_run(run, Some(environment)).await;
    }
    let all = project.inspect_run(run, None).await?;
    let elsewhere = all
        .steps
        .iter()
        .flat_map(|s| &s.executions)
        .any(|e| e.environment != all.environment);
    if elsewhere {
        project.inspect_run(run, Some(&all.environment)).await
    } else {
        Ok(all)
    }
}

/// `GET /projects/{project}/runs/{run}`.
pub(crate) async fn page(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<RunQuery>,
) -> Page {
    let (name, run) = path.into_inner();
    let q = q.into_inner();
    let (_, view, environments) = load(&state, &name, &run, &q).await?;
    let main = render_main(&state, &name, &view, &environments, &q).await?;
    let version = live::version(&main);
    let events = format!(
        "/projects/{}/runs/{}/events{}",
        enc(&name),
        view.id,
        query(&q.pairs())
    );
    let workflow = root_step(&view).map(|s| s.target.to_string());
    let title = format!("{} · {}", view.id, workflow.as_deref().unwrap_or("run"));
    let crumbs = [
        (
            name.clone(),
            Some(format!(
                "/projects/{}{}",
                enc(&name),
                query(&[("environment", q.environment.as_deref())])
            )),
        ),
        (view.id.to_string(), None),
    ];
    let body = html! {
        main.run-page data-testid="run-page" data-events=(events) data-version=(version)
            data-live=(run_active(&view)) {
            (main)
        }
    };
    Ok(respond(StatusCode::OK, shell(&title, &crumbs, body)))
}

/// The run's initial step.
pub(crate) fn root_step(view: &RunView) -> Option<&StepView> {
    view.step(StepId {
        run: view.id,
        number: 1,
    })
    .or_else(|| view.steps.first())
}

/// The main fragment: header, tabs, the tab's content and the step panel.
pub(crate) async fn render_main(
    state: &AppState,
    project: &str,
    view: &RunView,
    environments: &[Environment],
    q: &RunQuery,
) -> Result<Markup, UiError> {
    let selected = selection(view, q)?;
    let comparison = match q.compare.as_deref().filter(|c| !c.is_empty()) {
        Some(other) => {
            let there = view_from(
                &existing_project(state, project).await?,
                view.id,
                Some(other),
            )
            .await?;
            Some(compare::Comparison::new(other.to_string(), view, there))
        }
        None => None,
    };
    let ctx = RunCtx {
        project,
        view,
        environments,
        q,
        selected,
        compare: comparison.as_ref(),
    };
    let content = match ctx.tab() {
        "timeline" => timeline::render(&ctx),
        "logs" => logs::render(&ctx, &state.logs).await?,
        "assets" => assets::render(&ctx, state).await?,
        "metrics" => metrics::render(&ctx, &state.logs).await?,
        _ => graph::render(&ctx),
    };
    let status = run_status(view);
    let root = root_step(view);
    let cancel = root
        .and_then(|s| s.executions.last())
        .filter(|_| run_active(view))
        .map(|e| format!("/api/projects/{}/executions/{}/cancel", enc(project), e.id));
    let tabs = [
        ("graph", "Graph"),
        ("timeline", "Timeline"),
        ("logs", "Logs"),
        ("assets", "Assets"),
        ("metrics", "Metrics"),
    ];
    Ok(html! {
        div #run-main data-testid="run-main" {
            header.run-header data-testid="run-header" {
                h1.mono {
                    @if let Some(root) = root {
                        span.muted { (root.target.module) " / " } (root.target.name)
                    }
                    " " span.muted { (view.id) }
                }
                div.facts {
                    (badge(status))
                    span data-testid="run-environment" { "in " strong { (view.environment) } }
                    @if let Some(asked) = q.environment.as_deref().filter(|e| !e.is_empty() && *e != view.environment) {
                        span.warning { "viewed from " (asked) }
                    }
                    span { "started " (time(view.created_at)) }
                    span data-testid="run-duration" { (elapsed(view.created_at, run_finished_at(view))) }
                    @if let Some(parent) = view.parent {
                        a href={ "/projects/" (enc(project)) "/runs/" (parent.run()) } { "parent run " (parent.run()) }
                    }
                    (compare::chooser(&ctx))
                    @if let Some(url) = cancel {
                        button.danger data-post=(url) data-testid="cancel-run"
                            data-confirm={ "Cancel run " (view.id) "?" } { "Cancel run" }
                    }
                }
            }
            (compare::summary(&ctx))
            nav.tabs data-testid="tabs" {
                @for (key, label) in tabs {
                    a class=[(ctx.tab() == key).then_some("active")] data-testid={ "tab-" (key) }
                        href=(ctx.href(&[("tab", Some(key))])) { (label) }
                }
            }
            div.run-body class=[selected.is_some().then_some("with-panel")] {
                section.tab-content data-testid={ "tab-content-" (ctx.tab()) } { (content) }
                @if let Some((step, execution)) = selected {
                    (panel::render(&ctx, step, execution))
                }
            }
        }
    })
}
