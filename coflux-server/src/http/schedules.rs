//! Cron schedules: workflows started as new runs at every tick (UTC).
//!
//! - `GET /api/projects/{project}/schedules` → `{"schedules":[ScheduleItem]}`, each
//!   `{"id","environment","module","target","cron","arguments","created_at","last_tick",
//!   "next_at","missed"}` (`missed`: ticks that passed while the server was down and were not
//!   run);
//! - `POST /api/projects/{project}/environments/{env}/schedules {"module","target","cron",
//!   "arguments"?}` → 201 `ScheduleItem` (400 `invalid_request` for a bad cron expression,
//!   400 `not_a_workflow` for a task; options come from the registered manifest; the workflow
//!   need not be registered yet: runs of its ticks wait for an agent);
//! - `DELETE /api/projects/{project}/schedules/{id}` → 200 `{}` (404 `schedule_not_found`).

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use coflux_core::protocol::http::{CreateSchedule, Empty, ScheduleItem, ScheduleList};

use super::runs::{plain_arguments, target_of, workflow_options};
use super::{created, existing_project, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the schedule routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project}/schedules", Access::PROJECT).route(web::get().to(list)),
    )
    .service(
        resource(
            "/projects/{project}/environments/{environment}/schedules",
            Access::PROJECT,
        )
        .route(web::post().to(create)),
    )
    .service(
        resource("/projects/{project}/schedules/{id}", Access::PROJECT)
            .route(web::delete().to(delete)),
    );
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    let schedules = project
        .schedules()
        .await?
        .iter()
        .map(ScheduleItem::from)
        .collect();
    Ok(HttpResponse::Ok().json(ScheduleList { schedules }))
}

async fn create(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<CreateSchedule>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let body = body.into_inner();
    let target = target_of(body.module, body.target)?;
    let registered = project
        .registration(&environment, &target)
        .await?
        .definition;
    let options = workflow_options(&target, registered)?;
    let arguments = plain_arguments(body.arguments)?;
    let schedule = project
        .create_schedule(&environment, target, &body.cron, arguments, options)
        .await?;
    Ok(created(ScheduleItem::from(&schedule)))
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let id: u32 = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_input", "a schedule id is a positive number")
    })?;
    project.delete_schedule(id).await?;
    Ok(HttpResponse::Ok().json(Empty {}))
}
