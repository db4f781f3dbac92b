//! Streams (`cf.stream`, generator tasks): item logs that belong to the step producing them.
//!
//! The items and closure are durable (written before any answer goes out). Subscriptions,
//! waiting reads and the producer's demand live only here: after a restart, a consumer's next
//! read opens its subscription again and a producer's next demand request is answered from the
//! acknowledgements known by then.
//!
//! Backpressure: a producer with a `buffer` may produce sequences below
//! `slowest watermark + buffer + 1` while consumers are subscribed, and `buffer` items past
//! where it started while none are. A subscription's watermark is where its consumer has
//! processed up to (acknowledgements), or, with nothing outstanding, the next sequence of its
//! view (so a partition does not hold the producer back over sequences it never reads).

use super::*;
use crate::model::{StreamClosure, StreamId, StreamOp, StreamRecord, StreamReply};

mod state;

use state::{
    Read, StreamState, Subscription, drop_subscription, refresh_demand, rejected, wake_reads,
};
pub(super) use state::{Streams, closure_of};

impl RunCore {
    /// Handles a stream operation; the answer goes to `reply` (now, or once it can be given).
    pub(super) fn stream_op(
        &mut self,
        op: StreamOp,
        reply: ReplyTo,
        now: Millis,
        out: &mut Outbox,
    ) {
        let answer = match op {
            StreamOp::Register {
                execution,
                position,
                buffer,
                timeout_ms,
            } => self.register_stream(execution, position, buffer, timeout_ms, now, out),
            StreamOp::Append {
                execution,
                index,
                sequence,
                value,
            } => self.append_item(execution, index, sequence, value, now, out),
            StreamOp::Close {
                execution,
                index,
                closure,
            } => self.produced(execution, index).map(|id| {
                self.close_stream(id, closure, now, out);
                StreamReply::Done
            }),
            StreamOp::Suspend {
                execution,
                execute_after,
            } => self
                .suspend(execution, execute_after, Dependencies::default(), now, out)
                .map(|()| StreamReply::Done),
            StreamOp::Demand {
                execution,
                index,
                granted,
            } => match self.produced(execution, index) {
                Ok(id) => {
                    let Some(state) = self.streams.by_id.get_mut(&id) else {
                        return;
                    };
                    match (&state.record.closed, state.target()) {
                        (None, Some(target)) if target <= granted => {
                            if let Some((old, had)) = state.demand.replace((reply, granted)) {
                                let target = Some(had);
                                out.reply(old, Reply::Stream(Ok(StreamReply::Demand { target })));
                            }
                            return;
                        }
                        (None, target) => Ok(StreamReply::Demand { target }),
                        (Some(_), _) => Err(rejected(id, "the stream has ended")),
                    }
                }
                Err(e) => Err(e),
            },
            StreamOp::Read {
                consumer,
                subscription,
                stream,
                from,
                stride,
                max,
                wait,
            } => {
                let Some(state) = self.streams.by_id.get_mut(&stream) else {
                    let e = OrchestrationError::StreamNotFound(stream.to_string());
                    return out.reply(reply, Reply::Stream(Err(e)));
                };
                // A read re-sent (after a reconnect) replaces the one still waiting.
                let (stale, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.reads)
                    .into_iter()
                    .partition(|r| r.consumer == consumer && r.subscription == subscription);
                state.reads = kept;
                for read in stale {
                    let answer = StreamReply::Items {
                        items: Vec::new(),
                        next: read.from,
                        closed: None,
                    };
                    out.reply(read.reply, Reply::Stream(Ok(answer)));
                }
                let sub = state
                    .subscriptions
                    .entry((consumer, subscription))
                    .or_insert(Subscription {
                        stride,
                        cursor: from,
                        delivered: 0,
                        acked: 0,
                        acked_sequence: -1,
                    });
                sub.stride = stride;
                sub.cursor = from;
                match state.serve(from, stride, max, wait) {
                    Some(answer) => {
                        if let (StreamReply::Items { items, next, .. }, Some(sub)) = (
                            &answer,
                            state.subscriptions.get_mut(&(consumer, subscription)),
                        ) {
                            sub.delivered += items.len() as u64;
                            sub.cursor = *next;
                        }
                        refresh_demand(state, out);
                        Ok(answer)
                    }
                    None => {
                        state.reads.push(Read {
                            consumer,
                            subscription,
                            from,
                            stride,
                            max,
                            reply,
                        });
                        refresh_demand(state, out);
                        return;
                    }
                }
            }
            StreamOp::Ack {
                consumer,
                subscription,
                stream,
                count,
                sequence,
            } => {
                if let Some(state) = self.streams.by_id.get_mut(&stream) {
                    if let Some(sub) = state.subscriptions.get_mut(&(consumer, subscription)) {
                        sub.acked = sub.acked.max(count);
                        sub.acked_sequence = sub.acked_sequence.max(sequence);
                    }
                    refresh_demand(state, out);
                }
                Ok(StreamReply::Done)
            }
            StreamOp::Await {
                stream, sequence, ..
            } => {
                if let Some(state) = self.streams.by_id.get_mut(&stream)
                    && state.len() <= sequence
                    && state.record.closed.is_none()
                {
                    state.waited = Some(state.waited.map_or(sequence, |w| w.max(sequence)));
                    refresh_demand(state, out);
                }
                Ok(StreamReply::Done)
            }
            StreamOp::Unsubscribe {
                consumer,
                subscription,
                stream,
            } => {
                if let Some(state) = self.streams.by_id.get_mut(&stream) {
                    drop_subscription(state, consumer, Some(subscription), out);
                }
                Ok(StreamReply::Done)
            }
        };
        out.reply(reply, Reply::Stream(answer));
    }

