//! The messages of the executor protocol, by direction, with their params.
//!
//! Each enum lists the methods this side understands; [`super::parse_adapter_line`] and
//! [`super::parse_worker_line`] report other methods as unknown rather than failing. Params
//! structs ignore unknown fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::requests::{
    Abort, Cancel, DownloadBlob, Execute, ExecutionParams, Select, SelectResult, SubmitExecution,
    Suspend, UploadBlob,
};
use super::traceback::WireError;
use super::value::WireValue;

/// Defines a message enum whose variants wrap params structs, with the method name of each.
macro_rules! messages {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $method:literal => $variant:ident($params:ty), )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($params), )*
        }

        impl $name {
            /// The method name on the wire.
            pub fn method(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $method, )*
                }
            }

            /// The params as JSON.
            pub fn params(&self) -> Json {
                let params = match self {
                    $( Self::$variant(p) => serde_json::to_value(p), )*
                };
                params.unwrap_or(Json::Null)
            }

            /// Parses the params of `method`; `None` if the method is not one of these.
            pub fn from_parts(method: &str, params: Json) -> Option<Result<Self, serde_json::Error>> {
                match method {
                    $( $method => Some(serde_json::from_value(params).map(Self::$variant)), )*
                    _ => None,
                }
            }
        }
    };
}

messages! {
    /// Notifications from an executor process to the worker (agent).
    pub enum AdapterNotification {
        /// First line of an executor: it is ready for `execute`.
        "ready" => Ready(Ready),
        /// The target returned.
        "execution_result" => ExecutionResult(ExecutionResultParams),
        /// The target raised.
        "execution_error" => ExecutionError(ExecutionErrorParams),
        /// A log message (levels: 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error).
        "log" => Log(LogParams),
        /// A group of children was opened.
        "register_group" => RegisterGroup(RegisterGroup),
        /// A metric is defined.
        "define_metric" => DefineMetric(DefineMetric),
        /// A metric point.
        "metric" => Metric(MetricParams),
        /// Checkpoint state changed.
        "checkpoint_update" => CheckpointUpdate(CheckpointUpdate),
        /// A producer appended a stream item.
        "stream_append" => StreamAppend(StreamAppend),
        /// A producer closed a stream.
        "stream_close" => StreamClose(StreamClose),
        /// A consumer subscribed to a stream.
        "stream_subscribe" => StreamSubscribe(StreamSubscribe),
        /// A consumer acknowledged items.
        "stream_ack" => StreamAck(StreamAck),
        /// A consumer unsubscribed.
        "stream_unsubscribe" => StreamUnsubscribe(StreamUnsubscribe),
    }
}

messages! {
    /// Requests from an executor process to the worker; each expects a [`Response`](super::Response).
    pub enum AdapterRequest {
        /// Submit a child execution → [`SubmitResult`].
        "submit_execution" => SubmitExecution(Box<SubmitExecution>),
        /// Wait for the first of some handles → `null` or [`SelectResult`].
        "select" => Select(Select),
        /// Cancel executions or inputs → `{}`.
        "cancel" => Cancel(Cancel),
        /// Suspend the caller → `{}`.
        "suspend" => Suspend(Suspend),
        /// Persist files as an asset → `{asset_id}`.
        "persist_asset" => PersistAsset(ExecutionParams),
        /// An asset's entries → `{entries}`.
        "get_asset" => GetAsset(ExecutionParams),
        /// Write a blob to a local file → `{}`.
        "download_blob" => DownloadBlob(DownloadBlob),
        /// Store a local file as a blob → `{blob_key}`.
        "upload_blob" => UploadBlob(UploadBlob),
        /// Ask a human for input → `{input_id}`.
        "submit_input" => SubmitInput(ExecutionParams),
        /// Wait until buffered state is durable → `{}`.
        "flush" => Flush(ExecutionParams),
        /// Register a stream → `{id, index, head}`.
        "stream_register" => StreamRegister(ExecutionParams),
        /// Our extension (Rust executors): a stream operation `{op: StreamOp}` →
        /// `StreamReply` (see [`crate::model::StreamOp`]).
        "stream_op" => StreamOp(ExecutionParams),
    }
}

messages! {
    /// Notifications from the worker to an executor process.
    pub enum WorkerNotification {
        /// Run a target.
        "execute" => Execute(Execute),
        /// Our extension: stop running an execution (concurrent executors only; single-use
        /// processes are killed instead).
        "abort" => Abort(Abort),
        /// Producer credit.
        "stream_demand" => StreamDemand(Json),
        /// A stream was closed by the worker.
        "stream_force_close" => StreamForceClose(Json),
        /// Items pushed to a consumer.
        "stream_items" => StreamItems(Json),
        /// A consumer's stream ended.
        "stream_closed" => StreamClosed(Json),
        /// Our extension (executors whose `ready` has `push_results`): the final result of a
        /// child the execution submitted, as a `select` on it would answer (see
        /// [`ExecutionResolved`]), pushed as soon as the worker has it.
        "execution_resolved" => ExecutionResolved(ExecutionResolved),
    }
}

