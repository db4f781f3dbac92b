//! `GET /projects/{p}/workflows/{module}/{target}?environment=E`: a workflow's definition
//! (from the environment's manifest), a Run form and its runs, kept current by the project's
//! live stream (`/projects/{p}/events?environment=E&workflow=M/T`, which replaces
//! `#project-runs`).

use actix_web::http::StatusCode;
use actix_web::web;
use coflux_core::model::TargetKind;
use maud::html;
use serde::Deserialize;

use super::page::shell;
use super::projects::{self, ProjectQuery, runs_table, selected_environment};
use super::{Page, enc, html as respond, query};
use crate::http::existing_project;
use crate::state::AppState;

/// The workflow page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WorkflowQuery {
    environment: Option<String>,
}

/// `GET /projects/{project}/workflows/{module}/{target}`.
pub(crate) async fn page(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    q: web::Query<WorkflowQuery>,
) -> Page {
    let (name, module, target) = path.into_inner();
    let project = existing_project(&state, &name).await?;
    let environments = project.environments().await?;
    let selected = selected_environment(&environments, q.environment.as_deref())?;
    let env_name = selected.map(|e| e.name.to_string());
    let definition = match &env_name {
        Some(e) => project
            .manifests(e)
            .await?
            .into_iter()
            .find(|d| d.target.module == module && d.target.name == target),
        None => None,
    };
    let qualified = format!("{module}/{target}");
    // The runs as the project page shows them filtered, so the live stream's fragments match.
    let runs_query = ProjectQuery::workflow(env_name.clone(), qualified.clone());
    let runs = projects::load(&state, &name, &runs_query).await?;
    let project_href = format!(
        "/projects/{}{}",
        enc(&name),
        query(&[("environment", env_name.as_deref())])
    );
    let is_task = definition
        .as_ref()
        .is_some_and(|d| d.kind == TargetKind::Task);
    let submit_url = env_name
        .as_ref()
        .map(|e| format!("/api/projects/{}/environments/{}/runs", enc(&name), enc(e)));
    let body = html! {
        main.narrow.project-page data-testid="workflow-page" data-events=(runs_query.events_url(&name)) {
            h1.mono { span.muted { (module) " / " } (target) }
            @if let Some(e) = &env_name { p.muted { "Environment: " strong { (e) } } }
            @match &definition {
                Some(d) => {
                    @if let Some(doc) = &d.instruction { pre.doc data-testid="instruction" { (doc) } }
                    h2 { "Parameters" }
                    @if d.parameters.is_empty() { p.empty { "None." } }
                    @else {
                        table.params data-testid="parameters" {
                            thead { tr { th { "Name" } th { "Type" } th { "Default" } } }
                            tbody { @for p in &d.parameters {
                                tr { td.mono { (p.name) } td.mono { (p.annotation.as_deref().unwrap_or("")) }
                                    td.mono { (p.default.as_deref().unwrap_or("")) } }
                            } }
                        }
                    }
                }
                None => {
                    p.warning data-testid="not-registered" {
                        "This workflow is not registered in this environment; arguments are sent as given."
                    }
                }
            }
            @if is_task {
                p.warning { "This target is a task: only workflows can be run." }
            } @else if let (Some(url), Some(env)) = (&submit_url, &env_name) {
                h2 { "Run" }
                form.run-form data-testid="run-form" data-action="submit-run" data-url=(url)
                    data-module=(module) data-target=(target) data-project=(name) data-environment=(env) {
                    @match &definition {
                        Some(d) if !d.parameters.is_empty() => {
                            @for p in &d.parameters {
                                label.field {
                                    span.mono { (p.name) @if let Some(a) = &p.annotation { span.muted { ": " (a) } } }
                                    textarea data-argument data-name=(p.name) rows="1"
                                        placeholder=(p.default.as_deref().unwrap_or("JSON value"))
                                        data-default=[p.default.as_deref()]
                                        required[p.default.is_none()] {}
                                }
                            }
                        }
                        Some(_) => { p.muted { "No arguments." } }
                        None => {
                            label.field { span { "Arguments (a JSON array)" }
                                textarea data-arguments rows="2" placeholder="[]" {} }
                        }
                    }
                    button type="submit" data-testid="run-submit" { "Run" }
                    p.form-error data-testid="form-error" {}
                }
            } @else {
                p.warning { "Create an environment to run this workflow in." }
            }
            h2 { "Runs" }
            (runs_table(&name, &runs))
        }
    };
    let crumbs = [
        (name.clone(), Some(project_href)),
        (qualified.clone(), None),
    ];
    Ok(respond(StatusCode::OK, shell(&qualified, &crumbs, body)))
}