    /// Whether `execution` returned (a value) and still feeds open streams of its step.
    pub(super) fn feeds_streams(&self, execution: ExecutionId) -> bool {
        let returned = matches!(
            self.attempt(execution).and_then(|a| a.result.as_ref()),
            Some(ExecutionResult::Value { .. })
        );
        returned
            && self
                .streams
                .by_id
                .values()
                .any(|s| s.record.producer == execution && s.record.closed.is_none() && !s.paused)
    }

    /// The children of `parent` that returned and still feed their streams.
    pub(super) fn feeding_children(&self, parent: ExecutionId) -> Vec<ExecutionId> {
        let mut out: Vec<ExecutionId> = self
            .streams
            .by_id
            .values()
            .filter(|s| s.record.closed.is_none())
            .map(|s| s.record.producer)
            .filter(|p| {
                self.step(p.step)
                    .is_some_and(|s| s.record.parent_execution == Some(parent))
                    && self.feeds_streams(*p)
            })
            .collect();
        out.dedup();
        out
    }

    /// Ends the streams `execution` feeds as cancelled.
    pub(super) fn cancel_streams(&mut self, execution: ExecutionId, now: Millis, out: &mut Outbox) {
        let open: Vec<StreamId> = self
            .streams
            .by_id
            .iter()
            .filter(|(_, s)| s.record.producer == execution && s.record.closed.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.close_stream(id, StreamClosure::Cancelled, now, out);
        }
    }

    /// `execution` suspended while feeding its streams: they wait for the next attempt.
    pub(super) fn pause_streams(&mut self, execution: ExecutionId, out: &mut Outbox) {
        for state in self.streams.by_id.values_mut() {
            if state.record.producer == execution && state.record.closed.is_none() {
                state.paused = true;
                if let Some((reply, had)) = state.demand.take() {
                    let target = Some(had);
                    out.reply(reply, Reply::Stream(Ok(StreamReply::Demand { target })));
                }
            }
        }
    }

    /// The stream `execution` produces at `index` of its step.
    fn produced(&self, execution: ExecutionId, index: u32) -> Result<StreamId, OrchestrationError> {
        let id = StreamId {
            step: execution.step,
            index,
        };
        match self.streams.by_id.get(&id) {
            None => Err(OrchestrationError::StreamNotFound(id.to_string())),
            Some(s) if s.record.producer != execution => {
                Err(rejected(id, "produced by another execution"))
            }
            Some(_) => Ok(id),
        }
    }

