//! Streams (`cf.stream`, generator tasks): ordered, durable item logs that belong to the step
//! producing them, read by any number of consumers, each from the start.
//!
//! [`StreamOp`] is what an agent asks of a stream on behalf of a producer or a consumer;
//! [`StreamReply`] the answer. The semantics are in `docs/semantics.md` (Streams).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ErrorInfo, ExecutionId, IdParseError, Millis, StepId, Value};

/// A stream: the `index`-th stream registered by its step. Shown as `RUN:STEP_INDEX`, the
/// form Coflux gives stream handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    /// The producing step.
    pub step: StepId,
    /// Its number within the step (0, 1, ...).
    pub index: u32,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.step, self.index)
    }
}

impl FromStr for StreamId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdParseError::new("stream", s);
        let (step, index) = s.rsplit_once('_').ok_or_else(err)?;
        Ok(Self {
            step: step.parse().map_err(|_| err())?,
            index: index.parse().map_err(|_| err())?,
        })
    }
}

/// The sequences a consumer's view selects: `start, start + step, ...` below `stop`
/// (`slice`, `partition` and `stride` of a stream handle compose into one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stride {
    /// The first sequence.
    pub start: u64,
    /// The end (exclusive), if any.
    pub stop: Option<u64>,
    /// The distance between selected sequences (at least 1).
    pub step: u64,
}

impl Default for Stride {
    fn default() -> Self {
        Self {
            start: 0,
            stop: None,
            step: 1,
        }
    }
}

impl Stride {
    /// The first selected sequence at or after `from` (`None`: the view ends before it).
    pub fn next_from(&self, from: u64) -> Option<u64> {
        let step = self.step.max(1);
        let next = if from <= self.start {
            self.start
        } else {
            let offset = from - self.start;
            self.start + offset.div_ceil(step) * step
        };
        match self.stop {
            Some(stop) if next >= stop => None,
            _ => Some(next),
        }
    }
}

/// How a stream ended; consumers see the reason (an error for `Errored`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum StreamClosure {
    /// The producer finished it.
    Complete,
    /// The producer (the generator or its execution) raised.
    Errored {
        /// The error.
        error: ErrorInfo,
    },
    /// The producing execution was cancelled.
    Cancelled,
    /// The producing execution's agent went away.
    Abandoned,
    /// The producing process died.
    Crashed,
    /// No item within the stream's idle timeout (or its execution timed out).
    Timeout,
    /// A later attempt of a recurrent step superseded it (`StreamSuperseded`).
    Recurred,
}

impl StreamClosure {
    /// The reason as Coflux names it (`complete`, `errored`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Errored { .. } => "errored",
            Self::Cancelled => "cancelled",
            Self::Abandoned => "abandoned",
            Self::Crashed => "crashed",
            Self::Timeout => "timeout",
            Self::Recurred => "recurred",
        }
    }
}

/// A stream as stored: its registration, items and closure.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// The stream.
    pub id: StreamId,
    /// The registration order within the producing execution (matches a resumed producer's
    /// registrations to the streams its suspended predecessor left open).
    pub position: u32,
    /// The execution producing it now (the latest attempt that registered it).
    pub producer: ExecutionId,
    /// How far the producer may run ahead of the slowest consumer (`None`: unbounded).
    pub buffer: Option<u32>,
    /// Idle timeout (enforced by the producer's agent).
    pub timeout_ms: Option<u64>,
    /// When it was registered.
    pub opened_at: Millis,
    /// Its items, by sequence.
    pub items: Vec<Value>,
    /// How it ended, and when.
    pub closed: Option<(StreamClosure, Millis)>,
}

