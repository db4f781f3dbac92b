//! [`MetricBatcher`]: collects metric entries and sends them as one [`AgentFrame::Metrics`]
//! every [`FLUSH_INTERVAL`] (or at once when [`MAX_BATCH`] are waiting), in the order they
//! were reported. Like logs, they are dropped while the agent is disconnected.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use coflux_core::protocol::agent::{AgentFrame, MetricEntry};

use super::link::Link;

/// How long an entry may wait for others to join its frame.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// The most entries sent in one frame.
pub const MAX_BATCH: usize = 500;

/// Batches metric entries onto the server link. Cheap to clone.
#[derive(Clone)]
pub struct MetricBatcher {
    link: Link,
    pending: Rc<RefCell<Vec<MetricEntry>>>,
}

impl MetricBatcher {
    /// A batcher sending over `link`.
    pub fn new(link: Link) -> Self {
        Self {
            link,
            pending: Rc::default(),
        }
    }

    /// Queues an entry; the first of a batch schedules its flush.
    pub fn push(&self, entry: MetricEntry) {
        let (first, full) = {
            let mut pending = self.pending.borrow_mut();
            pending.push(entry);
            (pending.len() == 1, pending.len() >= MAX_BATCH)
        };
        if full {
            self.flush();
        } else if first {
            let this = self.clone();
            actix_rt::spawn(async move {
                actix_rt::time::sleep(FLUSH_INTERVAL).await;
                this.flush();
            });
        }
    }

    /// Sends what is queued.
    pub fn flush(&self) {
        let entries = std::mem::take(&mut *self.pending.borrow_mut());
        if !entries.is_empty() {
            self.link.send_record(AgentFrame::Metrics(entries));
        }
    }
}
