//! `GET /` (projects, with a create form) and `GET /projects/{p}` (the project page: the
//! environment tree, a sidebar of targets and agents, and the runs list).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web;
use coflux_core::model::{Environment, EnvironmentState, RunId, TargetKind};
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{shell, time};
use super::runs::{self, RunFilter};
use super::{Page, UiError, enc, html as respond, query};
use crate::http::existing_project;
use crate::state::AppState;

/// Runs per page of the project's list.
const PAGE: usize = 50;

/// Statuses offered by the runs filter.
const STATUSES: [&str; 8] = [
    "running",
    "queued",
    "value",
    "error",
    "cancelled",
    "abandoned",
    "crashed",
    "timeout",
];

/// `GET /`.
pub(crate) async fn index(state: web::Data<AppState>, req: actix_web::HttpRequest) -> Page {
    // A project's token sees its project only.
    let grant = crate::auth::grant_of(&req);
    let mut names = state.coflux.list_projects().await?;
    names.retain(|name| grant.covers_project(name));
    let body = html! {
        main.narrow {
            h1 { "Projects" }
            @if names.is_empty() {
                p.empty { "No projects yet: create one below." }
            }
            ul.cards data-testid="projects" {
                @for name in &names {
                    li data-testid="project" {
                        a href={ "/projects/" (enc(name)) } { (name) }
                    }
                }
            }
            form.inline data-testid="create-project" data-action="create-project" {
                label { "New project " input name="name" required placeholder="name"
                    autocomplete="off"; }
                button type="submit" { "Create" }
                p.form-error data-testid="form-error" {}
            }
        }
    };
    Ok(respond(StatusCode::OK, shell("Projects", &[], body)))
}

/// The project page's query (also its live stream's).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProjectQuery {
    environment: Option<String>,
    status: Option<String>,
    workflow: Option<String>,
    env: Option<String>,
    within: Option<String>,
    before: Option<String>,
    /// The version the page was rendered at (live stream only).
    pub(crate) version: Option<String>,
}

impl ProjectQuery {
    /// The query of a workflow page: its environment's runs of `workflow` (`module/target`).
    pub(crate) fn workflow(environment: Option<String>, workflow: String) -> Self {
        Self {
            environment,
            workflow: Some(workflow),
            ..Self::default()
        }
    }

    /// The URL of the live stream of a page showing this query.
    pub(crate) fn events_url(&self, project: &str) -> String {
        format!("/projects/{}/events{}", enc(project), query(&self.pairs()))
    }

    /// The page's query parameters, in URL order.
    fn pairs(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("environment", self.environment.as_deref()),
            ("status", self.status.as_deref()),
            ("workflow", self.workflow.as_deref()),
            ("env", self.env.as_deref()),
            ("within", self.within.as_deref()),
            ("before", self.before.as_deref()),
        ]
    }
}

/// The environment to show: the one asked for, else the first active one.
pub(crate) fn selected_environment<'a>(
    environments: &'a [Environment],
    asked: Option<&str>,
) -> Result<Option<&'a Environment>, UiError> {
    match asked.filter(|a| !a.is_empty()) {
        Some(name) => environments
            .iter()
            .filter(|e| e.name.as_str() == name)
            .min_by_key(|e| e.state == EnvironmentState::Archived)
            .map(Some)
            .ok_or_else(|| UiError::not_found(format!("environment '{name}' not found"))),
        None => Ok(environments
            .iter()
            .find(|e| e.state == EnvironmentState::Active)
            .or_else(|| environments.first())),
    }
}

/// What the project page shows, read once per rendering (the live stream reads it again).
pub(crate) struct ProjectData {
    environments: Vec<Environment>,
    selected: Option<String>,
    manifests: Vec<coflux_core::model::TargetDefinition>,
    filter: RunFilter,
    rows: Vec<runs::RunRow>,
    next: Option<RunId>,
    sessions: Vec<crate::agents::SessionSummary>,
}

/// Reads what the project page shows (404 for an unknown project or environment).
pub(crate) async fn load(
    state: &AppState,
    name: &str,
    q: &ProjectQuery,
) -> Result<ProjectData, UiError> {
    let project = existing_project(state, name).await?;
    let environments = project.environments().await?;
    let selected = selected_environment(&environments, q.environment.as_deref())?;
    let manifests = match selected {
        Some(e) if e.state != EnvironmentState::Archived => {
            project.manifests(e.name.as_str()).await?
        }
        _ => Vec::new(),
    };
    let selected = selected.map(|e| e.name.to_string());
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => Some(
            b.parse::<RunId>()
                .map_err(|e| UiError::not_found(e.to_string()))?,
        ),
        None => None,
    };
    let filter = RunFilter {
        status: q.status.clone().filter(|s| !s.is_empty()),
        workflow: q.workflow.clone().filter(|s| !s.is_empty()),
        environment: q.env.clone().filter(|s| !s.is_empty()),
        within: q.within.clone().filter(|s| !s.is_empty()),
        before,
        limit: PAGE,
    };
    let (rows, next) = runs::list(&project, &environments, &filter).await?;
    let sessions = state.sessions.summaries(name);
    Ok(ProjectData {
        environments,
        selected,
        manifests,
        filter,
        rows,
        next,
        sessions,
    })
}