/// What an agent asks of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum StreamOp {
    /// A running execution registers its `position`-th stream (answered with
    /// [`StreamReply::Registered`]): a new stream of its step, or the one its suspended
    /// predecessor registered at that position.
    Register {
        /// The producer.
        execution: ExecutionId,
        /// Its registration order.
        position: u32,
        /// Backpressure budget (`None`: unbounded).
        buffer: Option<u32>,
        /// Idle timeout.
        timeout_ms: Option<u64>,
    },
    /// The producer appends the item at `sequence` (a repeat of a stored one is accepted).
    Append {
        /// The producer.
        execution: ExecutionId,
        /// The stream's index within the step.
        index: u32,
        /// The item's sequence (the stream's length).
        sequence: u64,
        /// The item.
        value: Value,
    },
    /// The producer (or its agent) ends the stream.
    Close {
        /// The producer.
        execution: ExecutionId,
        /// The stream's index within the step.
        index: u32,
        /// How.
        closure: StreamClosure,
    },
    /// A producer that returned suspends while feeding its streams (`cf.suspend()` in a
    /// generator body): the streams pause, and a new attempt of the step runs after
    /// `execute_after` and continues them.
    Suspend {
        /// The producer.
        execution: ExecutionId,
        /// Not before this time (unix ms).
        execute_after: Option<Millis>,
    },
    /// The producer has been granted `granted` items so far; answered with
    /// [`StreamReply::Demand`] once more may be produced.
    Demand {
        /// The producer.
        execution: ExecutionId,
        /// The stream's index within the step.
        index: u32,
        /// Items granted so far (in sequence space: sequences below it).
        granted: u64,
    },
    /// A consumer reads items of its view from `from` on (opening its subscription on the
    /// first read); with `wait`, the answer waits for at least one item or the end.
    Read {
        /// The consumer.
        consumer: ExecutionId,
        /// The consumer's subscription number.
        subscription: u32,
        /// The stream.
        stream: StreamId,
        /// The first sequence wanted.
        from: u64,
        /// The consumer's view.
        stride: Stride,
        /// At most this many items.
        max: u32,
        /// Wait for an item or the end.
        wait: bool,
    },
    /// A consumer has processed `count` items, the highest at `sequence` (both cumulative).
    Ack {
        /// The consumer.
        consumer: ExecutionId,
        /// The subscription.
        subscription: u32,
        /// The stream.
        stream: StreamId,
        /// Items processed.
        count: u64,
        /// The highest sequence processed (-1: none).
        sequence: i64,
    },
    /// A consumer suspends until the stream reaches `sequence` (or ends): that item is
    /// demand while it is away.
    Await {
        /// The consumer.
        consumer: ExecutionId,
        /// The stream.
        stream: StreamId,
        /// The sequence it waits for.
        sequence: u64,
    },
    /// A consumer stopped reading.
    Unsubscribe {
        /// The consumer.
        consumer: ExecutionId,
        /// The subscription.
        subscription: u32,
        /// The stream.
        stream: StreamId,
    },
}

impl StreamOp {
    /// The execution asking (producer or consumer).
    pub fn execution(&self) -> ExecutionId {
        match self {
            Self::Register { execution, .. }
            | Self::Append { execution, .. }
            | Self::Close { execution, .. }
            | Self::Suspend { execution, .. }
            | Self::Demand { execution, .. } => *execution,
            Self::Read { consumer, .. }
            | Self::Ack { consumer, .. }
            | Self::Await { consumer, .. }
            | Self::Unsubscribe { consumer, .. } => *consumer,
        }
    }

    /// The step whose run holds the stream.
    pub fn step(&self) -> StepId {
        match self {
            Self::Register { execution, .. }
            | Self::Append { execution, .. }
            | Self::Close { execution, .. }
            | Self::Suspend { execution, .. }
            | Self::Demand { execution, .. } => execution.step,
            Self::Read { stream, .. }
            | Self::Ack { stream, .. }
            | Self::Await { stream, .. }
            | Self::Unsubscribe { stream, .. } => stream.step,
        }
    }
}

/// The answer to a [`StreamOp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply")]
pub enum StreamReply {
    /// The stream registered: its index and the last sequence already in it (-1 if none).
    Registered {
        /// The stream's index within the step.
        index: u32,
        /// The last sequence stored.
        head: i64,
    },
    /// Done (appended, closed, acknowledged).
    Done,
    /// The producer may produce sequences below `target`; `None`: no more demand will come
    /// (unbounded, or the stream has ended).
    Demand {
        /// Items granted in total.
        target: Option<u64>,
    },
    /// Items of a read, with the sequence to read from next, and the end when the view has
    /// no more items to give.
    Items {
        /// `(sequence, value)`, in order.
        items: Vec<(u64, Value)>,
        /// Where the next read starts.
        next: u64,
        /// How the view ended, if it has.
        closed: Option<StreamClosure>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip_in_coflux_form() {
        let step = StepId {
            run: crate::model::RunId(1),
            number: 3,
        };
        let id = StreamId { step, index: 2 };
        let text = id.to_string();
        assert!(text.ends_with(":3_2"), "{text}");
        assert_eq!(text.parse::<StreamId>().unwrap(), id);
        assert!("nonsense".parse::<StreamId>().is_err());
    }

    #[test]
    fn strides_select_the_next_sequence_of_a_view() {
        let partition = Stride {
            start: 1,
            stop: None,
            step: 2,
        };
        assert_eq!(partition.next_from(0), Some(1));
        assert_eq!(partition.next_from(2), Some(3));
        assert_eq!(partition.next_from(3), Some(3));
        let slice = Stride {
            start: 2,
            stop: Some(4),
            step: 1,
        };
        assert_eq!(slice.next_from(0), Some(2));
        assert_eq!(slice.next_from(3), Some(3));
        assert_eq!(slice.next_from(4), None);
    }
}
