//! `log` notifications → [`LogRecord`]s for the host.

use std::collections::BTreeMap;
use std::rc::Rc;

use coflux_core::model::{Value, now_millis};
use coflux_core::protocol::executor::{LogParams, WireData, WireValue};

use super::context::ExecutionContext;
use super::host::{ExecutorHost, LogRecord};
use super::values;

/// Converts a log message and hands it to the host. Messages whose values are all inline go
/// at once; values in files are stored as blobs first (the record keeps the time it arrived).
pub(crate) fn forward(
    host: &Rc<dyn ExecutorHost>,
    context: &Rc<ExecutionContext>,
    params: LogParams,
) {
    let timestamp_ms = now_millis();
    let values = params.values.unwrap_or_default();
    let record = |values| LogRecord {
        level: params.level,
        template: params.template.clone(),
        values,
        timestamp_ms,
    };
    if let Some(inline) = inline_values(&values) {
        host.log(context.execution, record(inline));
        return;
    }
    let host = Rc::clone(host);
    let context = Rc::clone(context);
    let record = record(BTreeMap::new());
    actix_rt::spawn(async move {
        let mut converted = BTreeMap::new();
        for (name, value) in values {
            match values::from_wire(&host, value, &context.scratch).await {
                Ok(value) => {
                    converted.insert(name, value);
                }
                Err(error) => {
                    tracing::warn!(execution = %context.execution, %name, %error, "could not store a log value; dropped")
                }
            }
        }
        host.log(
            context.execution,
            LogRecord {
                values: converted,
                ..record
            },
        );
    });
}

/// The values, if they need no blob storage (inline JSON without fragments).
fn inline_values(values: &BTreeMap<String, WireValue>) -> Option<BTreeMap<String, Value>> {
    values
        .iter()
        .map(|(name, value)| match &value.data {
            WireData::Inline {
                format,
                value: data,
            } if format == "json" && value.local_files().is_empty() => {
                let references = value
                    .references
                    .iter()
                    .cloned()
                    .map(coflux_core::protocol::executor::reference_from_wire::<()>)
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                Some((
                    name.clone(),
                    Value::Raw {
                        data: data.clone(),
                        references,
                    },
                ))
            }
            _ => None,
        })
        .collect()
}
