//! Projects.
//!
//! - `GET /api/projects` → `{"projects":[{"name"}]}` (oldest first);
//! - `POST /api/projects {"name"}` → 201 `{"name"}` (creating an existing project is a no-op;
//!   400 `invalid_input` for an invalid name).

use crate::auth::Access;
use actix_web::{HttpRequest, HttpResponse, web};
use coflux_core::protocol::http::{CreateProject, ProjectItem, ProjectList};

use super::{created, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the project routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects", Access::PROJECTS)
            .route(web::get().to(list))
            .route(web::post().to(create)),
    );
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let names = state.coflux.list_projects().await?;
    // A project's token sees its project only.
    let grant = crate::auth::grant_of(&req);
    let projects: Vec<_> = names
        .iter()
        .filter(|n| grant.covers_project(n))
        .map(|n| ProjectItem { name: n.clone() })
        .collect();
    Ok(HttpResponse::Ok().json(ProjectList { projects }))
}

async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    let name = match state.coflux.project(&body.name).await {
        Ok(project) => project.name().to_owned(),
        // Another node of the cluster owns it: it exists (creating it is a no-op).
        Err(coflux_core::Error::OwnedElsewhere { project, .. }) => project,
        Err(e) => return Err(e.into()),
    };
    Ok(created(ProjectItem { name }))
}