/// `GET /projects/{project}`.
pub(crate) async fn project(
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<ProjectQuery>,
) -> Page {
    let name = path.into_inner();
    let data = load(&state, &name, &q).await?;
    let env_q = data.selected.as_deref();
    let events = q.events_url(&name);
    let body = html! {
        div.layout.project-page data-testid="project-page" data-events=(events) {
            (sidebar(&name, &data))
            main {
                h1 { (name) }
                section data-testid="environments" {
                    h2 { "Environments" }
                    (environment_tree(&name, &data.environments, env_q))
                    form.inline data-testid="create-environment" data-action="create-environment"
                        data-project=(name) {
                        input name="name" required placeholder="new environment" autocomplete="off";
                        select name="parent" {
                            option value="" { "no parent" }
                            @for e in data.environments.iter().filter(|e| e.state != EnvironmentState::Archived) {
                                option value=(e.name.as_str()) { "inherits " (e.name.as_str()) }
                            }
                        }
                        button type="submit" { "Create environment" }
                        p.form-error data-testid="form-error" {}
                    }
                }
                section data-testid="runs" {
                    h2 { "Runs" }
                    (runs_filter(&name, &data))
                    (runs_table(&name, &data))
                }
                @if data.environments.is_empty() {
                    (getting_started(&name))
                }
            }
        }
    };
    let crumbs = [(name.clone(), None)];
    Ok(respond(StatusCode::OK, shell(&name, &crumbs, body)))
}