    fn register_stream(
        &mut self,
        execution: ExecutionId,
        position: u32,
        buffer: Option<u32>,
        timeout_ms: Option<u64>,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<StreamReply, OrchestrationError> {
        let attempt = self
            .attempt(execution)
            .ok_or_else(|| OrchestrationError::ExecutionNotFound(execution.to_string()))?;
        if attempt
            .result
            .as_ref()
            .is_some_and(|r| !matches!(r, ExecutionResult::Value { .. }))
        {
            return Err(rejected(execution, "the execution has ended"));
        }
        let step = execution.step;
        let mine: Vec<StreamId> = self
            .streams
            .by_id
            .range(
                StreamId { step, index: 0 }..=StreamId {
                    step,
                    index: u32::MAX,
                },
            )
            .map(|(id, _)| *id)
            .collect();
        // A repeat of this execution's registration, or a stream its suspended predecessor left
        // open at the same position.
        for id in &mine {
            let state = &self.streams.by_id[id];
            if state.record.position != position {
                continue;
            }
            let head = state.len() as i64 - 1;
            if state.record.producer == execution {
                return Ok(StreamReply::Registered {
                    index: id.index,
                    head,
                });
            }
            // Suspended before it returned, or after (from a generator body; its result is
            // then its value, and this later attempt is the one it asked for).
            let suspended = state.paused
                || matches!(
                    self.attempt(state.record.producer)
                        .and_then(|a| a.result.as_ref()),
                    Some(ExecutionResult::Suspended { .. } | ExecutionResult::Value { .. })
                );
            if suspended
                && state.record.closed.is_none()
                && state.record.producer.attempt < execution.attempt
            {
                let state = self.streams.by_id.get_mut(id).expect("listed above");
                state.record.producer = execution;
                state.paused = false;
                state.record.buffer = buffer;
                state.record.timeout_ms = timeout_ms;
                state.base = state.len();
                write_stream(&state.record, out);
                return Ok(StreamReply::Registered {
                    index: id.index,
                    head,
                });
            }
        }
        // Open streams of a recurrent step's earlier iterations are superseded.
        for id in &mine {
            let state = &self.streams.by_id[id];
            let recurred = matches!(
                self.attempt(state.record.producer)
                    .and_then(|a| a.result.as_ref()),
                Some(ExecutionResult::Recurred { .. })
            );
            if recurred && state.record.closed.is_none() {
                self.close_stream(*id, StreamClosure::Recurred, now, out);
            }
        }
        let id = StreamId {
            step,
            index: mine.len() as u32,
        };
        let record = StreamRecord {
            id,
            position,
            producer: execution,
            buffer,
            timeout_ms,
            opened_at: now,
            items: Vec::new(),
            closed: None,
        };
        write_stream(&record, out);
        self.streams.by_id.insert(
            id,
            StreamState {
                record,
                base: 0,
                demand: None,
                paused: false,
                waited: None,
                subscriptions: HashMap::new(),
                reads: Vec::new(),
            },
        );
        Ok(StreamReply::Registered {
            index: id.index,
            head: -1,
        })
    }

    fn append_item(
        &mut self,
        execution: ExecutionId,
        index: u32,
        sequence: u64,
        value: Value,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<StreamReply, OrchestrationError> {
        let id = self.produced(execution, index)?;
        let state = self.streams.by_id.get_mut(&id).expect("found above");
        let len = state.len();
        if sequence < len {
            return Ok(StreamReply::Done); // a repeat (e.g. re-sent after a reconnect)
        }
        if state.record.closed.is_some() {
            return Err(rejected(id, "the stream has ended"));
        }
        if sequence > len {
            return Err(rejected(
                id,
                &format!("expected sequence {len}, got {sequence}"),
            ));
        }
        out.write(Write::PutStreamItem {
            stream: id,
            sequence,
            value: value.clone(),
            at: now,
        });
        state.record.items.push(value);
        if state.waited.is_some_and(|w| w < state.len()) {
            state.waited = None;
        }
        wake_reads(state, out);
        Ok(StreamReply::Done)
    }

    fn close_stream(
        &mut self,
        id: StreamId,
        closure: StreamClosure,
        now: Millis,
        out: &mut Outbox,
    ) {
        let Some(state) = self.streams.by_id.get_mut(&id) else {
            return;
        };
        if state.record.closed.is_some() {
            return;
        }
        out.write(Write::CloseStream {
            stream: id,
            closure: closure.clone(),
            at: now,
        });
        state.record.closed = Some((closure, now));
        if let Some((reply, _)) = state.demand.take() {
            let ended = rejected(id, "the stream has ended");
            out.reply(reply, Reply::Stream(Err(ended)));
        }
        wake_reads(state, out);
    }

    /// After `execution` ended (`closure`: how its streams end, per its result; `suspended`:
    /// where its subscriptions were is demand until it is back): its subscriptions go, and the streams it produces
    /// end with it unless it returned (a producer keeps appending after its result) or
    /// suspended (its successor continues them).
    pub(super) fn streams_after_result(
        &mut self,
        execution: ExecutionId,
        closure: Option<StreamClosure>,
        suspended: bool,
        now: Millis,
        out: &mut Outbox,
    ) {
        let mut produced = Vec::new();
        for (id, state) in &mut self.streams.by_id {
            if suspended {
                let waits = state
                    .subscriptions
                    .iter()
                    .filter(|((c, _), _)| *c == execution)
                    .filter_map(|(_, sub)| sub.stride.next_from(sub.cursor))
                    .max();
                if let Some(w) = waits {
                    state.waited = Some(state.waited.map_or(w, |x| x.max(w)));
                }
            }
            drop_subscription(state, execution, None, out);
            if state.record.producer == execution && state.record.closed.is_none() {
                produced.push(*id);
            }
        }
        if let Some(closure) = closure {
            for id in produced {
                self.close_stream(id, closure.clone(), now, out);
            }
        }
    }
}

fn write_stream(record: &StreamRecord, out: &mut Outbox) {
    out.write(Write::PutStream {
        stream: record.id,
        position: record.position,
        producer: record.producer,
        buffer: record.buffer,
        timeout_ms: record.timeout_ms,
        opened_at: record.opened_at,
    });
}
