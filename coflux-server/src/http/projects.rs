//! Projects.
//!
//! - `GET /api/projects` → `{"projects":[{"name"}]}` (oldest first);
//! - `POST /api/projects {"name"}` → 201 `{"name"}` (creating an existing project is a no-op;
//!   400 `invalid_input` for an invalid name).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{created, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the project routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
}

async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let names = state.coflux.list_projects().await?;
    let projects: Vec<_> = names.iter().map(|n| json!({ "name": n })).collect();
    Ok(HttpResponse::Ok().json(json!({ "projects": projects })))
}

async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    let project = state.coflux.project(&body.name).await?;
    Ok(created(json!({ "name": project.name() })))
}
