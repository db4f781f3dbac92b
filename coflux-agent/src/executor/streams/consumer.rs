//! The consumer side of [`ExecutionStreams`]: subscriptions delivering items to the process,
//! acknowledgements, and `select` on a stream handle.

use std::rc::Rc;

use coflux_core::model::{ErrorInfo, StreamClosure, StreamId, StreamOp, StreamReply, Stride};
use coflux_core::protocol::executor::{
    Handle, ResponseError, StreamAck, StreamSubscribe, StreamUnsubscribe, WorkerNotification,
};
use serde_json::{Value as Json, json};
use tokio::sync::{Notify, watch};

use super::super::host::ExecutorHost;
use super::super::values;
use super::{DEFAULT_PREFETCH, ExecutionStreams, RETRY, Subscription};

impl ExecutionStreams {
    /// `stream_subscribe`: starts delivering.
    pub(crate) fn subscribe(self: &Rc<Self>, host: &Rc<dyn ExecutorHost>, p: StreamSubscribe) {
        let subscription = p.subscription_id;
        let stream: StreamId = match p.stream_id.parse() {
            Ok(id) => id,
            Err(_) => {
                self.notify(closed_notification(subscription, "not_found", None));
                return;
            }
        };
        let stride = p.stride.as_ref().map(parse_stride).unwrap_or_default();
        let prefetch = if p.prefetch == 0 {
            DEFAULT_PREFETCH
        } else {
            p.prefetch
        };
        let from = p.from_sequence.max(stride.start);
        let sub = Subscription {
            window: watch::channel((0, 0)).0,
            stream,
            stop: Rc::new(Notify::new()),
        };
        let window = sub.window.subscribe();
        let stop = Rc::clone(&sub.stop);
        self.subscriptions.borrow_mut().insert(subscription, sub);
        let me = Rc::clone(self);
        let host = Rc::clone(host);
        actix_rt::spawn(async move {
            tokio::select! {
                () = me.deliver(&host, subscription, stream, stride, from, prefetch, window) => {}
                () = stop.notified() => {}
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        host: &Rc<dyn ExecutorHost>,
        subscription: u64,
        stream: StreamId,
        stride: Stride,
        mut from: u64,
        prefetch: u64,
        mut window: watch::Receiver<(u64, u64)>,
    ) {
        let Ok(number) = u32::try_from(subscription) else {
            return;
        };
        loop {
            let Ok(open) = window
                .wait_for(|(delivered, acked)| delivered.saturating_sub(*acked) < prefetch)
                .await
                .map(|w| {
                    let (delivered, acked) = *w;
                    prefetch - delivered.saturating_sub(acked)
                })
            else {
                return;
            };
            let op = StreamOp::Read {
                consumer: self.execution,
                subscription: number,
                stream,
                from,
                stride,
                max: u32::try_from(open).unwrap_or(u32::MAX),
                wait: true,
            };
            let (items, next, closed) = match host.stream(op).await {
                Ok(StreamReply::Items {
                    items,
                    next,
                    closed,
                }) => (items, next, closed),
                Ok(_) => return,
                Err(e) if e.code == "stream_not_found" => {
                    self.notify(closed_notification(subscription, "not_found", None));
                    return;
                }
                Err(e) => {
                    tracing::debug!(execution = %self.execution, %stream, error = %e, "stream read failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let mut wire = Vec::with_capacity(items.len());
            for (sequence, value) in &items {
                match values::to_wire(host, value, &self.scratch).await {
                    Ok(value) => wire.push(json!([sequence, value])),
                    Err(e) => {
                        let error = ErrorInfo::new(
                            "Coflux.StreamError",
                            format!("item {sequence} could not be fetched: {e}"),
                        );
                        self.notify(closed_notification(subscription, "errored", Some(&error)));
                        return;
                    }
                }
            }
            if !wire.is_empty() {
                let count = wire.len() as u64;
                if let Some(sub) = self.subscriptions.borrow().get(&subscription) {
                    sub.window.send_modify(|(delivered, _)| *delivered += count);
                }
                self.notify(WorkerNotification::StreamItems(
                    json!({"subscription_id": subscription, "items": wire}),
                ));
            }
            from = next;
            if let Some(closure) = closed {
                let error = match &closure {
                    StreamClosure::Errored { error } => Some(error),
                    _ => None,
                };
                self.notify(closed_notification(subscription, closure.reason(), error));
                return;
            }
        }
    }

    /// A `select` on a stream handle (a consumer in a `cf.suspense` scope deciding whether to
    /// wait or suspend): `{winner: 0, status: "ok"}` when the stream has reached the handle's
    /// sequence or has ended, else `null`. Never waits.
    pub(crate) async fn available(
        &self,
        host: &Rc<dyn ExecutorHost>,
        handle: &Handle,
    ) -> Result<Json, ResponseError> {
        let stream: StreamId = handle
            .id
            .parse()
            .map_err(|_| ResponseError::new("select_error", "invalid stream handle"))?;
        // A subscription number of its own, dropped at once (it must not hold the producer).
        let subscription = u32::MAX;
        let read = StreamOp::Read {
            consumer: self.execution,
            subscription,
            stream,
            from: handle.sequence.unwrap_or(0),
            stride: Stride::default(),
            max: 1,
            wait: false,
        };
        let reply = host.stream(read).await;
        self.fire(
            host,
            StreamOp::Unsubscribe {
                consumer: self.execution,
                subscription,
                stream,
            },
        );
        match reply {
            Ok(StreamReply::Items { items, closed, .. })
                if !items.is_empty() || closed.is_some() =>
            {
                Ok(json!({"winner": 0, "status": "ok"}))
            }
            Ok(_) => Ok(Json::Null),
            Err(e) => Err(ResponseError::new("select_error", e.to_string())),
        }
    }

    /// `stream_ack`: frees delivery window and paces the producer.
    pub(crate) fn ack(&self, host: &Rc<dyn ExecutorHost>, p: StreamAck) {
        let stream = {
            let subs = self.subscriptions.borrow();
            let Some(sub) = subs.get(&p.subscription_id) else {
                return;
            };
            sub.window
                .send_modify(|(_, acked)| *acked = (*acked).max(p.count));
            sub.stream
        };
        let Ok(subscription) = u32::try_from(p.subscription_id) else {
            return;
        };
        self.fire(
            host,
            StreamOp::Ack {
                consumer: self.execution,
                subscription,
                stream,
                count: p.count,
                sequence: p.sequence,
            },
        );
    }

    /// `stream_unsubscribe`: stops delivering.
    pub(crate) fn unsubscribe(&self, host: &Rc<dyn ExecutorHost>, p: StreamUnsubscribe) {
        let Some(sub) = self.subscriptions.borrow_mut().remove(&p.subscription_id) else {
            return;
        };
        sub.stop.notify_one();
        let Ok(subscription) = u32::try_from(p.subscription_id) else {
            return;
        };
        self.fire(
            host,
            StreamOp::Unsubscribe {
                consumer: self.execution,
                subscription,
                stream: sub.stream,
            },
        );
    }
}

fn parse_stride(json: &Json) -> Stride {
    let number = |name: &str| json.get(name).and_then(Json::as_u64);
    Stride {
        start: number("start").unwrap_or(0),
        stop: number("stop"),
        step: number("step").unwrap_or(1).max(1),
    }
}

fn closed_notification(
    subscription: u64,
    reason: &str,
    error: Option<&ErrorInfo>,
) -> WorkerNotification {
    let mut params = json!({"subscription_id": subscription, "reason": reason});
    if let Some(error) = error {
        params["error"] = json!({"type": error.error_type, "message": error.message});
    }
    WorkerNotification::StreamClosed(params)
}
