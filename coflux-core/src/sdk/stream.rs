//! Streams in the Rust SDK: [`stream`] makes a running task's items a stream and gives its
//! [`Stream`] handle (returned, or passed as an argument); [`Stream::items`] reads it as an
//! async [`futures::Stream`], from the start, whoever produced it (Python generator tasks too).
//!
//! ```ignore
//! #[task]
//! async fn squares(n: u64) -> Result<Stream<u64>, Failure> {
//!     Ok(stream(futures::stream::iter((0..n).map(|i| i * i))).await?)
//! }
//!
//! #[workflow]
//! async fn total(n: u64) -> Result<u64, Failure> {
//!     let squares = squares.call(n).await?;
//!     let items: Vec<u64> = squares.items().try_collect().await?;
//!     Ok(items.into_iter().sum())
//! }
//! ```
//!
//! A Rust producer returns the handle at once and appends its items as they come, after its
//! result is reported too: consumers read them while it runs, and a read waits for the next item
//! or the end. Consumers read in batches and acknowledge what they have taken. A producer made
//! with a buffer ([`stream_with`], [`StreamOptions::buffer`]) takes its next item from its
//! source only while it is at most that many items ahead of its slowest consumer's
//! acknowledgements (as Python producers with a `buffer` are paced); [`stream`] is unbounded.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value as Json, json};

use super::codec::STREAM_MARKER as MARKER;
use super::context::Context;
use crate::model::{ErrorInfo, StreamClosure, StreamId, StreamOp, StreamReply, Stride, Value};

/// How many items a consumer asks for at a time.
const BATCH: u32 = 16;

/// Why a stream could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Streams are made and read by running executions.
    #[error("streams are made and read inside an execution")]
    NotInExecution,
    /// The orchestrator refused or could not do it.
    #[error("stream operation failed: {0}")]
    Failed(String),
    /// The producer raised (its error).
    #[error("{}: {}", .0.error_type, .0.message)]
    Errored(ErrorInfo),
    /// The stream ended another way (`cancelled`, `abandoned`, `crashed`, `timeout`,
    /// `recurred`).
    #[error("stream ended: {0}")]
    Ended(&'static str),
    /// An item could not be encoded or decoded.
    #[error("stream item: {0}")]
    Item(String),
}

impl StreamError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotInExecution => "not_in_execution",
            Self::Failed(_) => "stream_failed",
            Self::Errored(_) => "stream_errored",
            Self::Ended(_) => "stream_ended",
            Self::Item(_) => "stream_item",
        }
    }
}

/// A handle to a stream of `T` items (serde values).
pub struct Stream<T> {
    id: StreamId,
    stride: Stride,
    item: PhantomData<fn() -> T>,
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            stride: self.stride,
            item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({}, {:?})", self.id, self.stride)
    }
}

impl<T> Stream<T> {
    /// The stream's id (`RUN:STEP_INDEX`).
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// A view of the sequences `start, start + step, ...` below `stop` (composed with this
    /// view's).
    pub fn stride(&self, start: u64, stop: Option<u64>, step: u64) -> Self {
        let outer = self.stride;
        let step = step.max(1);
        let mapped_stop = stop.map(|e| outer.start + e * outer.step);
        let stop = match (outer.stop, mapped_stop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            id: self.id,
            stride: Stride {
                start: outer.start + start * outer.step,
                stop,
                step: outer.step * step,
            },
            item: PhantomData,
        }
    }

    /// Items `start..stop`.
    pub fn slice(&self, start: u64, stop: Option<u64>) -> Self {
        self.stride(start, stop, 1)
    }

    /// Every `n`-th item from the `i`-th (round-robin partitions for parallel consumers).
    pub fn partition(&self, n: u64, i: u64) -> Self {
        self.stride(i, None, n)
    }
}

