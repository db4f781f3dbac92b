//! The in-memory state of a run's streams: records, subscriptions, waiting reads and demand.

use std::collections::{BTreeMap, HashMap};

use crate::model::{
    ExecutionId, ExecutionResult, StreamClosure, StreamId, StreamRecord, StreamReply, Stride,
};
use crate::orchestration::OrchestrationError;
use crate::orchestration::messages::{Outbox, Reply, ReplyTo};

/// The streams of a run.
#[derive(Debug, Default)]
pub(in super::super) struct Streams {
    pub(super) by_id: BTreeMap<StreamId, StreamState>,
}

#[derive(Debug)]
pub(super) struct StreamState {
    pub(super) record: StreamRecord,
    /// Where the current producer started (sequences below it existed already).
    pub(super) base: u64,
    /// The producer's demand request, waiting for more demand: (reply, granted so far).
    pub(super) demand: Option<(ReplyTo, u64)>,
    /// Its producer suspended after returning: the next attempt of the step continues it.
    pub(super) paused: bool,
    /// The furthest sequence a suspended consumer waits for (demand while nobody reads).
    pub(super) waited: Option<u64>,
    pub(super) subscriptions: HashMap<(ExecutionId, u32), Subscription>,
    pub(super) reads: Vec<Read>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Subscription {
    pub(super) stride: Stride,
    /// Where its next read starts.
    pub(super) cursor: u64,
    pub(super) delivered: u64,
    pub(super) acked: u64,
    pub(super) acked_sequence: i64,
}

#[derive(Debug)]
pub(super) struct Read {
    pub(super) consumer: ExecutionId,
    pub(super) subscription: u32,
    pub(super) from: u64,
    pub(super) stride: Stride,
    pub(super) max: u32,
    pub(super) reply: ReplyTo,
}

impl Streams {
    /// Rebuilt from stored streams.
    pub(in super::super) fn load(records: Vec<StreamRecord>) -> Self {
        let by_id = records
            .into_iter()
            .map(|record| {
                let base = record.items.len() as u64;
                let state = StreamState {
                    record,
                    base,
                    demand: None,
                    paused: false,
                    waited: None,
                    subscriptions: HashMap::new(),
                    reads: Vec::new(),
                };
                (state.record.id, state)
            })
            .collect();
        Self { by_id }
    }

    /// Whether nothing waits here and no stream is open (the run's actor may retire).
    pub(in super::super) fn is_idle(&self) -> bool {
        self.by_id
            .values()
            .all(|s| s.record.closed.is_some() && s.reads.is_empty() && s.demand.is_none())
    }
}

impl StreamState {
    pub(super) fn len(&self) -> u64 {
        self.record.items.len() as u64
    }

    fn watermark(sub: &Subscription) -> Option<u64> {
        if sub.acked >= sub.delivered {
            sub.stride.next_from(sub.cursor)
        } else {
            Some(u64::try_from(sub.acked_sequence.saturating_add(1)).unwrap_or(0))
        }
    }

    /// Sequences below the target may be produced (`None`: unbounded).
    pub(super) fn target(&self) -> Option<u64> {
        let buffer = u64::from(self.record.buffer?);
        let slowest = self
            .subscriptions
            .values()
            .filter_map(Self::watermark)
            .min();
        let target = match slowest {
            Some(watermark) => watermark + buffer + 1,
            None => self.base + buffer,
        };
        // A consumer suspended until an item exists only comes back once it does.
        Some(self.waited.map_or(target, |w| target.max(w + 1)))
    }

    /// The answer to a read, unless it is to wait.
    pub(super) fn serve(
        &self,
        from: u64,
        stride: Stride,
        max: u32,
        wait: bool,
    ) -> Option<StreamReply> {
        let len = self.len();
        let mut items = Vec::new();
        let mut next = stride.next_from(from);
        while let Some(sequence) = next {
            if sequence >= len || items.len() >= max.max(1) as usize {
                break;
            }
            let value = self.record.items[sequence as usize].clone();
            items.push((sequence, value));
            next = stride.next_from(sequence + 1);
        }
        let resume = next.unwrap_or_else(|| items.last().map_or(from, |(s, _)| s + 1));
        let closed = match next {
            None => Some(StreamClosure::Complete),
            Some(sequence) if sequence >= len => {
                self.record.closed.as_ref().map(|(c, _)| c.clone())
            }
            Some(_) => None,
        };
        if items.is_empty() && closed.is_none() && wait {
            return None;
        }
        Some(StreamReply::Items {
            items,
            next: resume,
            closed,
        })
    }
}

pub(in super::super) fn closure_of(result: &ExecutionResult) -> Option<StreamClosure> {
    match result {
        ExecutionResult::Error { error, .. } => Some(StreamClosure::Errored {
            error: error.clone(),
        }),
        ExecutionResult::Abandoned { .. } => Some(StreamClosure::Abandoned),
        ExecutionResult::Crashed { .. } => Some(StreamClosure::Crashed),
        ExecutionResult::Timeout { .. } => Some(StreamClosure::Timeout),
        ExecutionResult::Cancelled => Some(StreamClosure::Cancelled),
        _ => None,
    }
}

pub(super) fn rejected(stream: impl ToString, reason: &str) -> OrchestrationError {
    OrchestrationError::StreamRejected {
        stream: stream.to_string(),
        reason: reason.into(),
    }
}

/// Answers the waiting reads that can be answered now.
pub(super) fn wake_reads(state: &mut StreamState, out: &mut Outbox) {
    let reads = std::mem::take(&mut state.reads);
    for read in reads {
        match state.serve(read.from, read.stride, read.max, true) {
            Some(answer) => {
                if let (StreamReply::Items { items, next, .. }, Some(sub)) = (
                    &answer,
                    state
                        .subscriptions
                        .get_mut(&(read.consumer, read.subscription)),
                ) {
                    sub.delivered += items.len() as u64;
                    sub.cursor = *next;
                }
                out.reply(read.reply, Reply::Stream(Ok(answer)));
            }
            None => state.reads.push(read),
        }
    }
    refresh_demand(state, out);
}

/// Answers the producer's waiting demand request if the target grew past what it had.
pub(super) fn refresh_demand(state: &mut StreamState, out: &mut Outbox) {
    let Some((_, had)) = state.demand else {
        return;
    };
    let target = state.target();
    if target.is_none_or(|t| t > had)
        && let Some((reply, _)) = state.demand.take()
    {
        out.reply(reply, Reply::Stream(Ok(StreamReply::Demand { target })));
    }
}

/// Drops a consumer's subscription (all of its subscriptions with `None`), answering its
/// waiting reads with nothing.
pub(super) fn drop_subscription(
    state: &mut StreamState,
    consumer: ExecutionId,
    subscription: Option<u32>,
    out: &mut Outbox,
) {
    let matches = |c: ExecutionId, s: u32| c == consumer && subscription.is_none_or(|x| x == s);
    let before = state.subscriptions.len() + state.reads.len();
    state.subscriptions.retain(|(c, s), _| !matches(*c, *s));
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.reads)
        .into_iter()
        .partition(|r| matches(r.consumer, r.subscription));
    state.reads = kept;
    for read in gone {
        let answer = StreamReply::Items {
            items: Vec::new(),
            next: read.from,
            closed: None,
        };
        out.reply(read.reply, Reply::Stream(Ok(answer)));
    }
    if state.subscriptions.len() + state.reads.len() != before {
        refresh_demand(state, out);
    }
}