/// The sidebar (`#project-sidebar`, replaced live): the selected environment's targets by
/// module with their running counts, and the agents.
pub(crate) fn sidebar(name: &str, data: &ProjectData) -> Markup {
    let base = format!("/projects/{}", enc(name));
    let env_q = data.selected.as_deref();
    let mut modules: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for d in &data.manifests {
        modules.entry(d.target.module.as_str()).or_default().push(d);
    }
    // Running executions per target, over the selected environment's agents.
    let mut running: BTreeMap<&str, usize> = BTreeMap::new();
    for s in data
        .sessions
        .iter()
        .filter(|s| Some(s.environment.as_str()) == env_q)
    {
        for (target, n) in &s.running_targets {
            *running.entry(target.as_str()).or_default() += n;
        }
    }
    html! {
        aside.sidebar #project-sidebar data-testid="sidebar" {
            h2 { "Targets" @if let Some(e) = env_q { span.muted { " in " (e) } } }
            @if modules.is_empty() {
                p.empty data-testid="no-targets" { "Nothing registered in this environment." }
            }
            @for (module, targets) in &modules {
                div.module data-testid="module" {
                    h3.mono { (module) }
                    ul {
                        @for d in targets {
                            li data-testid="target" data-kind=(d.kind.as_str()) {
                                @if d.kind == TargetKind::Workflow {
                                    a href={ (base) "/workflows/" (enc(module)) "/"
                                        (enc(&d.target.name)) (query(&[("environment", env_q)])) }
                                        { (d.target.name) }
                                } @else {
                                    span { (d.target.name) }
                                }
                                " " span.kind { (d.kind.as_str()) }
                                @if let Some(n) = running.get(d.target.to_string().as_str()) {
                                    " " span.count data-testid="target-running" title="running now" { (n) " running" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Agents" }
            @if data.sessions.is_empty() {
                p.empty data-testid="no-agents" { "No agents connected." }
            }
            ul.agents data-testid="agents" {
                @for s in &data.sessions {
                    li data-testid="agent" {
                        span class={ "dot " @if s.connected { "on" } @else { "off" } } {}
                        (s.worker) " · " (s.environment)
                        span.muted { " · " span data-testid="agent-running" { (s.running) } "/"
                            (s.profile.concurrency) " running"
                            @if s.draining { " · draining" }
                            @if !s.connected { " · disconnected" } }
                        div.muted.small {
                             (s.profile.targets) " target" @if s.profile.targets != 1 { "s" } " · since " (time(s.opened_at))
                            @for (key, values) in &s.profile.provides {
                                " " span.tag { (key) ":" (values.join(",")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn runs_filter(name: &str, data: &ProjectData) -> Markup {
    let base = format!("/projects/{}", enc(name));
    let env_q = data.selected.as_deref();
    let filter = &data.filter;
    let workflows: Vec<String> = data
        .manifests
        .iter()
        .filter(|d| d.kind == TargetKind::Workflow)
        .map(|d| d.target.to_string())
        .collect();
    html! {
        form.filters method="get" action=(base) data-testid="runs-filter" {
            @if let Some(e) = env_q { input type="hidden" name="environment" value=(e); }
            select name="status" {
                option value="" { "any status" }
                @for s in STATUSES {
                    option value=(s) selected[filter.status.as_deref() == Some(s)] { (s) }
                }
            }
            select name="workflow" {
                option value="" { "any workflow" }
                @for w in &workflows {
                    option value=(w) selected[filter.workflow.as_deref() == Some(w.as_str())] { (w) }
                }
                @if let Some(w) = filter.workflow.as_deref().filter(|w| !workflows.iter().any(|x| x == w)) {
                    option value=(w) selected { (w) }
                }
            }
            select name="env" {
                option value="" { "any environment" }
                @for e in &data.environments {
                    option value=(e.name.as_str()) selected[filter.environment.as_deref() == Some(e.name.as_str())] { (e.name.as_str()) }
                }
            }
            select name="within" {
                option value="" { "any time" }
                @for (value, label) in runs::PERIODS {
                    option value=(value) selected[filter.within.as_deref() == Some(value)] { (label) }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// The runs table (`#project-runs`, replaced live).
pub(crate) fn runs_table(name: &str, data: &ProjectData) -> Markup {
    let base = format!("/projects/{}", enc(name));
    let filter = &data.filter;
    html! {
        div #project-runs {
            (runs::table(name, &data.rows, data.next, &base, &[
                ("environment", data.selected.as_deref()),
                ("status", filter.status.as_deref()),
                ("workflow", filter.workflow.as_deref()),
                ("env", filter.environment.as_deref()),
                ("within", filter.within.as_deref()),
            ]))
        }
    }
}

/// The environments as a tree (children under their parent), with state badges and actions.
fn environment_tree(project: &str, all: &[Environment], selected: Option<&str>) -> Markup {
    let roots: Vec<&Environment> = all
        .iter()
        .filter(|e| e.parent.is_none_or(|p| !all.iter().any(|x| x.id == p)))
        .collect();
    html! {
        @if all.is_empty() {
            p.empty { "No environments yet." }
        } @else {
            ul.tree data-testid="environment-tree" {
                @for e in roots { (environment_node(project, all, e, selected)) }
            }
        }
    }
}

fn environment_node(
    project: &str,
    all: &[Environment],
    env: &Environment,
    selected: Option<&str>,
) -> Markup {
    let name = env.name.as_str();
    let api = format!("/api/projects/{}/environments/{}", enc(project), enc(name));
    let state = env.state.as_str();
    let is_selected = selected == Some(name) && env.state != EnvironmentState::Archived;
    html! {
        li data-testid="environment" data-environment=(name) data-state=(state) {
            div class={ "env" @if is_selected { " selected" } } {
                a href={ "/projects/" (enc(project)) (query(&[("environment", Some(name))])) } { (name) }
                " " span class={ "badge env-" (state) } { (state) }
                @match env.state {
                    EnvironmentState::Active => {
                        button.small data-post={ (api) "/pause" } data-confirm={ "Pause environment '" (name) "'?" }
                            data-testid="pause" { "Pause" }
                    }
                    EnvironmentState::Paused => {
                        button.small data-post={ (api) "/resume" } data-testid="resume" { "Resume" }
                    }
                    EnvironmentState::Archived => {}
                }
                @if env.state != EnvironmentState::Archived {
                    button.small.danger data-post={ (api) "/archive" }
                        data-confirm={ "Archive environment '" (name) "'? This cannot be undone." }
                        data-testid="archive" { "Archive" }
                }
            }
            @let children: Vec<&Environment> = all.iter().filter(|c| c.parent == Some(env.id)).collect();
            @if !children.is_empty() {
                ul { @for c in children { (environment_node(project, all, c, selected)) } }
            }
        }
    }
}

/// Commands to get a first agent running, for a project without environments.
fn getting_started(project: &str) -> Markup {
    html! {
        section.help data-testid="getting-started" {
            h2 { "Getting started" }
            p { "Create an environment above, then start an agent for it:" }
            pre { "coflux-agent --server <this server's URL> --project " (project)
                " --environment production --adapter <your executor> --directory ." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coflux_core::model::{EnvironmentId, EnvironmentName};

    fn env(id: u32, name: &str, parent: Option<u32>, state: EnvironmentState) -> Environment {
        Environment {
            id: EnvironmentId(id),
            name: EnvironmentName::new(name).unwrap(),
            parent: parent.map(EnvironmentId),
            state,
            created_at: 0,
        }
    }

    #[test]
    fn ui_environment_tree_nests_children_and_escapes() {
        let all = vec![
            env(1, "production", None, EnvironmentState::Active),
            env(2, "staging", Some(1), EnvironmentState::Paused),
            env(3, "old", Some(1), EnvironmentState::Archived),
        ];
        let out = environment_tree("p", &all, Some("staging")).into_string();
        let staging = out.find("data-environment=\"staging\"").unwrap();
        let production = out.find("data-environment=\"production\"").unwrap();
        assert!(production < staging);
        assert!(out.contains("/api/projects/p/environments/staging/resume"));
        assert!(!out.contains("/api/projects/p/environments/old/archive"));
        assert_eq!(
            selected_environment(&all, None).unwrap().map(|e| e.id),
            Some(EnvironmentId(1))
        );
        assert!(selected_environment(&all, Some("nope")).is_err());
    }
}