impl<T: DeserializeOwned + 'static> Stream<T> {
    /// The items, read from the start of this view in the running execution; ends after the
    /// last item, or with the reason the stream ended otherwise.
    pub fn items(&self) -> impl futures::Stream<Item = Result<T, StreamError>> + Send + 'static {
        struct Reader {
            context: Option<Context>,
            subscription: u32,
            stream: StreamId,
            stride: Stride,
            from: u64,
            buffered: VecDeque<(u64, Value)>,
            taken: u64,
            last: i64,
            ending: Option<Result<(), StreamError>>,
        }
        let context = Context::current();
        let reader = Reader {
            subscription: context.as_ref().map_or(0, Context::next_subscription),
            context,
            stream: self.id,
            stride: self.stride,
            from: self.stride.start,
            buffered: VecDeque::new(),
            taken: 0,
            last: -1,
            ending: None,
        };
        futures::stream::unfold(reader, |mut r| async move {
            loop {
                if let Some((sequence, value)) = r.buffered.pop_front() {
                    r.taken += 1;
                    r.last = i64::try_from(sequence).unwrap_or(i64::MAX);
                    return Some((decode_item(value), r));
                }
                match r.ending.take() {
                    Some(Ok(())) => return None,
                    Some(Err(e)) => {
                        r.ending = Some(Ok(()));
                        return Some((Err(e), r));
                    }
                    None => {}
                }
                let Some(context) = r.context.clone() else {
                    r.ending = Some(Ok(()));
                    return Some((Err(StreamError::NotInExecution), r));
                };
                if r.taken > 0 {
                    // What was taken so far counts as processed: it paces the producer.
                    let ack = StreamOp::Ack {
                        consumer: context.execution,
                        subscription: r.subscription,
                        stream: r.stream,
                        count: r.taken,
                        sequence: r.last,
                    };
                    let _ = context.link.stream(ack).await;
                }
                let read = StreamOp::Read {
                    consumer: context.execution,
                    subscription: r.subscription,
                    stream: r.stream,
                    from: r.from,
                    stride: r.stride,
                    max: BATCH,
                    wait: true,
                };
                match context.link.stream(read).await {
                    Ok(StreamReply::Items {
                        items,
                        next,
                        closed,
                    }) => {
                        r.from = next;
                        r.buffered.extend(items);
                        r.ending = closed.map(|closure| match closure {
                            StreamClosure::Complete => Ok(()),
                            StreamClosure::Errored { error } => Err(StreamError::Errored(error)),
                            other => Err(StreamError::Ended(other.reason())),
                        });
                    }
                    Ok(other) => {
                        r.ending = Some(Err(StreamError::Failed(format!(
                            "unexpected answer {other:?}"
                        ))));
                    }
                    Err(e) => r.ending = Some(Err(StreamError::Failed(e))),
                }
            }
        })
        .boxed()
    }
}

fn decode_item<T: DeserializeOwned>(value: Value) -> Result<T, StreamError> {
    match value {
        Value::Raw { data, references } => {
            super::refs::decoding(&references, || super::codec::from_encoded(data))
                .map_err(|e| StreamError::Item(e.to_string()))
        }
        Value::Blob { .. } => Err(StreamError::Item(
            "a blob item, which this executor cannot read".into(),
        )),
    }
}

/// How a stream made with [`stream_with`] is produced.
///
/// ```
/// use std::time::Duration;
/// use coflux_core::sdk::StreamOptions;
///
/// // At most 8 items ahead of the slowest consumer; ended as `timeout` after 30 s without one.
/// let options = StreamOptions::buffer(8).with_idle_timeout(Duration::from_secs(30));
/// assert_eq!(options.buffer, Some(8));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// How many items the producer may be ahead of its slowest consumer (`None`: unbounded).
    pub buffer: Option<u32>,
    /// The stream ends as `timeout` when its producer goes this long without appending an
    /// item (waiting for its consumers' demand included, as in Coflux); `None`: no limit.
    pub idle_timeout: Option<Duration>,
}

impl StreamOptions {
    /// A producer paced by its consumers: at most `items` ahead of the slowest one.
    pub fn buffer(items: u32) -> Self {
        Self {
            buffer: Some(items),
            idle_timeout: None,
        }
    }