/// `execution_resolved` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResolved {
    /// The child.
    pub execution_id: String,
    /// The execution that submitted it.
    pub parent_id: String,
    /// Its final result, as a `select` on it alone answers (`winner` 0).
    pub result: SelectResult,
}

impl AdapterNotification {
    /// The execution the notification is about (`None` for `ready`).
    pub fn execution_id(&self) -> Option<&str> {
        Some(match self {
            Self::Ready(_) => return None,
            Self::ExecutionResult(p) => &p.execution_id,
            Self::ExecutionError(p) => &p.execution_id,
            Self::Log(p) => &p.execution_id,
            Self::RegisterGroup(p) => &p.execution_id,
            Self::DefineMetric(p) => &p.execution_id,
            Self::Metric(p) => &p.execution_id,
            Self::CheckpointUpdate(p) => &p.execution_id,
            Self::StreamAppend(p) => &p.execution_id,
            Self::StreamClose(p) => &p.execution_id,
            Self::StreamSubscribe(p) => &p.execution_id,
            Self::StreamAck(p) => &p.execution_id,
            Self::StreamUnsubscribe(p) => &p.execution_id,
        })
    }
}

impl AdapterRequest {
    /// The calling execution.
    pub fn execution_id(&self) -> &str {
        match self {
            Self::SubmitExecution(p) => &p.execution_id,
            Self::Select(p) => &p.execution_id,
            Self::Cancel(p) => &p.execution_id,
            Self::Suspend(p) => &p.execution_id,
            Self::DownloadBlob(p) => &p.execution_id,
            Self::UploadBlob(p) => &p.execution_id,
            Self::PersistAsset(p)
            | Self::GetAsset(p)
            | Self::SubmitInput(p)
            | Self::Flush(p)
            | Self::StreamRegister(p)
            | Self::StreamOp(p) => &p.execution_id,
        }
    }
}

/// `ready` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// The protocol version: `0.12`.
    pub version: String,
    /// Our extension: the process serves many executions, concurrently (Rust executors).
    /// Python executors omit it: one execution per process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub concurrent: bool,
    /// Our extension: the process takes `execution_resolved` notifications, so waiting on a
    /// child whose result was pushed needs no `select` round trip (Rust executors).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push_results: bool,
}

/// `execution_result` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResultParams {
    /// The execution.
    pub execution_id: String,
    /// Its value (absent means null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<WireValue>,
}

/// `execution_error` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionErrorParams {
    /// The execution.
    pub execution_id: String,
    /// What it raised.
    pub error: WireError,
}

/// `log` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogParams {
    /// The execution.
    pub execution_id: String,
    /// 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error.
    pub level: u8,
    /// The message, with `{name}` placeholders for `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Values for the placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, WireValue>>,
}

/// `register_group` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterGroup {
    /// The execution.
    pub execution_id: String,
    /// 0, 1, 2... per execution.
    pub group_id: u32,
    /// The group's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `define_metric` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefineMetric {
    /// The execution.
    pub execution_id: String,
    /// The metric's key.
    pub key: String,
    /// Its definition (throttle, group, units, bounds...).
    #[serde(default)]
    pub definition: Json,
}

/// `metric` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricParams {
    /// The execution.
    pub execution_id: String,
    /// The metric's key.
    pub key: String,
    /// The value.
    pub value: f64,
    /// The x-axis position (default: seconds since the execution started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<f64>,
}

/// `checkpoint_update` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointUpdate {
    /// The execution.
    pub execution_id: String,
    /// Names given new values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<BTreeMap<String, WireValue>>,
    /// Names reset to their defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Vec<String>>,
}

/// `stream_append` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAppend {
    /// The producer.
    pub execution_id: String,
    /// The stream's index.
    pub index: u32,
    /// The item's sequence.
    pub sequence: u64,
    /// The item.
    pub value: WireValue,
}

/// `stream_close` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamClose {
    /// The producer.
    pub execution_id: String,
    /// The stream's index.
    pub index: u32,
    /// Why the generator raised, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// `stream_subscribe` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSubscribe {
    /// The consumer.
    pub execution_id: String,
    /// The subscription (per consumer).
    pub subscription_id: u64,
    /// The stream.
    pub stream_id: String,
    /// First sequence wanted.
    #[serde(default)]
    pub from_sequence: u64,
    /// Delivery window.
    #[serde(default)]
    pub prefetch: u64,
    /// `{start, stop, step}` view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Json>,
}

/// `stream_ack` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAck {
    /// The consumer.
    pub execution_id: String,
    /// The subscription.
    pub subscription_id: u64,
    /// Items processed (cumulative).
    pub count: u64,
    /// Highest sequence processed.
    pub sequence: i64,
}

/// `stream_unsubscribe` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamUnsubscribe {
    /// The consumer.
    pub execution_id: String,
    /// The subscription.
    pub subscription_id: u64,
}
