//! Streams of one execution, both sides, between its process and the host.
//!
//! Producer: `stream_register` registers the stream through the host; the process's
//! `stream_append`s and `stream_close` are sent in order, one at a time, each once the
//! previous one is durable. With a `buffer`, a task asks the host for demand and passes it on
//! as `stream_demand`. With a `timeout_ms`, the stream is closed as `timeout` (and the process
//! told with `stream_force_close`) when no item comes for that long.
//!
//! Consumer: each `stream_subscribe` runs a task that reads from the host while fewer than
//! `prefetch` items are unacknowledged, and pushes them as `stream_items`, then
//! `stream_closed`. Acknowledgements go to the host (they pace the producer).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::{ErrorInfo, ExecutionId, StreamClosure, StreamId, StreamOp, StreamReply};
use coflux_core::protocol::executor::{
    ExecutionParams, ResponseError, StreamAppend, StreamClose, WireValue, WorkerNotification,
};
use serde_json::{Value as Json, json};
use tokio::sync::{Notify, mpsc, watch};

use super::host::ExecutorHost;
use super::values;

mod consumer;

/// The delivery window when a subscription names none.
const DEFAULT_PREFETCH: u64 = 16;
/// How long to wait before asking the host again after a failure (e.g. while reconnecting).
const RETRY: Duration = Duration::from_millis(500);

enum Produce {
    Append(u64, WireValue),
    Close(StreamClosure),
    /// Stop sending (the items before are durable) without closing: the producer suspended.
    Pause(tokio::sync::oneshot::Sender<()>),
}

struct Produced {
    queue: mpsc::UnboundedSender<Produce>,
    /// An item came (restarts the idle timer).
    activity: Rc<Notify>,
    closed: Rc<Cell<bool>>,
}

struct Subscription {
    /// (delivered, acknowledged) items.
    window: watch::Sender<(u64, u64)>,
    stream: StreamId,
    stop: Rc<Notify>,
}

/// The streams an execution produces and reads.
pub(crate) struct ExecutionStreams {
    execution: ExecutionId,
    scratch: PathBuf,
    writer: RefCell<Option<mpsc::WeakUnboundedSender<String>>>,
    produced: RefCell<HashMap<u32, Produced>>,
    /// How many produced streams are open.
    open: watch::Sender<usize>,
    /// The open streams a concurrent (Rust) executor produces itself, through `stream_op`.
    direct: RefCell<std::collections::BTreeSet<u32>>,
    subscriptions: RefCell<HashMap<u64, Subscription>>,
}

impl ExecutionStreams {
    pub(crate) fn new(execution: ExecutionId, scratch: PathBuf) -> Rc<Self> {
        Rc::new(Self {
            execution,
            scratch,
            writer: RefCell::new(None),
            produced: RefCell::default(),
            open: watch::channel(0).0,
            direct: RefCell::default(),
            subscriptions: RefCell::default(),
        })
    }

    /// Where notifications to the process go (held weakly: the process closing its stdin
    /// still ends it).
    pub(crate) fn attach(&self, writer: Option<mpsc::WeakUnboundedSender<String>>) {
        *self.writer.borrow_mut() = writer;
    }

    /// Whether the execution produces streams that are still open.
    pub(crate) fn producing(&self) -> bool {
        *self.open.borrow() > 0
    }

    /// Whether the execution produces open streams or reads any (it cannot simply be suspended
    /// and replayed then).
    pub(crate) fn busy(&self) -> bool {
        self.producing() || !self.subscriptions.borrow().is_empty()
    }