    /// These options with an idle timeout (see [`StreamOptions::idle_timeout`]).
    pub fn with_idle_timeout(self, idle: Duration) -> Self {
        Self {
            idle_timeout: Some(idle),
            ..self
        }
    }
}

/// Makes `items` a stream of the running execution: registers it and gives its handle at once
/// (to return, or to pass to other targets), while a task of the execution appends the items
/// as they come and closes the stream after the last one. Consumers read the items as they are
/// appended. The execution's result is reported when its body returns; the stream goes on
/// after it. If the body fails instead (or is suspended), the stream ends with it. The producer
/// is not paced (see [`stream_with`]).
pub async fn stream<T, S>(items: S) -> Result<Stream<T>, StreamError>
where
    T: Serialize + 'static,
    S: futures::Stream<Item = T> + 'static,
{
    stream_with(items, StreamOptions::default()).await
}

/// [`stream`] with options: with a buffer of N, the next item is taken from `items` only while
/// the producer is less than N items ahead of what its slowest consumer has acknowledged (with
/// no consumer yet: the first N items), so a slow consumer holds the producer back.
pub async fn stream_with<T, S>(items: S, options: StreamOptions) -> Result<Stream<T>, StreamError>
where
    T: Serialize + 'static,
    S: futures::Stream<Item = T> + 'static,
{
    let context = Context::current().ok_or(StreamError::NotInExecution)?;
    let execution = context.execution;
    let register = StreamOp::Register {
        execution,
        position: context.next_stream_position(),
        buffer: options.buffer,
        timeout_ms: options
            .idle_timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    };
    let (index, head) = match context.link.stream(register).await {
        Ok(StreamReply::Registered { index, head }) => (index, head),
        Ok(other) => return Err(StreamError::Failed(format!("unexpected answer {other:?}"))),
        Err(e) => return Err(StreamError::Failed(e)),
    };
    let from = u64::try_from(head + 1).unwrap_or(0);
    let pacing = Pacing {
        paced: options.buffer.is_some(),
        idle: options.idle_timeout,
    };
    let producer = super::in_context(produce(context.clone(), index, from, pacing, items));
    context.add_producer(actix_rt::spawn(producer));
    Ok(Stream {
        id: StreamId {
            step: execution.step,
            index,
        },
        stride: Stride::default(),
        item: PhantomData,
    })
}

/// How a producer is held back: by its consumers' demand (`paced`), and for how long it may
/// go without an item.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    paced: bool,
    idle: Option<Duration>,
}

/// `f`, unless `deadline` passes first (`None`).
async fn before<F: std::future::Future>(
    deadline: Option<tokio::time::Instant>,
    f: F,
) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, f).await.ok(),
        None => Some(f.await),
    }
}

