//! The Coflux 0.12 executor protocol: JSON lines over stdio between a worker (our agent) and
//! the processes that run target code.
//!
//! - `<adapter> discover MODULE...` prints a [`Manifest`] as its last stdout line;
//! - `<adapter> execute` sends `ready`, receives `execute`, then exchanges requests (adapter →
//!   worker, answered with a [`Response`] by id, possibly out of order) and notifications in
//!   both directions until it exits.
//!
//! Lines are parsed leniently: unknown fields are ignored, unknown methods and bad params are
//! reported as a [`LineError`] (which says whether a request id needs an error response), and
//! lines that are not JSON are the caller's to treat as plain output.
//!
//! Our one extension: `ready` may carry `concurrent: true`, meaning the process serves many
//! executions at once (Rust repositories) and understands an `abort` notification.

mod manifest;
mod messages;
mod requests;
mod traceback;
mod value;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use manifest::{Manifest, ManifestTarget, WireCache, WireDefer, WireOptions, WireRetries};
pub use messages::{
    AdapterNotification, AdapterRequest, CheckpointUpdate, DefineMetric, ExecutionErrorParams,
    ExecutionResolved, ExecutionResultParams, LogParams, MetricParams, Ready, RegisterGroup,
    StreamAck, StreamAppend, StreamClose, StreamSubscribe, StreamUnsubscribe, WorkerNotification,
};
pub use requests::{
    Abort, Cancel, DownloadBlob, Execute, ExecutionParams, Handle, Select, SelectResult,
    SelectStatus, SubmitExecution, SubmitResult, Suspend, UploadBlob,
};
pub use traceback::{WireError, format_traceback, parse_traceback};
pub use value::{
    Stored, TRANSFER_THRESHOLD, ValueError, WireData, WireReference, WireValue,
    reference_from_wire, reference_to_wire, value_from_wire, value_to_wire,
};

/// The protocol version this crate speaks (sent and expected in `ready`).
pub const PROTOCOL_VERSION: &str = "0.12";

/// An error answer to a request: `{"code": ..., "message": ...}` (the adapter raises
/// `RuntimeError("<code>: <message>")` at the call site).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ResponseError {
    /// A stable code, e.g. `submit_error` or `not_supported`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

