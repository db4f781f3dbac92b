//! The HTTP JSON API, under `/api`.
//!
//! Bodies are JSON with snake_case keys; ids are in display form (`R1`, `R1:2`, `R1:2:1`).
//! Every request and response body is a type of [`coflux_core::protocol::http`], shared with
//! the CLI and the UI. Errors are `{"error":{"code","message"}}` (see [`crate::error`]);
//! unknown routes under `/api` answer 404 `not_found`, and known routes with another method
//! 405 `method_not_allowed`. One module per resource:
//!
//! - [`health`] — `GET /api/health`;
//! - [`projects`] — `GET|POST /api/projects`;
//! - [`environments`] — `/api/projects/{project}/environments[/{env}/pause|resume|archive]`;
//! - [`manifests`] — `PUT|GET /api/projects/{project}/environments/{env}/manifests`;
//! - [`runs`] — submission, listing (filters, cursor pages), inspection, results, re-runs and
//!   cancellation;
//! - [`metrics`] — `GET /api/projects/{project}/runs/{run}/metrics` (from the log database);
//! - [`schedules`] — cron schedules of workflows;
//! - [`sessions`] — `GET /api/projects/{project}/sessions` (connected agents) and
//!   `GET …/environments/{env}/queue` (what waits, and why);
//! - [`settings`] — per-target concurrency limits and archiving modules, per environment;
//! - [`blobs`] — `PUT|GET|HEAD /api/projects/{project}/blobs/{key}` and the reusable
//!   [`blobs::BlobStore`];
//! - [`assets`] — `POST /api/projects/{project}/assets`, `GET …/assets/{id}`;
//! - [`cluster`] — `GET /api/cluster` (nodes and the projects each owns).

pub mod assets;
pub mod blobs;
pub mod cluster;
pub mod environments;
pub mod health;
pub mod inputs;
pub mod manifests;
pub mod metrics;
pub mod projects;
pub mod runs;
pub mod schedules;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod views;

use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};
use coflux_core::Project;
use serde::de::DeserializeOwned;

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the HTTP API routes (everything under `/api`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .configure(health::configure)
            .configure(projects::configure)
            .configure(environments::configure)
            .configure(manifests::configure)
            .configure(runs::configure)
            .configure(metrics::configure)
            .configure(settings::configure)
            .configure(schedules::configure)
            .configure(sessions::configure)
            .configure(blobs::configure)
            .configure(assets::configure)
            .configure(inputs::configure)
            .configure(tokens::configure)
            .configure(cluster::configure)
            .default_service(web::to(route_not_found)),
    );
}

/// A resource with its scopes (checked before any handler runs, see [`crate::auth`]), whose
/// unmatched methods answer 405 in the API's error shape.
pub(crate) fn resource(
    path: &str,
    access: Access,
) -> Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .default_service(web::to(method_not_allowed))
        .wrap(actix_web::middleware::from_fn(crate::auth::require(access)))
}

async fn route_not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found(
        "not_found",
        format!("no API route for {} {}", req.method(), req.path()),
    )
    .error_response()
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
    .error_response()
}

/// Opens an existing project (404 `project_not_found`; 400 `invalid_input` for a bad name).
pub(crate) async fn existing_project(state: &AppState, name: &str) -> Result<Project, ApiError> {
    Ok(state.coflux.existing_project(name).await?)
}

/// How often a request waiting on a project checks whether its store stalled.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// 503 `unavailable` for a project whose store cannot commit, saying what became of the request.
fn stalled(what: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!(
            "the project's data directory cannot be written (disk full?); {what}, try again \
             once it has space"
        ),
    )
}

/// Awaits `request` to `project`, unless the project's store cannot commit (disk full): its
/// answers wait for the next commit, so the caller gets 503 `unavailable` instead of hanging.
/// Refused at once when the store is already failing (nothing was done); a request refused
/// while waiting was not acknowledged (a submission may still start once the store commits,
/// as one whose answer was lost would: an idempotency key makes retrying it safe).
pub(crate) async fn unless_stalled<T>(
    project: &Project,
    request: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    if project.writer_stats().stalled {
        return Err(stalled("nothing was done"));
    }
    let stalling = async {
        loop {
            tokio::time::sleep(STALL_CHECK).await;
            if project.writer_stats().stalled {
                return;
            }
        }
    };
    tokio::select! {
        answer = request => answer,
        () = stalling => Err(stalled("not answered")),
    }
}

/// Parses an optional JSON body: empty means `T::default()`.
pub(crate) fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// Parses an id from a path segment (400 `invalid_id`).
pub(crate) fn parse_id<T>(text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| ApiError::bad_request("invalid_id", e.to_string()))
}

/// `201 Created` with a JSON body.
pub(crate) fn created(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created().json(body)
}
