//! The web UI: server-rendered HTML pages (maud) over the same core API the JSON handlers use,
//! one small ES module and one stylesheet embedded in the binary.
//!
//! Routes (outside `/api`; UI state lives in the path and query):
//!
//! - `GET /` — projects ([`projects`]);
//! - `GET /projects/{p}?environment=E&status=&workflow=&env=&before=` — environments, targets,
//!   agents and runs of a project;
//! - `GET /projects/{p}/workflows/{module}/{target}?environment=E` — a workflow ([`workflow`]);
//! - `GET /projects/{p}/runs/{r}?environment=E&step=S&attempt=N&tab=graph|timeline|logs|assets|metrics`
//!   — a run ([`run`]; also `view=graph|list`, `target=` and `from=` for the step list, `level=` and
//!   `only=step` for the logs), live through `GET /projects/{p}/runs/{r}/events` (server-sent
//!   events);
//! - `GET /static/{name}` — the embedded assets ([`assets`]);
//! - anything else outside `/api` — the HTML 404 page.
//!
//! Actions are done by `ui.js` calling the JSON API. Every response carries a strict
//! Content-Security-Policy: no inline scripts or styles anywhere.

pub mod assets;
pub mod layout;
mod page;
mod project_live;
mod projects;
mod run;
mod runs;
mod workflow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, web};
use maud::Markup;

use crate::auth::{Access, require_rendered};
use crate::error::ApiError;
use actix_web::middleware::from_fn;

pub use run::graph::{Slot, group_siblings};
pub use run::timeline::{Bar, Scale};

/// The Content-Security-Policy of every UI response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'self'";

/// Registers the UI routes (none under `/api` or `/agent`), each with its scope: pages read
/// a project (the token may come in the `coflux_token` cookie); without a valid token they
/// answer a sign-in page.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let scoped = |access| from_fn(require_rendered(access, refused));
    cfg.service(
        web::resource("/")
            .route(web::get().to(projects::index))
            .wrap(scoped(Access::PROJECTS)),
    )
    .service(
        web::resource("/static/{name}")
            .route(web::get().to(assets::serve))
            .wrap(scoped(Access::PUBLIC)),
    )
    .service(
        web::resource("/projects/{project}")
            .route(web::get().to(projects::project))
            .wrap(scoped(Access::PROJECT)),
    )
    .service(
        web::resource("/projects/{project}/events")
            .route(web::get().to(project_live::events))
            .wrap(scoped(Access::PROJECT)),
    )
    .service(
        web::resource("/projects/{project}/workflows/{module}/{target}")
            .route(web::get().to(workflow::page))
            .wrap(scoped(Access::PROJECT)),
    )
    .service(
        web::resource("/projects/{project}/runs/{run}")
            .route(web::get().to(run::page))
            .wrap(scoped(Access::PROJECT)),
    )
    .service(
        web::resource("/projects/{project}/runs/{run}/events")
            .route(web::get().to(run::live::events))
            .wrap(scoped(Access::PROJECT)),
    )
    // Anything else outside /api (which answers its own JSON 404s): the HTML 404 page.
    .default_service(web::to(not_found));
}

/// A refused page: a sign-in form without a valid token, the error page otherwise.
fn refused(error: &ApiError) -> HttpResponse {
    if error.status() == StatusCode::UNAUTHORIZED {
        html(error.status(), page::sign_in())
    } else {
        html(
            error.status(),
            page::error_page(error.status(), error.message()),
        )
    }
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    UiError::not_found(format!("nothing at {}", req.path())).error_response()
}

/// Adds the security headers every UI response carries.
pub(crate) fn secure(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Markup as sent: terminal escapes in user data (names, paths, values that no renderer
/// stripped) are removed, whatever the page.
pub(crate) fn sendable(markup: Markup) -> String {
    let text = markup.into_string();
    if text.contains('\u{1b}') {
        page::strip_ansi(&text)
    } else {
        text
    }
}

/// An HTML page with the UI's headers.
pub(crate) fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    let mut response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(sendable(markup));
    secure(&mut response);
    response
}

/// A page that could not be shown: rendered as an HTML error page.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    /// 404 with a message.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status(),
            message: e.message().to_string(),
        }
    }
}

impl From<coflux_core::Error> for UiError {
    fn from(e: coflux_core::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::logs::LogError> for UiError {
    fn from(e: crate::logs::LogError) -> Self {
        let status = e.status_code();
        Self {
            status,
            message: if e.is_client_error() {
                e.to_string()
            } else {
                "the log store could not complete the request".into()
            },
        }
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        html(self.status, page::error_page(self.status, &self.message))
    }
}

/// What a page handler returns.
pub(crate) type Page = Result<HttpResponse, UiError>;

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, skipping empty values (`?a=1&b=2`, or `""`).
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", enc(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_urls_are_encoded() {
        assert_eq!(enc("a b/<x>"), "a%20b%2F%3Cx%3E");
        assert_eq!(
            query(&[("a", Some("1")), ("b", None), ("c", Some("x&y"))]),
            "?a=1&c=x%26y"
        );
        assert_eq!(query(&[("a", Some(""))]), "");
    }
}