/// Appends `items` to stream `index` from `sequence` on, then closes it: complete after the
/// last item, errored if one cannot be encoded or an append is refused (e.g. the stream was
/// ended by the orchestrator; the close then tells the host the producer has stopped), timed
/// out when the next item takes longer than the idle timeout. A paced producer takes an item
/// from `items` only once the orchestrator's demand covers it.
async fn produce<T: Serialize>(
    context: Context,
    index: u32,
    mut sequence: u64,
    pacing: Pacing,
    items: impl futures::Stream<Item = T>,
) {
    let execution = context.execution;
    let mut items = std::pin::pin!(items);
    let mut closure = StreamClosure::Complete;
    // Sequences below `granted` may be produced (`None`: no limit).
    let mut granted = pacing.paced.then_some(sequence);
    let next_deadline = || pacing.idle.map(|idle| tokio::time::Instant::now() + idle);
    let mut deadline = next_deadline();
    loop {
        if let Some(limit) = granted.filter(|limit| sequence >= *limit) {
            let demand = StreamOp::Demand {
                execution,
                index,
                granted: limit,
            };
            let Some(answer) = before(deadline, context.link.stream(demand)).await else {
                closure = StreamClosure::Timeout;
                break;
            };
            match answer {
                Ok(StreamReply::Demand { target }) => {
                    granted = target;
                    continue;
                }
                Ok(other) => {
                    let message = format!("unexpected answer {other:?}");
                    closure = StreamClosure::Errored {
                        error: ErrorInfo::new("coflux.StreamError", message),
                    };
                    break;
                }
                Err(e) => {
                    tracing::debug!(%execution, index, error = %e, "demand refused: the producer stops");
                    closure = StreamClosure::Errored {
                        error: ErrorInfo::new("coflux.StreamError", e),
                    };
                    break;
                }
            }
        }
        let Some(next) = before(deadline, items.next()).await else {
            tracing::info!(%execution, index, "stream idle too long; closed");
            closure = StreamClosure::Timeout;
            break;
        };
        let Some(item) = next else {
            break;
        };
        let value = match super::target::encode(&item) {
            Ok(value) => value,
            Err(e) => {
                let message = format!("stream item {sequence} could not be encoded: {e}");
                closure = StreamClosure::Errored {
                    error: ErrorInfo::new("coflux.EncodeError", message),
                };
                break;
            }
        };
        let append = StreamOp::Append {
            execution,
            index,
            sequence,
            value,
        };
        if let Err(e) = context.link.stream(append).await {
            tracing::debug!(%execution, index, error = %e, "append refused: the producer stops");
            closure = StreamClosure::Errored {
                error: ErrorInfo::new("coflux.StreamError", e),
            };
            break;
        }
        sequence += 1;
        deadline = next_deadline();
    }
    let close = StreamOp::Close {
        execution,
        index,
        closure,
    };
    if let Err(e) = context.link.stream(close).await {
        tracing::debug!(%execution, index, error = %e, "stream close refused");
    }
}

fn stride_json(stride: &Stride) -> Option<Json> {
    (*stride != Stride::default())
        .then(|| json!({"start": stride.start, "stop": stride.stop, "step": stride.step}))
}

impl<T> Serialize for Stream<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut marker = Map::new();
        marker.insert(MARKER.into(), Json::String(self.id.to_string()));
        if let Some(stride) = stride_json(&self.stride) {
            marker.insert("stride".into(), stride);
        }
        Json::Object(marker).serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Stream<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let json = Json::deserialize(deserializer)?;
        let id = json
            .get("id")
            .filter(|_| json.get("type").and_then(Json::as_str) == Some("stream"))
            .or_else(|| json.get(MARKER))
            .and_then(Json::as_str)
            .ok_or_else(|| D::Error::custom("not a stream handle"))?;
        let id: StreamId = id.parse().map_err(D::Error::custom)?;
        let stride = match json.get("stride") {
            Some(s) if !s.is_null() => Stride {
                start: s.get("start").and_then(Json::as_u64).unwrap_or(0),
                stop: s.get("stop").and_then(Json::as_u64),
                step: s.get("step").and_then(Json::as_u64).unwrap_or(1).max(1),
            },
            _ => Stride::default(),
        };
        Ok(Self {
            id,
            stride,
            item: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_json;
    use super::*;

    #[test]
    fn stream_handles_encode_as_the_python_sdk_writes_them() {
        let id: StreamId = "R1:2_0".parse().unwrap();
        let handle: Stream<u32> = Stream {
            id,
            stride: Stride::default(),
            item: PhantomData,
        };
        let view = handle.partition(2, 1).slice(1, Some(3));
        let encoded = super::super::encode_json(serde_json::to_value(&view).unwrap());
        assert_eq!(
            encoded,
            json!({"type": "stream", "id": "R1:2_0",
                   "stride": {"start": 3, "stop": 7, "step": 2}})
        );
        let back: Stream<u32> = serde_json::from_value(decode_json(encoded)).unwrap();
        assert_eq!(back.id(), id);
        assert_eq!(
            back.stride,
            Stride {
                start: 3,
                stop: Some(7),
                step: 2
            }
        );
    }
}
