//! The [`Target`] trait that `#[task]` and `#[workflow]` implement, and the argument and result
//! conversions the generated code uses.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{decode_json, encode_json};
use super::error::Failure;
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

/// Encodes one argument (used by generated code).
pub fn encode_arg<T: Serialize + ?Sized>(value: &T) -> Result<Value, Failure> {
    serde_json::to_value(value)
        .map(|data| Value::raw(encode_json(data)))
        .map_err(|e| {
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
    let data = match value {
        Some(Value::Raw { data, .. }) => decode_json(data),
        Some(Value::Blob { .. }) => {
            return Err(Failure::new(
                "coflux.DecodeError",
                format!("argument {index} ('{name}') is a blob, which this executor cannot read"),
            ));
        }
        None => serde_json::Value::Null,
    };
    serde_json::from_value(data).map_err(|e| {
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
    match output {
        Ok(value) => serde_json::to_value(&value)
            .map(|data| Value::raw(encode_json(data)))
            .map_err(|e| {
                Failure::new(
                    "coflux.EncodeError",
                    format!("could not encode the result: {e}"),
                )
            }),
        Err(e) => Err(e.into()),
    }
}
