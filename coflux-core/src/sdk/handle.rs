//! [`Handle`]: a submitted child execution whose result can be awaited later, and passed on as
//! an argument (an execution reference, which `wait_for` waits for).

use std::marker::PhantomData;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use super::context::Context;
use super::error::{ExecutionError, Failure};
use super::refs::{self, MARKER, PendingRef, SharedId};
use super::suspend::{suspense_limit, wait_within};
use super::target::Target;
use crate::model::SubmitRequest;
use crate::model::{ExecutionId, ExecutionResult, Reference, TargetRef, Value};

enum Inner {
    /// Submitted to the orchestrator: its id, and its final result when known.
    Remote {
        id: SharedId,
        target: TargetRef,
        result: BoxFuture<'static, Result<ExecutionResult, String>>,
    },
    /// Received in a value: awaited through the current execution's link.
    Received(ExecutionId, TargetRef),
    /// No orchestrator: the body runs in place when awaited.
    Local(BoxFuture<'static, Result<Value, Failure>>),
    /// The arguments could not be encoded.
    Invalid(Failure),
}

/// A child execution of type `T`, submitted with `.submit(...)`. Pass it as an argument to
/// another call (e.g. of a target with `wait_for`) to hand the execution on; the receiving
/// target declares the parameter as `Handle<T>` and awaits it.
pub struct Handle<T> {
    inner: Inner,
    _output: PhantomData<fn() -> T>,
}

fn handle<T>(inner: Inner) -> Handle<T> {
    Handle {
        inner,
        _output: PhantomData,
    }
}

/// Submits `target` with encoded `arguments` from the current execution (used by generated
/// code). Outside an execution, the body runs in place when the handle is awaited.
pub fn submit<T>(target: &dyn Target, arguments: Result<Vec<Value>, Failure>) -> Handle<T> {
    let pending = refs::take_pending();
    let arguments = match arguments {
        Ok(a) => a,
        Err(f) => return handle(Inner::Invalid(f)),
    };
    let Some(context) = Context::current() else {
        return handle(Inner::Local(target.invoke(arguments)));
    };
    let request = request_for(target, arguments);
    let target = request.target.clone();
    let (id, result) = if pending.is_empty() {
        let submission = context.link.submit(context.execution, request);
        (submission.id.shared(), submission.result)
    } else {
        submit_later(&context, request, pending)
    };
    handle(Inner::Remote { id, target, result })
}

/// Submits `request` once the handles among its arguments have their ids (a handle passed on
/// right after its own `submit`), on a task of its own so it happens even if the new handle is
/// never awaited.
fn submit_later(
    context: &Context,
    mut request: SubmitRequest,
    pending: Vec<PendingRef>,
) -> (
    SharedId,
    BoxFuture<'static, Result<ExecutionResult, String>>,
) {
    let (ids, id) = oneshot::channel();
    let (results, result) = oneshot::channel();
    let (link, parent) = (context.link.clone(), context.execution);
    actix_rt::spawn(async move {
        for PendingRef { index, id } in pending {
            match id.await {
                Ok(real) => replace_placeholder(&mut request.arguments, index, real),
                Err(e) => {
                    let error = format!("a handle in the arguments failed: {e}");
                    let _ = ids.send(futures::future::ready(Err(error)).boxed());
                    return;
                }
            }
        }
        let submission = link.submit(parent, request);
        let _ = ids.send(submission.id);
        let _ = results.send(submission.result);
    });
    let gone = || "the submission was dropped".to_string();
    let id = async move { id.await.map_err(|_| gone())?.await }
        .boxed()
        .shared();
    let awaited = id.clone();
    let result = async move {
        awaited.await?;
        result.await.map_err(|_| gone())?.await
    };
    (id, result.boxed())
}

fn replace_placeholder(arguments: &mut [Value], index: u32, real: ExecutionId) {
    let placeholder = refs::placeholder(index);
    for argument in arguments {
        let (Value::Raw { references, .. } | Value::Blob { references, .. }) = argument;
        for reference in references {
            if let Reference::Execution { execution, .. } = reference
                && *execution == placeholder
            {
                *execution = real;
            }
        }
    }
}

impl<T: DeserializeOwned> Handle<T> {
    /// The child's execution id (`None` when running outside an orchestrator or if the
    /// submission failed).
    pub async fn id(&self) -> Option<ExecutionId> {
        match &self.inner {
            Inner::Remote { id, .. } => id.clone().await.ok(),
            Inner::Received(id, _) => Some(*id),
            _ => None,
        }
    }

