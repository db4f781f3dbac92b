//! Inputs (`cf.Prompt`): the questions executions ask, answered or dismissed by people (see
//! [`coflux_core::protocol::http::inputs`] for the bodies).
//!
//! - `GET /api/projects/{project}/inputs` → `{"inputs":[InputItem]}` (pending, oldest first);
//! - `GET /api/projects/{project}/inputs/{id}` → `InputItem` (404 `input_not_found`);
//! - `POST /api/projects/{project}/inputs/{id}/respond {"value"}` → `InputItem` (400
//!   `invalid_request` when the value does not match the input's schema, 409
//!   `input_rejected` when it was already answered or dismissed);
//! - `POST /api/projects/{project}/inputs/{id}/dismiss` → `InputItem` (409 `input_rejected`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use coflux_core::model::{InputId, InputOp};
use coflux_core::protocol::http::{InputItem, InputList, RespondInput};

use super::{existing_project, resource};
use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// How many pending inputs a list shows at most.
const LIST_LIMIT: u32 = 1000;

/// Registers the input routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/projects/{project}/inputs", Access::PROJECT).route(web::get().to(list)))
        .service(
            resource("/projects/{project}/inputs/{id}", Access::PROJECT)
                .route(web::get().to(inspect)),
        )
        .service(
            resource("/projects/{project}/inputs/{id}/respond", Access::PROJECT)
                .route(web::post().to(respond)),
        )
        .service(
            resource("/projects/{project}/inputs/{id}/dismiss", Access::PROJECT)
                .route(web::post().to(dismiss)),
        );
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    let inputs = project
        .pending_inputs(LIST_LIMIT)
        .await?
        .into_iter()
        .map(InputItem::from)
        .collect();
    Ok(HttpResponse::Ok().json(InputList { inputs }))
}

fn input_id(id: &str) -> Result<InputId, ApiError> {
    id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_input",
            format!("'{id}' is not an input id (like R1:I1)"),
        )
    })
}

/// Applies `op` to the input and answers with it as it stands afterwards.
async fn apply(state: &AppState, project: &str, op: InputOp) -> Result<HttpResponse, ApiError> {
    let project = existing_project(state, project).await?;
    match project.input(op).await {
        Ok(record) => Ok(HttpResponse::Ok().json(InputItem::from(record))),
        Err(e) if e.code() == "input_rejected" => Err(ApiError::new(
            StatusCode::CONFLICT,
            "input_rejected",
            e.to_string(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn inspect(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let input = input_id(&id)?;
    apply(&state, &project, InputOp::Get { input }).await
}

async fn respond(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<RespondInput>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let input = input_id(&id)?;
    let value = body.into_inner().value;
    apply(&state, &project, InputOp::Respond { input, value }).await
}

async fn dismiss(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let input = input_id(&id)?;
    apply(&state, &project, InputOp::Dismiss { input }).await
}
