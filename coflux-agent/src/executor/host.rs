//! [`ExecutorHost`]: what the pool needs from the agent runtime to answer executors' requests
//! (child submissions, waits, cancellation, blobs, assets, logs, metrics).

use std::collections::BTreeMap;
use std::path::PathBuf;

use coflux_core::model::SubmitRequest;
use coflux_core::model::{
    Checkpoints, ExecutionId, ExecutionResult, Millis, StreamOp, StreamReply, Value,
};
use coflux_core::protocol::agent::MetricEntry;
use coflux_core::protocol::executor::ResponseError;
use futures::future::LocalBoxFuture;

/// The agent runtime's side of the pool: the orchestrator (through the server) and the blob
/// store. Calls come from the pool's tasks on the agent's thread, so implementations may be
/// `Rc`-based and return `!Send` futures.
pub trait ExecutorHost: 'static {
    /// Submits a child of `parent`; gives the child's id.
    fn submit(
        &self,
        parent: ExecutionId,
        request: SubmitRequest,
    ) -> LocalBoxFuture<'static, Result<ExecutionId, HostError>>;

    /// Final result of the execution's chain (retries, cache hits and the like followed), on
    /// behalf of `from`.
    fn wait(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> LocalBoxFuture<'static, Result<ExecutionResult, HostError>>;

    /// The final result of a child `submit` gave, once the server has pushed it, without
    /// taking it from a later [`ExecutorHost::wait`]; `None` when the host gets none pushed
    /// (the future gives `None` if it cannot be had, or if a wait took it meanwhile: that
    /// wait answers the executor). The default gets none.
    fn pushed_result(
        &self,
        child: ExecutionId,
    ) -> Option<LocalBoxFuture<'static, Option<ExecutionResult>>> {
        let _ = child;
        None
    }

    /// Cancels `execution` (and its descendants), on behalf of `from`.
    fn cancel(
        &self,
        execution: ExecutionId,
        from: ExecutionId,
    ) -> LocalBoxFuture<'static, Result<(), HostError>>;

    /// Changes the checkpoints of `execution`'s step; resolves once they are durable. The
    /// default answers `not_supported`.
    fn checkpoint(
        &self,
        execution: ExecutionId,
        set: Checkpoints,
        reset: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<(), HostError>> {
        let _ = (execution, set, reset);
        Box::pin(async {
            Err(HostError::new(
                "not_supported",
                "checkpoints are not supported here",
            ))
        })
    }

    /// An input operation of an execution running here (a wait returns once the input is
    /// final). The default answers `not_supported`.
    fn input(
        &self,
        execution: ExecutionId,
        op: coflux_core::model::InputOp,
    ) -> LocalBoxFuture<'static, Result<coflux_core::model::InputRecord, HostError>> {
        let _ = (execution, op);
        Box::pin(async {
            Err(HostError::new(
                "not_supported",
                "inputs are not supported here",
            ))
        })
    }

    /// A stream operation of a producer or a consumer running here (reads and demand return
    /// once there is something to answer). The default answers `not_supported`.
    fn stream(&self, op: StreamOp) -> LocalBoxFuture<'static, Result<StreamReply, HostError>> {
        let _ = op;
        Box::pin(async {
            Err(HostError::new(
                "not_supported",
                "streams are not supported here",
            ))
        })
    }

    /// Stores the file's bytes as a content-addressed blob (sha256 hex key); returns (key, size).
    fn put_blob(&self, path: PathBuf) -> LocalBoxFuture<'static, Result<(String, u64), HostError>>;

    /// Writes the blob's bytes to `target` (parent directories created).
    fn get_blob(
        &self,
        key: String,
        target: PathBuf,
    ) -> LocalBoxFuture<'static, Result<(), HostError>>;

    /// Records an asset whose files are stored as blobs already; gives its id, name, count and
    /// size (without entries). The default answers `not_supported`.
    fn put_asset(
        &self,
        asset: NewAsset,
    ) -> LocalBoxFuture<'static, Result<AssetRecord, HostError>> {
        let _ = asset;
        Box::pin(async {
            Err(HostError::new(
                "not_supported",
                "assets are not supported here",
            ))
        })
    }

    /// An asset with its entries (`asset_not_found` if unknown). The default answers
    /// `not_supported`.
    fn get_asset(&self, id: String) -> LocalBoxFuture<'static, Result<AssetRecord, HostError>> {
        let _ = id;
        Box::pin(async {
            Err(HostError::new(
                "not_supported",
                "assets are not supported here",
            ))
        })
    }

    /// `execution` started or stopped waiting for other executions: while it waits it does not
    /// count against the agent's capacity. Fire and forget.
    fn waiting(&self, execution: ExecutionId, change: WaitChange) {
        let _ = (execution, change);
    }

    /// Records a log message of `execution`. Fire and forget.
    fn log(&self, execution: ExecutionId, record: LogRecord);

    /// Records a metric definition or point (throttled already). Fire and forget; the default
    /// drops it.
    fn metric(&self, entry: MetricEntry) {
        let _ = entry;
    }
}

/// A log message of an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning, 5 error.
    pub level: u8,
    /// The message, with `{name}` placeholders for `values`.
    pub template: Option<String>,
    /// Values for the placeholders.
    pub values: BTreeMap<String, Value>,
    /// When the agent received it.
    pub timestamp_ms: Millis,
}

impl LogRecord {
    /// A plain message without values, stamped now.
    pub fn text(level: u8, message: impl Into<String>) -> Self {
        Self {
            level,
            template: Some(message.into()),
            values: BTreeMap::new(),
            timestamp_ms: coflux_core::model::now_millis(),
        }
    }
}

/// Why the host could not do what was asked; the pool passes it on to the executor as an error
/// response (the adapter raises it at the call site).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HostError {
    /// A stable code, e.g. `not_found` or `disconnected`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

impl HostError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A change in whether an execution waits for other executions (see
/// [`ExecutorHost::waiting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitChange {
    /// It started waiting and lent its slot. `spare`: the agent had a free slot besides the
    /// lent one, so the server can place the awaited children here even without being told.
    Started {
        /// Another slot was free.
        spare: bool,
    },
    /// It stopped waiting.
    Stopped,
}

/// An error response for a failed host call.
pub(crate) fn host_error(code: &str, error: HostError) -> ResponseError {
    ResponseError::new(code, error.to_string())
}

/// One file of an asset (the core's model).
pub use coflux_core::model::asset::AssetEntry;
/// An asset to record: an optional name and its entries by path (the core's model).
pub use coflux_core::model::asset::AssetRecord as NewAsset;
/// A recorded asset as the server describes it (`entries` is empty in a creation's answer).
pub use coflux_core::protocol::http::AssetDetail as AssetRecord;