impl ResponseError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A response to request `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Its result, or why it failed.
    pub result: Result<Json, ResponseError>,
}

impl Response {
    /// The response as a line (without the newline).
    pub fn to_line(&self) -> String {
        let object = match &self.result {
            Ok(result) => serde_json::json!({"id": self.id, "result": result}),
            Err(error) => serde_json::json!({"id": self.id, "result": null, "error": error}),
        };
        object.to_string()
    }
}

/// A line from an executor process.
#[derive(Debug, Clone, PartialEq)]
pub enum FromAdapter {
    /// A notification.
    Notification(AdapterNotification),
    /// A request, to be answered with a [`Response`] carrying `id`.
    Request {
        /// The request's id (counting up from 1 in each process).
        id: u64,
        /// What is asked.
        request: AdapterRequest,
    },
}

/// A line from the worker, as an executor reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum FromWorker {
    /// A notification.
    Notification(WorkerNotification),
    /// The answer to one of the executor's requests.
    Response(Response),
}

/// Why a line is not a message this side understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not a JSON object: plain output (e.g. a `print` at import time).
    #[error("not a JSON message")]
    NotJson,
    /// A JSON object that is neither a request, a notification nor a response.
    #[error("not a protocol message")]
    NotMessage,
    /// A method this side does not know.
    #[error("unknown method '{method}'")]
    UnknownMethod {
        /// The request id, if the line is a request (it needs an error response).
        id: Option<u64>,
        /// The method.
        method: String,
    },
    /// A known method with params that do not parse.
    #[error("invalid params for '{method}': {message}")]
    InvalidParams {
        /// The request id, if the line is a request (it needs an error response).
        id: Option<u64>,
        /// The method.
        method: String,
        /// What is wrong.
        message: String,
    },
}

impl LineError {
    /// A stable code, usable in an error [`Response`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson => "not_json",
            Self::NotMessage => "not_a_message",
            Self::UnknownMethod { .. } => "unknown_method",
            Self::InvalidParams { .. } => "parse_error",
        }
    }

    /// The id of the request the line was, if any: it must still be answered.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Self::UnknownMethod { id, .. } | Self::InvalidParams { id, .. } => *id,
            Self::NotJson | Self::NotMessage => None,
        }
    }

    /// The error response for a request line that could not be handled, if it was one.
    pub fn response(&self) -> Option<Response> {
        self.request_id().map(|id| Response {
            id,
            result: Err(ResponseError::new(self.code(), self.to_string())),
        })
    }
}

/// Any protocol line, before its method is interpreted.
#[derive(Deserialize)]
struct RawLine {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Json>,
    #[serde(default)]
    result: Json,
    #[serde(default)]
    error: Option<ResponseError>,
}

fn raw(line: &str) -> Result<RawLine, LineError> {
    let json: Json = serde_json::from_str(line.trim()).map_err(|_| LineError::NotJson)?;
    if !json.is_object() {
        return Err(LineError::NotJson);
    }
    serde_json::from_value(json).map_err(|_| LineError::NotMessage)
}

fn interpret<T>(
    parsed: Option<Result<T, serde_json::Error>>,
    id: Option<u64>,
    method: String,
) -> Result<T, LineError> {
    match parsed {
        None => Err(LineError::UnknownMethod { id, method }),
        Some(Err(e)) => Err(LineError::InvalidParams {
            id,
            method,
            message: e.to_string(),
        }),
        Some(Ok(message)) => Ok(message),
    }
}

/// Parses a line an executor process wrote.
pub fn parse_adapter_line(line: &str) -> Result<FromAdapter, LineError> {
    let raw = raw(line)?;
    let method = raw.method.ok_or(LineError::NotMessage)?;
    let params = raw
        .params
        .unwrap_or_else(|| Json::Object(Default::default()));
    match raw.id {
        Some(id) => interpret(
            AdapterRequest::from_parts(&method, params),
            Some(id),
            method,
        )
        .map(|request| FromAdapter::Request { id, request }),
        None => interpret(
            AdapterNotification::from_parts(&method, params),
            None,
            method,
        )
        .map(FromAdapter::Notification),
    }
}

/// Parses a line the worker wrote (what an executor reads).
pub fn parse_worker_line(line: &str) -> Result<FromWorker, LineError> {
    let raw = raw(line)?;
    match (raw.method, raw.id) {
        (Some(method), _) => {
            let params = raw
                .params
                .unwrap_or_else(|| Json::Object(Default::default()));
            interpret(
                WorkerNotification::from_parts(&method, params),
                None,
                method,
            )
            .map(FromWorker::Notification)
        }
        (None, Some(id)) => Ok(FromWorker::Response(Response {
            id,
            result: match raw.error {
                Some(error) => Err(error),
                None => Ok(raw.result),
            },
        })),
        (None, None) => Err(LineError::NotMessage),
    }
}

fn notification(method: &str, params: Json) -> String {
    serde_json::json!({"method": method, "params": params}).to_string()
}

impl AdapterNotification {
    /// The notification as a line (without the newline).
    pub fn to_line(&self) -> String {
        notification(self.method(), self.params())
    }
}

impl WorkerNotification {
    /// The notification as a line (without the newline).
    pub fn to_line(&self) -> String {
        notification(self.method(), self.params())
    }
}

impl AdapterRequest {
    /// The request as a line with id `id` (without the newline).
    pub fn to_line(&self, id: u64) -> String {
        serde_json::json!({"id": id, "method": self.method(), "params": self.params()}).to_string()
    }
}

#[cfg(test)]
mod tests;
