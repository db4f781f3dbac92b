//! [`Checkpoint`]: durable state of the running step (like Python's `cf.Checkpoint`). Every
//! later attempt of the step (a retry, the resumption after a suspension, the next occurrence
//! of a recurrent target, a re-run) starts from what earlier attempts wrote.
//!
//! ```ignore
//! static CURSOR: Checkpoint<u64> = Checkpoint::new("cursor", 0);
//!
//! #[task(retries = 3)]
//! async fn ingest() -> Result<u64, Failure> {
//!     let start = CURSOR.get()?;
//!     // ... process from `start`, then:
//!     CURSOR.set(&(start + 100))?;
//!     flush().await?; // durable before the side effect that follows
//!     Ok(start + 100)
//! }
//! ```
//!
//! Writes are sent as they happen; the host makes them durable before it reports how the
//! execution ended, and [`flush`] waits for them. Outside an execution (a unit test calling
//! the body in place) reads give the default and writes are kept nowhere.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::from_encoded;
use super::context::Context;
use super::refs;
use super::target::encode_arg;
use crate::model::Value;

/// Why a checkpoint could not be read, written or flushed. [`CheckpointError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The stored value does not decode as the checkpoint's type.
    #[error("checkpoint '{name}' does not match its type: {message}")]
    Decode {
        /// The checkpoint.
        name: String,
        /// Why.
        message: String,
    },
    /// The value could not be encoded.
    #[error("checkpoint '{name}' could not be encoded: {message}")]
    Encode {
        /// The checkpoint.
        name: String,
        /// Why.
        message: String,
    },
    /// The host could not make the writes durable.
    #[error("checkpoint writes could not be flushed: {0}")]
    Flush(String),
}

impl CheckpointError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Decode { .. } => "checkpoint_decode",
            Self::Encode { .. } => "checkpoint_encode",
            Self::Flush(_) => "checkpoint_flush",
        }
    }
}

/// A named piece of step state with a default (see the module docs).
pub struct Checkpoint<T> {
    name: &'static str,
    default: T,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Clone> Checkpoint<T> {
    /// A checkpoint named `name` (unique within the step), reading as `default` until set.
    pub const fn new(name: &'static str, default: T) -> Self {
        Self {
            name,
            default,
            _type: PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current value: the last one set by this or an earlier attempt of the step, or the
    /// default.
    pub fn get(&self) -> Result<T, CheckpointError> {
        let (data, references) = match Context::current().and_then(|c| c.checkpoint(self.name)) {
            None => return Ok(self.default.clone()),
            Some(Value::Raw { data, references }) => (data, references),
            // Large values reach an executor as files and are read as JSON; a blob here was
            // written in another format (e.g. a pickle by Python code).
            Some(Value::Blob { key, .. }) => {
                return Err(CheckpointError::Decode {
                    name: self.name.into(),
                    message: format!("blob {key} is not in a format Rust can read"),
                });
            }
        };
        refs::decoding(&references, || from_encoded(data)).map_err(|e| CheckpointError::Decode {
            name: self.name.into(),
            message: e.to_string(),
        })
    }

    /// Sets the value (for this attempt and every later one).
    pub fn set(&self, value: &T) -> Result<(), CheckpointError> {
        let encoded = encode_arg(value).map_err(|e| CheckpointError::Encode {
            name: self.name.into(),
            message: e.0.message,
        })?;
        if let Some(context) = Context::current() {
            context.set_checkpoint(self.name, Some(encoded));
        }
        Ok(())
    }

    /// Sets the value to `f(current)` and returns it.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T, CheckpointError> {
        let value = f(self.get()?);
        self.set(&value)?;
        Ok(value)
    }

    /// Clears the value: it reads as the default again.
    pub fn reset(&self) {
        if let Some(context) = Context::current() {
            context.set_checkpoint(self.name, None);
        }
    }
}

/// Waits until the running execution's checkpoint writes so far are durable (does nothing
/// outside an execution).
pub async fn flush() -> Result<(), CheckpointError> {
    match Context::current() {
        Some(context) => context
            .link
            .flush(context.execution)
            .await
            .map_err(CheckpointError::Flush),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Checkpoints, ExecutionId, ExecutionResult};
    use crate::sdk::{ExecutorLink, Submission, SubmitRequest};

    struct NoLink;
    impl ExecutorLink for NoLink {
        fn submit(&self, _: ExecutionId, _: SubmitRequest) -> Submission {
            unreachable!()
        }
        fn wait(
            &self,
            _: ExecutionId,
            _: ExecutionId,
        ) -> futures::future::BoxFuture<'static, ExecutionResult> {
            unreachable!()
        }
    }

    static COUNT: Checkpoint<u32> = Checkpoint::new("count", 0);

    #[actix_rt::test]
    async fn a_value_reads_back_and_a_blob_in_another_format_is_a_clear_error() {
        let stored = |value: Value| {
            Context::new("R1:1:1".parse().unwrap(), Arc::new(NoLink))
                .with_checkpoints(Checkpoints::from([("count".to_owned(), value)]))
        };
        let raw = stored(Value::raw(serde_json::json!(5)));
        assert_eq!(raw.scope(async { COUNT.get() }).await, Ok(5));
        let blob = stored(Value::Blob {
            key: "k1".into(),
            size: 9,
            references: Vec::new(),
        });
        let error = blob.scope(async { COUNT.get() }).await.unwrap_err();
        assert_eq!(error.code(), "checkpoint_decode");
        assert!(error.to_string().contains("blob k1"), "{error}");
    }
}
