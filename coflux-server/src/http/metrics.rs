//! `GET /api/projects/{project}/runs/{run}/metrics[?execution=R1:2:1]`: a run's metrics
//! (`cf.Metric`, `cf.progress`), read from the project's log database (never through the
//! orchestrator):
//!
//! ```json
//! {"run_id": "R1", "truncated": false, "executions": [{"execution_id": "R1:2:1", "metrics": [
//!   {"key": "progress", "definition": {"progress": true, "upper": 10, "throttle": 10},
//!    "points": [{"at": 0.01, "value": 1, "timestamp": 1700000000000}, …]}]}]}
//! ```
//!
//! Executions are ordered by step and attempt, metrics by key, points as they arrived (at most
//! [`MAX_POINTS`](crate::logs::metrics::MAX_POINTS) in all; `truncated` says when more exist). Errors: 404 `project_not_found`,
//! 400 `invalid_id` (run or execution), 400 `filter_outside_run`, 400 `bad_request` (query).

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use coflux_core::model::{ExecutionId, RunId};
use serde::Deserialize;

use super::{existing_project, parse_id, resource};
use crate::error::ApiError;
use crate::logs::LogError;
use crate::state::AppState;

/// Registers the metrics route (inside the `/api` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project}/runs/{run}/metrics", Access::PROJECT)
            .route(web::get().to(list)),
    );
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    execution: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<MetricsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, run) = path.into_inner();
    let run: RunId = parse_id(&run)?;
    let execution: Option<ExecutionId> = query.execution.as_deref().map(parse_id).transpose()?;
    existing_project(&state, &project).await?;
    let metrics = state
        .logs
        .query_metrics(&project, run, execution)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(metrics))
}

/// A log store error in the API's shape (storage details are logged, never sent).
fn api_error(e: LogError) -> ApiError {
    if e.is_client_error() {
        ApiError::bad_request(e.code(), e.to_string())
    } else {
        ApiError::internal(e)
    }
}
