//! Environments of a project.
//!
//! - `GET /api/projects/{project}/environments` → `{"environments":[EnvironmentItem]}`
//!   (including archived ones), each `{"name","parent","state","created_at"}`;
//! - `POST /api/projects/{project}/environments {"name","parent"?}` → 201 `EnvironmentItem`;
//!   409 `environment_exists` for a duplicate;
//! - `POST /api/projects/{project}/environments/{env}/pause|resume|archive` → 200
//!   `EnvironmentItem` (archive: 409 `environment_has_children` while it has active children);
//! - `PATCH /api/projects/{project}/environments/{env} {"parent": "P" | null}` → 200
//!   `EnvironmentItem`: re-bases it (409 `environment_cycle` if P is it or a descendant).

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use coflux_core::model::{Environment, EnvironmentState};
use coflux_core::protocol::http::{
    CreateEnvironment, EnvironmentItem, EnvironmentList, UpdateEnvironment,
};

use super::{created, existing_project, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the environment routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project}/environments", Access::PROJECT)
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}",
            Access::PROJECT,
        )
        .route(web::patch().to(update)),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/pause",
            Access::PROJECT,
        )
        .route(web::post().to(|s, p| change_state(s, p, Action::Pause))),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/resume",
            Access::PROJECT,
        )
        .route(web::post().to(|s, p| change_state(s, p, Action::Resume))),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/archive",
            Access::PROJECT,
        )
        .route(web::post().to(|s, p| change_state(s, p, Action::Archive))),
    );
}

#[derive(Clone, Copy)]
enum Action {
    Pause,
    Resume,
    Archive,
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    let all = project.environments().await?;
    let environments = all.iter().map(|e| EnvironmentItem::new(e, &all)).collect();
    Ok(HttpResponse::Ok().json(EnvironmentList { environments }))
}

async fn render(
    project: &coflux_core::Project,
    env: &Environment,
) -> Result<EnvironmentItem, ApiError> {
    let all = if env.parent.is_some() {
        project.environments().await?
    } else {
        Vec::new()
    };
    Ok(EnvironmentItem::new(env, &all))
}

async fn create(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CreateEnvironment>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    let env = project
        .create_environment(&body.name, body.parent.as_deref())
        .await?;
    Ok(created(render(&project, &env).await?))
}

async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<UpdateEnvironment>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let env = match &body.parent {
        Some(parent) => {
            project
                .set_environment_parent(&environment, parent.as_deref())
                .await?
        }
        None => {
            let name = environment.as_str();
            project
                .environments()
                .await?
                .into_iter()
                .find(|e| e.name.as_str() == name && e.state != EnvironmentState::Archived)
                .ok_or_else(|| {
                    ApiError::not_found(
                        "environment_not_found",
                        format!("environment '{environment}' not found"),
                    )
                })?
        }
    };
    Ok(HttpResponse::Ok().json(render(&project, &env).await?))
}

async fn change_state(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let env = match action {
        Action::Pause => project.pause_environment(&environment).await?,
        Action::Resume => project.resume_environment(&environment).await?,
        Action::Archive => {
            let archived = project.archive_environment(&environment).await?;
            // Connected agents of the environment are told to stop.
            state.sessions.stop_environment(
                project.name(),
                &environment,
                "the environment was archived",
            );
            archived
        }
    };
    Ok(HttpResponse::Ok().json(render(&project, &env).await?))
}
