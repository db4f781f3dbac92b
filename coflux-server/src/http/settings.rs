//! Per-environment settings: concurrency limits per target, and archiving a module.
//!
//! - `GET /api/projects/{project}/environments/{env}/limits` →
//!   `{"limits":[{"module","target","max"}]}`;
//! - `PUT /api/projects/{project}/environments/{env}/limits/{module}/{target} {"max": N|null}`
//!   → 200 `{"module","target","max"}`: at most N executions of the target run at once in the
//!   environment (null or 0 lifts the limit);
//! - `POST /api/projects/{project}/environments/{env}/modules/{module}/archive` → 200 `{}`: the
//!   module's targets are no longer listed until a manifest registers them again (400
//!   `invalid_input` when the module has no registered targets).

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use coflux_core::model::TargetRef;
use coflux_core::protocol::http::{Empty, Limit, LimitList, SetLimit};

use super::{existing_project, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the settings routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(
            "/projects/{project}/environments/{environment}/limits",
            Access::PROJECT,
        )
        .route(web::get().to(list)),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/limits/{module}/{target}",
            Access::PROJECT,
        )
        .route(web::put().to(set)),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/modules/{module}/archive",
            Access::PROJECT,
        )
        .route(web::post().to(archive)),
    );
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let limits = project
        .concurrency_limits(&environment)
        .await?
        .into_iter()
        .map(|l| Limit {
            module: l.target.module,
            target: l.target.name,
            max: Some(l.max),
        })
        .collect();
    Ok(HttpResponse::Ok().json(LimitList { limits }))
}

async fn set(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String, String)>,
    body: web::Json<SetLimit>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment, module, target) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let max = body.max.filter(|m| *m > 0);
    let target = TargetRef::new(module, target);
    project
        .set_concurrency_limit(&environment, target.clone(), max)
        .await?;
    Ok(HttpResponse::Ok().json(Limit {
        module: target.module,
        target: target.name,
        max,
    }))
}

async fn archive(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment, module) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    project.archive_module(&environment, &module).await?;
    Ok(HttpResponse::Ok().json(Empty {}))
}
