//! The Rust SDK: workflows and tasks as ordinary async functions.
//!
//! ```ignore
//! use coflux_core::sdk::{task, workflow, Failure};
//!
//! #[task(retries = 2)]
//! async fn greet(name: String) -> Result<String, Failure> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! #[workflow]
//! async fn hello(name: String) -> Result<String, Failure> {
//!     let greeting = greet.call(name).await?;          // a child step, awaited
//!     let handles: Vec<_> = (0..3).map(|i| greet.submit(format!("#{i}"))).collect();
//!     for h in handles { h.result().await?; }            // fan-out, awaited later
//!     Ok(greeting)
//! }
//! ```
//!
//! `#[task]` and `#[workflow]` turn the function into a unit value of the same name that
//! implements [`Target`]; `.call(args)` submits a child step and awaits its result, `.submit(args)`
//! returns a [`Handle`], and `Name::run(args)` calls the body directly. Inside an execution the
//! calls go to the orchestrator through the execution's [`ExecutorLink`]; outside one (e.g. in a
//! unit test) they run the body in place.
//!
//! A [`Handle`] can be passed as an argument (a parameter of type `Handle<T>`; it travels as an
//! execution reference, which `wait_for` waits for) and awaited by the receiving target.
//! [`suspend`] ends the running execution as suspended: a new attempt of its step runs after
//! the delay, re-running the body from the top, and the calls it repeats get the children its
//! predecessor made (so they are not executed twice). [`suspense`] limits the waits on children
//! inside it: one that runs out suspends the execution until that child has finished.
//!
//! [`Asset`]s are files persisted by one execution and restored by another (see the [`asset`]
//! module docs).
//!
//! [`Checkpoint`]s are durable state of the running step that later attempts (retries,
//! resumptions, recurrences, re-runs) start from; [`flush`] waits until writes are durable.
//!
//! [`stream`] makes a task's items a [`Stream`], read by consumers as an async stream;
//! [`stream_with`] paces the producer by its consumers (see the `stream` module docs).
//!
//! [`progress`] and [`Metric`] record the running execution's progress and metrics (see the
//! `metric` module docs for where they go).

pub mod asset;
mod checkpoint;
mod codec;
mod context;
mod error;
pub mod executor;
mod handle;
pub(crate) mod invoke;
mod metric;
mod refs;
mod repository;
mod stream;
mod suspend;
mod target;

pub use crate::model::SubmitRequest;
pub use asset::{
    Asset, AssetBuilder, AssetEntry, AssetError, AssetHost, Restore, with_assets, working_dir,
};
pub use checkpoint::{Checkpoint, CheckpointError, flush};
pub use codec::{decode_json, encode_json};
pub use coflux_macros::{task, workflow};
pub use context::{Context, ExecutorLink, Submission, Suspension, current_execution, in_context};
pub use error::{ExecutionError, Failure};
pub use handle::{Handle, call, decode_value, submit};
pub use metric::{
    Metric, MetricDefinition, MetricEvent, MetricHook, PROGRESS_KEY, Progress, progress,
};
pub use repository::Repository;
pub use stream::{Stream, StreamError, StreamOptions, stream, stream_with};
pub use suspend::{Suspended, suspend, suspend_at, suspense};
pub use target::{Target, TargetFuture, decode_arg, encode_arg, encode_output};
