//! Errors as an agent receives them ([`WireError`]).

use coflux_core::protocol::agent::WireError;

/// A core error for an agent: client errors keep their message; others get a generic one
/// (the details are logged, never sent).
pub(super) fn api_error(e: coflux_core::Error) -> WireError {
    match e {
        coflux_core::Error::Store(_) | coflux_core::Error::Unavailable(_) => {
            tracing::error!(error = %e, "agent request failed");
            wire_error(e.code(), "the server could not complete the request")
        }
        other => wire_error(other.code(), other.to_string()),
    }
}

/// A wire error with `code` and `message`.
pub(super) fn wire_error(code: &str, message: impl Into<String>) -> WireError {
    WireError {
        code: code.into(),
        message: message.into(),
    }
}
