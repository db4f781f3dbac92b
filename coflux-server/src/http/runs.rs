//! Runs: submission, listing, inspection, results, re-runs and cancellation.
//!
//! - `POST /api/projects/{project}/environments/{env}/runs
//!   {"module","target","arguments":[plain JSON…],"idempotency_key"?}` → 201
//!   `{"run_id","step_id","execution_id"}`. Options come from the workflow's registered
//!   manifest when there is one (defaults otherwise); a target registered as a task is refused
//!   (400 `not_a_workflow`). Submissions with the same `idempotency_key` in the same environment,
//!   within the retention (24 h by default), get the same run. A workflow that no connected
//!   agent of the environment hosts and no manifest registers there is refused at once (404
//!   `workflow_not_found`, naming the environment and the closest registered names), unless
//!   `"allow_unregistered": true` (its run then waits for an agent to come). Per-run overrides
//!   of the workflow's options: `"requires": {key: [values]}` (replaces them; `{}` clears),
//!   `"memo": bool`, `"delay_ms": N` and `"retries": N` (at most N, no backoff; 0: none).
//! - `GET /api/projects/{project}/runs?status=&workflow=M/T&environment=E&since=&until=&cursor=&limit=N`
//!   → [`RunList`] `{"runs":[{"run_id","module","target","environment","created_at","status",
//!   "finished_at","duration_ms"}],"next_cursor"}`, newest first (see [`RunsQuery`]): `status`
//!   is `queued`, `running` or the kind of the initial step's latest result; `since`/`until`
//!   are Unix ms or RFC 3339; `cursor` is the previous page's `next_cursor` (opaque; paging
//!   never repeats or skips a run while runs are created). Bad parameters are 400
//!   `invalid_status`, `invalid_workflow`, `invalid_since`, `invalid_until` or
//!   `invalid_cursor`; an unknown environment is 404 `environment_not_found`.
//! - `GET /api/projects/{project}/runs/{run}?environment=E` → [`Run`]; each step has
//!   `checkpoints: {environment: {name: value}}` (`cf.Checkpoint` state, when it has any).
//! - `DELETE /api/projects/{project}/runs/{run}` (scope `write`) → `{}`: deletes a finished
//!   run with its steps, executions, logs, metrics, checkpoints, streams and inputs (and the
//!   asset records nothing refers to any more). 409 `run_active` while it has an execution
//!   without a result; 409 `run_referenced` while another run links to its results (a cache
//!   hit), naming those runs; 404 `run_not_found`.
//! - `GET /api/projects/{project}/runs/{run}/result?wait=SECONDS&environment=E&step=N&attempt=A`
//!   → `{"run_id","status","value"?,"error"?}` with status `value`, `error`, `cancelled`,
//!   `abandoned`, `crashed` (its executor died without reporting), `timeout` or `pending`; with `wait`, blocks up to that long (at most
//!   [`MAX_WAIT_SECS`]) for the final result, following retries. The result is that of step `N`
//!   (default 1, the run's) as seen from `E` (default the run's environment): its latest
//!   attempt visible there, as in the run's view (a re-run in a child environment is seen from
//!   that child only); with `attempt`, that attempt's own result.
//! - `POST /api/projects/{project}/steps/{step}/rerun {"environment"?}` →
//!   `{"execution_id","attempt"}`.
//! - `POST /api/projects/{project}/executions/{execution}/cancel` → 202 `{}`.

use crate::auth::Access;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use coflux_core::SubmitOptions;
use coflux_core::model::{
    ExecutionId, RunId, StepId, StepOptions, TargetDefinition, TargetKind, TargetRef, Value,
};
use coflux_core::protocol::http::{
    Empty, Rerun, RerunStep, Run, RunCursor, RunItem, RunList, RunResult, RunsQuery, SubmitRun,
    Submitted,
};
use coflux_core::sdk::encode_json;
use serde::Deserialize;
use serde_json::Value as Json;

use super::{created, existing_project, optional_json, parse_id, resource, unless_stalled};
use crate::error::ApiError;
use crate::state::AppState;
pub use coflux_core::protocol::http::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};

