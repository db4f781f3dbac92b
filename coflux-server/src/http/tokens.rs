//! Token management (a project's admins, or the server's admin token):
//!
//! - `POST /api/projects/{project}/tokens {"role":"agent|user|admin","environments"?,
//!   "expires_days"?}` → 201 `{"token", …TokenInfo}` (the token is shown only here);
//! - `GET /api/projects/{project}/tokens` → `{"tokens":[TokenInfo]}` (never the secrets);
//! - `POST /api/projects/{project}/tokens/{id}/revoke` → `TokenInfo`.

use actix_web::{HttpRequest, HttpResponse, web};
use coflux_core::protocol::http::{CreateToken, CreatedToken, TokenItem, TokenList};

use crate::auth::{Access, Role};
use crate::error::ApiError;
use crate::http::{created, existing_project, resource};
use crate::state::AppState;

/// The longest expiry accepted (ten years).
const MAX_EXPIRES_DAYS: u64 = 3650;

/// Registers the token routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project}/tokens", Access::TOKENS)
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/projects/{project}/tokens/{id}/revoke", Access::TOKENS)
            .route(web::post().to(revoke)),
    );
}

async fn create(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_input",
            format!(
                "invalid role '{}' (expected agent, user or admin)",
                body.role
            ),
        )
    })?;
    if let Some(pattern) = &body.environments
        && (pattern.is_empty()
            || pattern.len() > 100
            || !pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.*".contains(c)))
    {
        return Err(ApiError::bad_request(
            "invalid_input",
            "invalid environments pattern (letters, digits, '-', '_', '.' and '*')",
        ));
    }
    let now = coflux_core::model::now_millis();
    let expires_at = match body.expires_days {
        None => None,
        Some(days) if (1..=MAX_EXPIRES_DAYS).contains(&days) => {
            Some(now + i64::try_from(days).unwrap_or(0) * 24 * 60 * 60 * 1000)
        }
        Some(days) => {
            return Err(ApiError::bad_request(
                "invalid_input",
                format!("invalid expiry of {days} days (1 to {MAX_EXPIRES_DAYS})"),
            ));
        }
    };
    let (token, info) = state
        .auth
        .tokens()
        .create(
            project.name(),
            body.environments.as_deref(),
            role,
            expires_at,
            now,
        )
        .map_err(ApiError::internal)?;
    tracing::info!(project = %project.name(), id = %info.id, role = role.as_str(), "token created");
    Ok(created(CreatedToken {
        token,
        info: item(info),
    }))
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path).await?;
    let tokens = state.auth.tokens().list(Some(project.name()));
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: tokens.into_iter().map(item).collect(),
    }))
}

async fn revoke(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    let not_found = || ApiError::not_found("token_not_found", format!("no token {id}"));
    let info = state.auth.tokens().get(&id).ok_or_else(not_found)?;
    if info.project != project {
        return Err(not_found());
    }
    let info = state
        .auth
        .tokens()
        .revoke(&id, coflux_core::model::now_millis())
        .map_err(ApiError::internal)?;
    let by = crate::auth::grant_of(&req)
        .token
        .unwrap_or_else(|| "admin".into());
    tracing::info!(%project, %id, %by, "token revoked");
    Ok(HttpResponse::Ok().json(item(info)))
}

/// A token as the API shows it.
fn item(info: crate::auth::tokens::TokenInfo) -> TokenItem {
    TokenItem {
        id: info.id,
        project: info.project,
        environments: info.environments,
        role: info.role.as_str().into(),
        created_at: info.created_at,
        expires_at: info.expires_at,
        revoked_at: info.revoked_at,
    }
}
