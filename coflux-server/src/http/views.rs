//! How the API shows values, errors and results: the shapes are defined once in
//! [`coflux_core::protocol::http`]; these helpers keep their short names for the UI's pages.

use coflux_core::model::{ErrorInfo, ExecutionResult};
use coflux_core::protocol::http::values::{RaisedError, result_kind_name};
use serde_json::Value as Json;

pub use coflux_core::protocol::http::values::value_json;

/// An error as JSON: `{"type","message","frames":[{"file","line","name","code"}]}`.
pub fn error_json(error: &ErrorInfo) -> Json {
    serde_json::to_value(RaisedError::from(error)).unwrap_or(Json::Null)
}

/// The final status of a run, as reported by `GET …/result`: `value`, `error`, `cancelled`,
/// `abandoned` or `timeout` (a hand-over kind, which waiting follows, is reported as is).
pub fn status_name(result: &ExecutionResult) -> &'static str {
    result_kind_name(result.kind())
}