    /// Resolves once every stream the execution produces is closed.
    pub(crate) async fn drained(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// Follows a stream operation a concurrent executor sent itself (`stream_op`): a stream it
    /// registered counts as open (the execution stays after its result while one is) until it
    /// sends its close, accepted or not.
    pub(crate) fn passed(&self, op: &StreamOp, reply: Option<&StreamReply>) {
        let changed = match (op, reply) {
            (StreamOp::Register { .. }, Some(StreamReply::Registered { index, .. })) => {
                self.direct.borrow_mut().insert(*index)
            }
            (StreamOp::Close { index, .. }, _) => self.direct.borrow_mut().remove(index),
            _ => false,
        };
        if changed {
            let opened = matches!(op, StreamOp::Register { .. });
            self.open
                .send_modify(|n| *n = if opened { *n + 1 } else { n.saturating_sub(1) });
        }
    }

    /// Ends the streams a concurrent executor still had open (its process is gone).
    pub(crate) async fn end_direct(&self, host: &Rc<dyn ExecutorHost>, closure: StreamClosure) {
        let open = std::mem::take(&mut *self.direct.borrow_mut());
        for index in open {
            let op = StreamOp::Close {
                execution: self.execution,
                index,
                closure: closure.clone(),
            };
            if let Err(e) = host.stream(op).await {
                tracing::warn!(execution = %self.execution, index, error = %e, "could not end a stream");
            }
        }
        self.open.send_replace(0);
    }

    /// Closes the streams still open (the process is gone) and stops every subscription.
    pub(crate) fn end(&self, closure: StreamClosure) {
        for produced in self.produced.borrow().values() {
            if !produced.closed.get() {
                let _ = produced.queue.send(Produce::Close(closure.clone()));
            }
        }
        for (_, sub) in self.subscriptions.borrow_mut().drain() {
            sub.stop.notify_one();
        }
    }

    /// The producer suspended after returning (`cf.suspend()` in a generator body): once the
    /// items it appended are durable, the server pauses its streams and schedules the attempt
    /// that continues them.
    pub(crate) async fn pause(&self, host: &Rc<dyn ExecutorHost>, execute_after: Option<i64>) {
        let sent: Vec<_> = self
            .produced
            .borrow()
            .values()
            .filter(|p| !p.closed.get())
            .filter_map(|p| {
                let (done, sent) = tokio::sync::oneshot::channel();
                p.queue.send(Produce::Pause(done)).ok().map(|()| sent)
            })
            .collect();
        futures::future::join_all(sent).await;
        let op = StreamOp::Suspend {
            execution: self.execution,
            execute_after,
        };
        for _ in 0..20 {
            match host.stream(op.clone()).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(execution = %self.execution, error = %e, "could not suspend the producer; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        self.stop();
    }

    /// Stops everything without closing produced streams (the execution ended some other way:
    /// the server closes or keeps them as its result says).
    pub(crate) fn stop(&self) {
        for produced in self.produced.borrow().values() {
            produced.closed.set(true);
        }
        self.produced.borrow_mut().clear();
        for (_, sub) in self.subscriptions.borrow_mut().drain() {
            sub.stop.notify_one();
        }
    }

    fn notify(&self, notification: WorkerNotification) {
        let writer = self.writer.borrow().as_ref().and_then(|w| w.upgrade());
        if let Some(writer) = writer {
            let _ = writer.send(notification.to_line());
        }
    }

    /// `stream_register`: registers the stream; answers `{id, index, head}`.
    pub(crate) async fn register(
        self: &Rc<Self>,
        host: &Rc<dyn ExecutorHost>,
        params: ExecutionParams,
    ) -> Result<Json, ResponseError> {
        let number = |name: &str| params.rest.get(name).and_then(Json::as_u64);
        let position = number("position").unwrap_or(0);
        let buffer = number("buffer").map(|b| u32::try_from(b).unwrap_or(u32::MAX));
        let timeout_ms = number("timeout_ms").filter(|t| *t > 0);
        let op = StreamOp::Register {
            execution: self.execution,
            position: u32::try_from(position).unwrap_or(u32::MAX),
            buffer,
            timeout_ms,
        };
        let (index, head) = match host.stream(op).await {
            Ok(StreamReply::Registered { index, head }) => (index, head),
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => return Err(ResponseError::new("stream_error", e.to_string())),
        };
        let id = StreamId {
            step: self.execution.step,
            index,
        };
        if !self.produced.borrow().contains_key(&index) {
            self.start_producing(host, index, buffer, head, timeout_ms);
        }
        Ok(json!({ "id": id.to_string(), "index": index, "head": head }))
    }

    fn start_producing(
        self: &Rc<Self>,
        host: &Rc<dyn ExecutorHost>,
        index: u32,
        buffer: Option<u32>,
        head: i64,
        timeout_ms: Option<u64>,
    ) {
        let (queue, items) = mpsc::unbounded_channel();
        let produced = Produced {
            queue,
            activity: Rc::new(Notify::new()),
            closed: Rc::new(Cell::new(false)),
        };
        let activity = Rc::clone(&produced.activity);
        let closed = Rc::clone(&produced.closed);
        self.produced.borrow_mut().insert(index, produced);
        self.open.send_modify(|n| *n += 1);
        actix_rt::spawn(Rc::clone(self).send_items(Rc::clone(host), index, items));
        if buffer.is_some() {
            let granted = u64::try_from(head + 1).unwrap_or(0);
            actix_rt::spawn(Rc::clone(self).pass_demand(Rc::clone(host), index, granted));
        }
        if let Some(ms) = timeout_ms {
            let me = Rc::clone(self);
            actix_rt::spawn(async move {
                while !closed.get() {
                    let idle = tokio::time::sleep(Duration::from_millis(ms));
                    tokio::select! {
                        () = activity.notified() => continue,
                        () = idle => {}
                    }
                    if closed.get() {
                        break;
                    }
                    tracing::info!(execution = %me.execution, index, "stream idle too long; closed");
                    me.close_produced(index, StreamClosure::Timeout);
                    me.notify(WorkerNotification::StreamForceClose(
                        json!({"index": index, "reason": "timeout"}),
                    ));
                }
            });
        }
    }

    /// Marks a produced stream closed and queues its closure (after its items).
    fn close_produced(&self, index: u32, closure: StreamClosure) {
        if let Some(produced) = self.produced.borrow().get(&index)
            && !produced.closed.replace(true)
        {
            let _ = produced.queue.send(Produce::Close(closure));
        }
    }

    /// Sends a produced stream's items and closure to the host, in order.
    async fn send_items(
        self: Rc<Self>,
        host: Rc<dyn ExecutorHost>,
        index: u32,
        mut items: mpsc::UnboundedReceiver<Produce>,
    ) {
        while let Some(produce) = items.recv().await {
            let op = match produce {
                Produce::Append(sequence, value) => {
                    match values::from_wire(&host, value, &self.scratch).await {
                        Ok(value) => StreamOp::Append {
                            execution: self.execution,
                            index,
                            sequence,
                            value,
                        },
                        Err(e) => StreamOp::Close {
                            execution: self.execution,
                            index,
                            closure: StreamClosure::Errored {
                                error: ErrorInfo::new(
                                    "Coflux.StreamError",
                                    format!("item {sequence} could not be stored: {e}"),
                                ),
                            },
                        },
                    }
                }
                Produce::Close(closure) => StreamOp::Close {
                    execution: self.execution,
                    index,
                    closure,
                },
                Produce::Pause(done) => {
                    let _ = done.send(());
                    break;
                }
            };
            let closing = matches!(op, StreamOp::Close { .. });
            let ended = loop {
                match host.stream(op.clone()).await {
                    Ok(_) => break closing,
                    Err(e) if e.code == "stream_rejected" || e.code == "stream_not_found" => {
                        tracing::warn!(execution = %self.execution, index, error = %e, "stream operation refused; the stream is over");
                        self.notify(WorkerNotification::StreamForceClose(
                            json!({"index": index, "reason": "closed"}),
                        ));
                        break true;
                    }
                    Err(e) => {
                        tracing::debug!(execution = %self.execution, index, error = %e, "stream operation failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            };
            if ended {
                break;
            }
        }
        if let Some(produced) = self.produced.borrow().get(&index) {
            produced.closed.set(true);
        }
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Asks the host for demand until the stream ends, passing it on as `stream_demand`.
    async fn pass_demand(self: Rc<Self>, host: Rc<dyn ExecutorHost>, index: u32, mut granted: u64) {
        loop {
            if self.is_closed(index) {
                return;
            }
            let op = StreamOp::Demand {
                execution: self.execution,
                index,
                granted,
            };
            match host.stream(op).await {
                Ok(StreamReply::Demand {
                    target: Some(target),
                }) => {
                    if target > granted {
                        self.notify(WorkerNotification::StreamDemand(
                            json!({"index": index, "n": target - granted}),
                        ));
                        granted = target;
                    }
                }
                Ok(StreamReply::Demand { target: None }) => {
                    // Unbounded from here on (or over): let the producer run.
                    self.notify(WorkerNotification::StreamDemand(
                        json!({"index": index, "n": u32::MAX}),
                    ));
                    return;
                }
                Ok(_) => return,
                Err(e) if e.code == "stream_rejected" || e.code == "stream_not_found" => {
                    // Ended on the server (e.g. its producer was cancelled): stop producing.
                    if !self.is_closed(index) {
                        self.close_produced(index, StreamClosure::Cancelled);
                        self.notify(WorkerNotification::StreamForceClose(
                            json!({"index": index, "reason": "cancelled"}),
                        ));
                    }
                    return;
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
    }

    fn is_closed(&self, index: u32) -> bool {
        self.produced
            .borrow()
            .get(&index)
            .is_none_or(|p| p.closed.get())
    }

    /// `stream_append`.
    pub(crate) fn append(&self, p: StreamAppend) {
        match self.produced.borrow().get(&p.index) {
            Some(produced) if !produced.closed.get() => {
                produced.activity.notify_one();
                let _ = produced.queue.send(Produce::Append(p.sequence, p.value));
            }
            _ => {
                tracing::debug!(execution = %self.execution, index = p.index, "item of a closed or unknown stream; dropped")
            }
        }
    }

    /// `stream_close`.
    pub(crate) fn close(&self, p: StreamClose) {
        let closure = match p.error {
            Some(error) => StreamClosure::Errored {
                error: error.to_error_info(),
            },
            None => StreamClosure::Complete,
        };
        self.close_produced(p.index, closure);
    }

    fn fire(&self, host: &Rc<dyn ExecutorHost>, op: StreamOp) {
        let request = host.stream(op);
        let execution = self.execution;
        actix_rt::spawn(async move {
            if let Err(e) = request.await {
                tracing::debug!(%execution, error = %e, "stream notification lost");
            }
        });
    }
}

fn unexpected(reply: &StreamReply) -> ResponseError {
    ResponseError::new("stream_error", format!("unexpected answer {reply:?}"))
}
