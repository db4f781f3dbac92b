//! Commit batching: batches from the project's actors queued during one arbiter turn go to the
//! group-commit writer together; batches the store rejected are answered as failed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::super::super::error::OrchestrationError;
use super::super::super::messages::Envelope;
use super::{Router, Writer, lock};
use crate::store::writer::GroupCommitWriter;
use crate::store::{StoreError, Write};

impl Router {
    /// Installs the writer (once, at start).
    pub fn set_writer(&self, writer: Writer) {
        *lock(&self.writer) = Some(writer);
    }

    /// The writer's counters (commits, batches, writes), for benchmarks and diagnostics.
    pub fn writer_stats(&self) -> crate::store::writer::WriterStats {
        lock(&self.writer)
            .as_ref()
            .map(GroupCommitWriter::stats)
            .unwrap_or_default()
    }

    /// Whether the project's store fails to commit (disk full, I/O errors): its writer retries
    /// and everything waits behind it, so new runs should be refused rather than queued.
    pub fn store_stalled(&self) -> bool {
        lock(&self.writer)
            .as_ref()
            .is_some_and(GroupCommitWriter::is_stalled)
    }

    /// Commits `writes`, then delivers `messages`, now (from any thread).
    pub fn commit(&self, writes: Vec<Write>, messages: Vec<Envelope>) {
        if !writes.is_empty() || !messages.is_empty() {
            self.submit(vec![(writes, messages)]);
        }
    }

    /// Hands batches to the writer, in order.
    fn submit(&self, batches: Vec<(Vec<Write>, Vec<Envelope>)>) {
        let Some(writer) = lock(&self.writer).clone() else {
            return tracing::error!(project = %self.project, "dropping batches: the project is shut down");
        };
        if let Err(e) = writer.submit_all(batches) {
            tracing::error!(project = %self.project, error = %e, "dropping batches: the writer has stopped");
        }
    }

    /// Queues a batch from one of the project's actors. Batches queued while the arbiter works
    /// through its ready actors are handed to the writer together at the end of that turn, so
    /// the writer commits them in one transaction (e.g. a new execution and its assignment).
    pub fn queue_commit(self: &Arc<Self>, writes: Vec<Write>, messages: Vec<Envelope>) {
        if writes.is_empty() && messages.is_empty() {
            return;
        }
        lock(&self.outgoing).push((writes, messages));
        if !self.flush_scheduled.swap(true, Ordering::AcqRel) {
            let router = Arc::clone(self);
            actix_rt::spawn(async move { router.flush() });
        }
    }

    pub(super) fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::Release);
        let batches = std::mem::take(&mut *lock(&self.outgoing));
        self.submit(batches);
    }

    /// The store rejected batches for their contents (a constraint violation, an unencodable
    /// record): their effects must not happen. Callers waiting for a reply from those batches
    /// are told the request failed; commands to workers are dropped. (A commit that fails
    /// because of the disk or the database is retried by the writer until it succeeds, so it
    /// only ends up here if the project shuts down meanwhile.)
    pub fn commit_failed(&self, error: &StoreError, dropped: Vec<Vec<Envelope>>) {
        if error.stops_project() {
            self.fenced.store(true, Ordering::Release);
        }
        tracing::error!(project = %self.project, error = %error, "a commit was rejected by the store (or abandoned at shutdown); its effects were dropped");
        let failure = OrchestrationError::Unavailable(format!(
            "the change could not be saved ({})",
            error.code()
        ));
        for envelope in dropped.into_iter().flatten() {
            if let Envelope::Reply(to, reply) = envelope {
                self.reply(to, reply.failed(failure.clone()));
            }
        }
    }
}
