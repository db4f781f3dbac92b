//! The sessions of a project's agents, and what waits in an environment's queue.
//!
//! - `GET /api/projects/{project}/environments/{env}/queue[?limit=N]` → [`QueueList`]
//!   `{"executions":[{"execution_id","module","target","created_at","reason","until"?,
//!   "limit"?}],"total"}`, oldest first (at most N, default 100, at most 1000); `reason` is
//!   `paused`, `delayed`, `no_worker`, `requires_not_provided`, `concurrency_limit` or
//!   `workers_busy`.
//! - `GET /api/projects/{project}/sessions[?environment=E]` → [`SessionList`]
//!   `{"sessions":[{"environment","worker","connected","draining","opened_at","capacity",
//!   "running","running_targets","targets","provides","accepts"}]}`, by environment and worker. A
//!   session stays listed (`connected: false`) while its agent may still reconnect.

use actix_web::{HttpResponse, web};
use coflux_core::protocol::http::{QueueItem, QueueList, SessionItem, SessionList};
use serde::Deserialize;

use super::{existing_project, resource};
use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the session routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project}/sessions", Access::PROJECT).route(web::get().to(list)),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/queue",
            Access::PROJECT,
        )
        .route(web::get().to(queue)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    limit: Option<usize>,
}

async fn queue(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let (waiting, total) = project.queue(&environment, limit).await?;
    Ok(HttpResponse::Ok().json(QueueList {
        executions: waiting.iter().map(QueueItem::from).collect(),
        total,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    environment: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SessionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    if let Some(environment) = &query.environment
        && !project
            .environments()
            .await?
            .iter()
            .any(|e| e.name.as_str() == environment.as_str())
    {
        return Err(ApiError::not_found(
            "environment_not_found",
            format!("environment '{environment}' not found"),
        ));
    }
    let sessions = state
        .sessions
        .summaries(project.name())
        .into_iter()
        .filter(|s| {
            query
                .environment
                .as_ref()
                .is_none_or(|e| *e == s.environment)
        })
        .map(|s| SessionItem {
            environment: s.environment,
            worker: s.worker.0,
            connected: s.connected,
            draining: s.draining,
            opened_at: s.opened_at,
            capacity: s.profile.concurrency,
            running: s.running,
            running_targets: s.running_targets.into_iter().collect(),
            targets: s.profile.targets,
            provides: s.profile.provides.into_iter().collect(),
            accepts: s.profile.accepts.into_iter().collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SessionList { sessions }))
}
