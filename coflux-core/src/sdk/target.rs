//! The [`Target`] trait that `#[task]` and `#[workflow]` implement, and the argument and result
//! conversions the generated code uses.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{encode_json, from_encoded, to_plain};
use super::error::Failure;
use super::refs;
use crate::model::{TargetDefinition, Value};

/// The future of a running target body: the encoded result, or how it failed.
pub type TargetFuture = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send>>;

/// A workflow or task that the orchestrator can run.
pub trait Target: Send + Sync + 'static {
    /// Its module, name, kind, parameters and default options.
    fn definition(&self) -> TargetDefinition;
    /// Runs its body with encoded arguments (one per parameter, in order).
    fn invoke(&self, arguments: Vec<Value>) -> TargetFuture;
}

/// Encodes a value with the references of the handles it holds.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, serde_json::Error> {
    let (data, references) = refs::encoding(|| to_plain(value));
    Ok(Value::Raw {
        data: encode_json(data?),
        references,
    })
}

/// Encodes one argument (used by generated code). A [`Handle`](super::Handle) in it becomes an
/// execution reference (what `wait_for` waits for).
pub fn encode_arg<T: Serialize + ?Sized>(value: &T) -> Result<Value, Failure> {
    encode(value).map_err(|e| {
        Failure::new(
            "coflux.EncodeError",
            format!("could not encode an argument: {e}"),
        )
    })
}

/// Decodes the argument at `index` for parameter `name` (used by generated code).
pub fn decode_arg<T: DeserializeOwned>(
    value: Option<Value>,
    index: usize,
    name: &str,
) -> Result<T, Failure> {
    let (data, references) = match value {
        Some(Value::Raw { data, references }) => (data, references),
        Some(Value::Blob { .. }) => {
            return Err(Failure::new(
                "coflux.DecodeError",
                format!("argument {index} ('{name}') is a blob, which this executor cannot read"),
            ));
        }
        None => (serde_json::Value::Null, Vec::new()),
    };
    refs::decoding(&references, || from_encoded(data)).map_err(|e| {
        Failure::new(
            "coflux.DecodeError",
            format!("argument {index} ('{name}') does not match its type: {e}"),
        )
    })
}

/// Encodes a target body's output (used by generated code).
pub fn encode_output<T: Serialize, E: Into<Failure>>(
    output: Result<T, E>,
) -> Result<Value, Failure> {
    let value = output.map_err(Into::into)?;
    let failed = |message: String| {
        Failure::new(
            "coflux.EncodeError",
            format!("could not encode the result: {message}"),
        )
    };
    refs::take_pending();
    let encoded = encode(&value).map_err(|e| failed(e.to_string()))?;
    if !refs::take_pending().is_empty() {
        return Err(failed(
            "a returned handle's submission is not confirmed yet: await its `id()` first".into(),
        ));
    }
    Ok(encoded)
}