/// The longest a result request may block.
pub const MAX_WAIT_SECS: u64 = 300;
/// The most arguments a submission may carry.
pub const MAX_ARGUMENTS: usize = 256;
/// How long a `wait=0` result request waits for a run that has already finished to report its
/// final result (it may still need to follow a hand-over).
const FINISHED_GRACE: Duration = Duration::from_secs(2);

/// Registers the run routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(
            "/projects/{project}/environments/{environment}/runs",
            Access::PROJECT,
        )
        .app_data(
            web::JsonConfig::default()
                .limit(4 * 1024 * 1024)
                .error_handler(crate::error::json_error_handler),
        )
        .route(web::post().to(submit)),
    )
    .service(resource("/projects/{project}/runs", Access::PROJECT).route(web::get().to(list)))
    .service(
        resource("/projects/{project}/runs/{run}", Access::PROJECT)
            .route(web::get().to(inspect))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/projects/{project}/runs/{run}/result", Access::PROJECT)
            .route(web::get().to(result)),
    )
    .service(
        resource("/projects/{project}/steps/{step}/rerun", Access::PROJECT)
            .route(web::post().to(rerun)),
    )
    .service(
        resource(
            "/projects/{project}/executions/{execution}/cancel",
            Access::PROJECT,
        )
        .route(web::post().to(cancel)),
    );
}

async fn submit(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<SubmitRun>,
) -> Result<HttpResponse, ApiError> {
    let (project, environment) = path.into_inner();
    let project = existing_project(&state, &project).await?;
    let body = body.into_inner();
    let target = target_of(body.module.clone(), body.target.clone())?;
    let arguments = plain_arguments(body.arguments.clone())?;
    // One message to the project decides the submission: the environment, the registered
    // options with this body's overrides, the registration check and the run.
    let submission = SubmitOptions {
        idempotency_key: body.idempotency_key.clone(),
        allow_unregistered: body.allow_unregistered,
        overrides: Some(body.overrides()),
        ..SubmitOptions::default()
    };
    let submitting = async {
        Ok(project
            .submit_with(&environment, target, arguments, submission)
            .await?)
    };
    let run = unless_stalled(&project, submitting).await?;
    Ok(created(Submitted {
        run_id: run.run.to_string(),
        step_id: run.execution.step.to_string(),
        execution_id: run.execution.to_string(),
    }))
}

/// The target named in a request body (neither part may be empty).
pub(crate) fn target_of(module: String, target: String) -> Result<TargetRef, ApiError> {
    if module.is_empty() || target.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "'module' and 'target' must not be empty",
        ));
    }
    Ok(TargetRef::new(module, target))
}

/// The options a workflow is submitted with: those of its registered manifest (`registered`),
/// defaults when it is not registered; a target registered as a task is refused.
pub(crate) fn workflow_options(
    target: &TargetRef,
    registered: Option<TargetDefinition>,
) -> Result<StepOptions, ApiError> {
    match registered {
        Some(d) if d.kind == TargetKind::Task => Err(ApiError::bad_request(
            "not_a_workflow",
            format!("'{target}' is registered as a task; only workflows can be submitted"),
        )),
        Some(d) => Ok(d.options),
        None => Ok(StepOptions::default()),
    }
}

