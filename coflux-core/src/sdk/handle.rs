//! [`Handle`]: a submitted child execution whose result can be awaited later.

use std::marker::PhantomData;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::de::DeserializeOwned;

use super::codec::decode_json;
use super::context::{Context, SubmitRequest};
use super::error::{ExecutionError, Failure};
use super::target::Target;
use crate::model::{ExecutionId, ExecutionResult, Value};

type SharedId = Shared<BoxFuture<'static, Result<ExecutionId, String>>>;

enum Inner {
    /// Submitted to the orchestrator: its id, and its final result when known.
    Remote {
        id: SharedId,
        result: BoxFuture<'static, Result<ExecutionResult, String>>,
    },
    /// No orchestrator: the body runs in place when awaited.
    Local(BoxFuture<'static, Result<Value, Failure>>),
    /// The arguments could not be encoded.
    Invalid(Failure),
}

/// A child execution of type `T`, submitted with `.submit(...)`.
pub struct Handle<T> {
    inner: Inner,
    _output: PhantomData<fn() -> T>,
}

/// Submits `target` with encoded `arguments` from the current execution (used by generated
/// code). Outside an execution, the body runs in place when the handle is awaited.
pub fn submit<T>(target: &dyn Target, arguments: Result<Vec<Value>, Failure>) -> Handle<T> {
    let arguments = match arguments {
        Ok(a) => a,
        Err(f) => {
            return Handle {
                inner: Inner::Invalid(f),
                _output: PhantomData,
            };
        }
    };
    let inner = match Context::current() {
        Some(context) => {
            let request = request_for(target, arguments);
            let submission = context.link.submit(context.execution, request);
            Inner::Remote {
                id: submission.id.shared(),
                result: submission.result,
            }
        }
        None => Inner::Local(target.invoke(arguments)),
    };
    Handle {
        inner,
        _output: PhantomData,
    }
}

impl<T: DeserializeOwned> Handle<T> {
    /// The child's execution id (`None` when running outside an orchestrator or if the
    /// submission failed).
    pub async fn id(&self) -> Option<ExecutionId> {
        match &self.inner {
            Inner::Remote { id, .. } => id.clone().await.ok(),
            _ => None,
        }
    }

    /// Waits for the child's final result (following retries) and decodes its value.
    pub async fn result(self) -> Result<T, ExecutionError> {
        let value = match self.inner {
            Inner::Remote { result, .. } => match result.await.map_err(ExecutionError::Submit)? {
                ExecutionResult::Value { value } => value,
                other => {
                    return Err(ExecutionError::from_result(&other)
                        .unwrap_or_else(|| ExecutionError::Submit("no result".into())));
                }
            },
            Inner::Local(body) => body.await.map_err(|f| ExecutionError::Failed(f.0))?,
            Inner::Invalid(f) => return Err(ExecutionError::Failed(f.0)),
        };
        decode_value(value)
    }
}

/// Decodes an inline value into `T` (the Coflux data encoding is undone first).
pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ExecutionError> {
    match value {
        Value::Raw { data, .. } => serde_json::from_value(decode_json(data))
            .map_err(|e| ExecutionError::Decode(e.to_string())),
        Value::Blob { key, .. } => Err(ExecutionError::Decode(format!(
            "blob value {key} cannot be read here"
        ))),
    }
}

/// Calls `target` with encoded `arguments` from the current execution and waits for its
/// result, in one round trip (used by generated code for `.call(...)`). Outside an execution,
/// the body runs in place.
pub async fn call<T: DeserializeOwned>(
    target: &dyn Target,
    arguments: Result<Vec<Value>, Failure>,
) -> Result<T, ExecutionError> {
    submit::<T>(target, arguments).result().await
}

/// A call of `target` with its default options.
fn request_for(target: &dyn Target, arguments: Vec<Value>) -> SubmitRequest {
    let definition = target.definition();
    SubmitRequest {
        target: definition.target,
        kind: definition.kind,
        arguments,
        options: definition.options,
    }
}
