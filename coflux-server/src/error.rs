//! API errors as JSON with a stable code: `{"error":{"code":"…","message":"…"}}`.
//!
//! Every failure of the HTTP API goes through [`ApiError`], including the extractor errors of
//! actix-web (malformed JSON bodies, path and query parameters), so clients always receive the
//! same shape. Internal failures are logged and answered with a generic message: no paths, SQL
//! or panic text reach the client.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{
    HttpRequest, HttpResponse, ResponseError, error::JsonPayloadError, error::PathError,
    error::QueryPayloadError,
};
use coflux_core::protocol::http::ErrorBody;

/// An HTTP API error: a status, a stable machine-readable code and a human message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 Not Found.
    pub fn not_found(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 500 Internal Server Error with a generic message; `detail` is only logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error while handling a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        )
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody::new(&*self.code, &self.message))
    }
}

impl From<coflux_core::Error> for ApiError {
    fn from(err: coflux_core::Error) -> Self {
        let code = err.code();
        let status = match code {
            "invalid_input" | "invalid_request" | "environment_invalid" | "not_a_workflow" => {
                StatusCode::BAD_REQUEST
            }
            "environment_exists"
            | "environment_archived"
            | "environment_has_children"
            | "environment_cycle"
            | "run_active"
            | "run_referenced" => StatusCode::CONFLICT,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "not_supported" => StatusCode::NOT_IMPLEMENTED,
            "store_stopped" => {
                tracing::warn!(error = %err, "store unavailable");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the project is unavailable; try again",
                );
            }
            "project_unavailable" => {
                // The cause (a path, an SQLite message) goes to the log only.
                tracing::error!(error = ?err, "a project's database could not be opened");
                StatusCode::SERVICE_UNAVAILABLE
            }
            "project_owned_elsewhere" => StatusCode::SERVICE_UNAVAILABLE,
            "store_in_use" => {
                tracing::warn!(error = %err, "a project database is held by another process");
                StatusCode::SERVICE_UNAVAILABLE
            }
            c if c.ends_with("_not_found") => StatusCode::NOT_FOUND,
            _ => return Self::internal(err),
        };
        Self::new(status, code, err.to_string())
    }
}

/// Turns a JSON body error into a JSON API error.
pub fn json_error_handler(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        ),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}"))
        }
        JsonPayloadError::Serialize(e) => ApiError::internal(e),
        other => ApiError::bad_request("invalid_json", format!("invalid JSON body: {other}")),
    };
    error.into()
}

/// Turns a path error into a JSON API error.
pub fn path_error_handler(err: PathError, _: &HttpRequest) -> actix_web::Error {
    let PathError::Deserialize(e) = &err else {
        return ApiError::bad_request("invalid_path", "invalid path parameter").into();
    };
    ApiError::bad_request("invalid_path", format!("invalid path parameter: {e}")).into()
}

/// Turns a query string error into a JSON API error.
pub fn query_error_handler(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let QueryPayloadError::Deserialize(e) = &err else {
        return ApiError::bad_request("invalid_query", "invalid query string").into();
    };
    ApiError::bad_request("invalid_query", format!("invalid query string: {e}")).into()
}
