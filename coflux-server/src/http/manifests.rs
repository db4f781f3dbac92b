//! Manifests: the workflow and task definitions registered for an environment.
//!
//! - `PUT /api/projects/{project}/environments/{env}/manifests {"targets":[TargetDefinition]}`
//!   → `{"registered":n}` (definitions replace earlier ones of the same targets);
//! - `GET` on the same path → `{"targets":[TargetDefinition]}`.
//!
//! `TargetDefinition` is the serde form of `coflux_core::model::TargetDefinition`:
//! `{"target":{"module","name"},"kind":"workflow"|"task","parameters":[{"name","annotation",
//! "default"}],"options":{…},"instruction"}`.

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use coflux_core::protocol::http::{Manifests, Registered};

use super::{existing_project, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// The most definitions one registration may carry.
pub const MAX_TARGETS: usize = 10_000;

/// Registers the manifest routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(
            "/projects/{project}/environments/{environment}/manifests",
            Access::DATA,
        )
        .app_data(
            web::JsonConfig::default()
                .limit(8 * 1024 * 1024)
                .error_handler(crate::error::json_error_handler),
        )
        .route(web::put().to(register))
        .route(web::get().to(inspect)),
    );
}

async fn register(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<Manifests>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let targets = body.into_inner().targets;
    if targets.len() > MAX_TARGETS {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("at most {MAX_TARGETS} targets can be registered at once"),
        ));
    }
    if let Some(bad) = targets
        .iter()
        .find(|t| t.target.module.is_empty() || t.target.name.is_empty())
    {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("target '{}' needs a module and a name", bad.target),
        ));
    }
    let registered = targets.len();
    project.register_manifests(&environment, targets).await?;
    Ok(HttpResponse::Ok().json(Registered { registered }))
}

async fn inspect(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let targets = project.manifests(&environment).await?;
    Ok(HttpResponse::Ok().json(Manifests { targets }))
}