/// Arguments given as plain JSON, encoded as values (at most [`MAX_ARGUMENTS`]).
pub(crate) fn plain_arguments(arguments: Vec<Json>) -> Result<Vec<Value>, ApiError> {
    if arguments.len() > MAX_ARGUMENTS {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("at most {MAX_ARGUMENTS} arguments are accepted"),
        ));
    }
    Ok(arguments
        .into_iter()
        .map(|a| Value::raw(encode_json(a)))
        .collect())
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query
        .parse()
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let project = existing_project(&state, &path).await?;
    let page = project.query_runs(query).await?;
    let environments = project.environments().await?;
    Ok(HttpResponse::Ok().json(RunList {
        runs: page
            .runs
            .iter()
            .map(|r| RunItem::new(r, &environments))
            .collect(),
        next_cursor: page.next.map(|id| RunCursor(id).encode()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectQuery {
    environment: Option<String>,
    /// Skips the first `offset` steps (in step order).
    #[serde(default)]
    offset: usize,
    /// Returns at most `limit` steps (all by default); `next_offset` then says where the next
    /// page starts.
    limit: Option<usize>,
}

async fn inspect(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<InspectQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, run) = path.into_inner();
    let run: RunId = parse_id(&run)?;
    let project = existing_project(&state, &project).await?;
    if let Some(limit) = query.limit {
        // A page: read only its steps.
        let view = query.environment.as_deref();
        let page = async {
            Ok(project
                .inspect_run_page(run, view, query.offset, limit)
                .await?)
        };
        let (view, total) = unless_stalled(&project, page).await?;
        return Ok(HttpResponse::Ok().json(Run::paged(&view, query.offset, total)));
    }
    let reading = async {
        Ok(project
            .inspect_run(run, query.environment.as_deref())
            .await?)
    };
    let view = unless_stalled(&project, reading).await?;
    Ok(HttpResponse::Ok().json(Run::page(&view, query.offset, query.limit)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultQuery {
    #[serde(default)]
    wait: u64,
    environment: Option<String>,
    step: Option<u32>,
    attempt: Option<u32>,
}

async fn result(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ResultQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, run) = path.into_inner();
    let run: RunId = parse_id(&run)?;
    let project = existing_project(&state, &project).await?;
    let query = query.into_inner();
    let step = StepId {
        run,
        number: query.step.unwrap_or(1),
    };
    if step.number == 0 || query.attempt == Some(0) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "steps and attempts are numbered from 1",
        ));
    }
    let wait = if query.wait == 0 {
        // Answer at once unless the attempt asked for (by default the step's latest one seen
        // from the environment) has ended; then its final result is known, or found by
        // following a short hand-over.
        // An unknown step or attempt is left to the run to refuse.
        let reading = async {
            let mut view = project.inspect_run(run, None).await?;
            if query.attempt.is_none() {
                let seen = query.environment.clone().unwrap_or(view.environment);
                view = project.inspect_run(run, Some(&seen)).await?;
            }
            Ok(view)
        };
        let view = unless_stalled(&project, reading).await?;
        let executions = view.step(step).map(|s| s.executions.as_slice());
        let execution = match query.attempt {
            Some(a) => executions.and_then(|e| e.iter().find(|e| e.id.attempt == a)),
            None => executions.and_then(<[_]>::last),
        };
        if execution.is_some_and(|e| e.result.is_none()) {
            return Ok(HttpResponse::Ok().json(RunResult::new(run, None)));
        }
        FINISHED_GRACE
    } else {
        Duration::from_secs(query.wait.min(MAX_WAIT_SECS))
    };
    let waiting = project.step_result(step, query.attempt, query.environment.as_deref());
    let outcome = match tokio::time::timeout(wait, waiting).await {
        Ok(result) => Some(result?),
        Err(_) => None,
    };
    Ok(HttpResponse::Ok().json(RunResult::new(run, outcome.as_ref())))
}

async fn rerun(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (project, step) = path.into_inner();
    let step: StepId = parse_id(&step)?;
    let body: RerunStep = optional_json(&body)?;
    let project = existing_project(&state, &project).await?;
    let execution = project
        .rerun_step(step, body.environment.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(Rerun {
        execution_id: execution.to_string(),
        attempt: execution.attempt,
    }))
}

async fn cancel(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, execution) = path.into_inner();
    let execution: ExecutionId = parse_id(&execution)?;
    let project = existing_project(&state, &project).await?;
    let view = project.inspect_run(execution.run(), None).await?;
    let exists = view
        .step(execution.step)
        .is_some_and(|s| s.executions.iter().any(|e| e.id == execution));
    if !exists {
        return Err(ApiError::not_found(
            "execution_not_found",
            format!("execution '{execution}' not found"),
        ));
    }
    project.cancel(execution);
    Ok(HttpResponse::Accepted().json(Empty {}))
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, run) = path.into_inner();
    let run: RunId = parse_id(&run)?;
    let project = existing_project(&state, &project).await?;
    project.delete_run(run).await?;
    crate::run_retention::forget_deleted_runs(&project, &state.logs, &state.assets, &[run])
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(Empty {}))
}