    /// Waits for the child's final result (following retries) and decodes its value.
    pub async fn result(self) -> Result<T, ExecutionError> {
        let limit = suspense_limit();
        let value = match self.inner {
            Inner::Remote { id, result, .. } => match (limit, Context::current()) {
                (Some(limit), Some(context)) => {
                    let child = id.await.map_err(ExecutionError::Submit)?;
                    final_value(wait_within(&context, child, limit).await?)?
                }
                _ => final_value(result.await.map_err(ExecutionError::Submit)?)?,
            },
            Inner::Received(execution, _) => {
                let context = Context::current().ok_or_else(|| {
                    ExecutionError::Submit(
                        "a received handle is awaited outside an execution".into(),
                    )
                })?;
                match limit {
                    Some(limit) => final_value(wait_within(&context, execution, limit).await?)?,
                    None => final_value(context.link.wait(execution, context.execution).await)?,
                }
            }
            Inner::Local(body) => body.await.map_err(|f| ExecutionError::Failed(f.0))?,
            Inner::Invalid(f) => return Err(ExecutionError::Failed(f.0)),
        };
        decode_value(value)
    }
}

fn final_value(result: ExecutionResult) -> Result<Value, ExecutionError> {
    match result {
        ExecutionResult::Value { value } => Ok(value),
        other => Err(ExecutionError::from_result(&other)
            .unwrap_or_else(|| ExecutionError::Submit("no result".into()))),
    }
}

impl<T> Serialize for Handle<T> {
    /// An execution reference (only within an argument or result being encoded).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let index = match &self.inner {
            Inner::Remote { id, target, .. } => refs::push_execution(id, target),
            Inner::Received(id, target) => Ok(refs::push_known(*id, target)),
            _ => Err("only a handle submitted from an execution can be passed on".into()),
        }
        .map_err(S::Error::custom)?
        .ok_or_else(|| S::Error::custom("a handle can only be encoded as an argument or result"))?;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(MARKER, &index)?;
        map.end()
    }
}

impl<'de, T> Deserialize<'de> for Handle<T> {
    /// From `{"type":"ref","index":i}` where reference `i` is an execution.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Ref {
            #[serde(rename = "type")]
            kind: String,
            index: usize,
        }
        let r = Ref::deserialize(deserializer)?;
        if r.kind != "ref" {
            return Err(serde::de::Error::custom("expected an execution reference"));
        }
        let (execution, target) = refs::execution_at(r.index).map_err(serde::de::Error::custom)?;
        Ok(handle(Inner::Received(execution, target)))
    }
}

/// Decodes an inline value into `T` (the Coflux data encoding is undone first; execution
/// references become [`Handle`]s).
pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ExecutionError> {
    match value {
        Value::Raw { data, references } => {
            refs::decoding(&references, || super::codec::from_encoded(data))
                .map_err(|e| ExecutionError::Decode(e.to_string()))
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sdk::encode_arg;

    #[test]
    fn handles_in_values_round_trip_as_execution_references() {
        let execution: ExecutionId = "R1:2:1".parse().unwrap();
        let reference = Reference::Execution {
            execution,
            module: "app".into(),
            target: "work".into(),
        };
        let received = Value::Raw {
            data: json!([{"type": "ref", "index": 0}, 7]),
            references: vec![reference.clone()],
        };
        let (handle, n): (Handle<u64>, u64) = decode_value(received.clone()).unwrap();
        assert_eq!(n, 7);
        assert!(matches!(handle.inner, Inner::Received(id, _) if id == execution));
        assert_eq!(encode_arg(&(handle, n)).unwrap(), received);
        // Outside an argument being encoded, a handle does not serialize.
        let (handle, _): (Handle<u64>, u64) = decode_value(received).unwrap();
        assert!(serde_json::to_value(&handle).is_err());
    }
}
