//! Reply correlation: callers waiting for an answer register a sink under a fresh id; the
//! reply envelope with that id is handed to it.

use std::sync::atomic::Ordering;

use tokio::sync::{oneshot, watch};

use super::super::super::messages::{Reply, ReplyTo};
use super::{Router, lock};

/// Where a waiting caller's reply goes.
pub(super) enum ReplySink {
    /// One receiver.
    Once(oneshot::Sender<Reply>),
    /// Any number of receivers (see [`Router::expect_shared_reply`]).
    Shared(watch::Sender<Option<Reply>>),
}

impl ReplySink {
    /// Hands over the reply. Call it without holding a lock: it wakes the receiver's thread,
    /// and a lock held meanwhile makes that thread block on it as soon as it runs.
    pub(super) fn send(self, reply: Reply) {
        match self {
            Self::Once(tx) => {
                let _ = tx.send(reply);
            }
            Self::Shared(tx) => {
                tx.send_replace(Some(reply));
            }
        }
    }
}

impl Router {
    /// Registers a waiting caller; the reply arrives on the receiver.
    pub fn expect_reply(&self) -> (ReplyTo, oneshot::Receiver<Reply>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.register_reply(id, ReplySink::Once(tx));
        (id, rx)
    }

    /// Registers a waiting caller whose reply several futures await (clone the receiver): it
    /// holds `None` until the reply arrives, and is closed if none will.
    pub fn expect_shared_reply(&self) -> (ReplyTo, watch::Receiver<Option<Reply>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        self.register_reply(id, ReplySink::Shared(tx));
        (id, rx)
    }

    /// Registers a reply sink, unless the project was unloaded (a stale handle): the sink is
    /// then dropped at once, so the caller is told instead of waiting for ever. `close` sets
    /// `closed` before it clears the sinks, under the same lock.
    fn register_reply(&self, id: ReplyTo, sink: ReplySink) {
        let mut replies = lock(&self.replies);
        if !self.closed.load(Ordering::Acquire) {
            replies.insert(id, sink);
        }
    }

    /// Hands a reply to its caller, if it still waits.
    pub(super) fn reply(&self, to: ReplyTo, reply: Reply) {
        let sink = lock(&self.replies).remove(&to);
        if let Some(sink) = sink {
            sink.send(reply);
        }
    }

    /// Forgets a waiting caller that gave up (its reply, if it comes, is dropped).
    pub fn forget_reply(&self, id: ReplyTo) {
        lock(&self.replies).remove(&id);
    }

    /// Drops the reply channels `replies`: their callers learn that the request failed.
    pub fn fail_replies(&self, replies: &[ReplyTo]) {
        let mut pending = lock(&self.replies);
        for id in replies {
            pending.remove(id);
        }
    }
}
