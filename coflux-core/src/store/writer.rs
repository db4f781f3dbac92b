//! Group commit: one thread owns a [`ProjectStore`] and commits queued batches together.
//!
//! Actors [`submit`](GroupCommitWriter::submit) a batch of writes together with a follow-up
//! value `E`. The writer thread blocks for the first batch, takes every batch already queued
//! behind it (up to [`MAX_GROUP`]), applies all their writes in one transaction (one sync), and
//! then hands each batch's follow-up to `deliver`, in submission order. A follow-up is therefore
//! only seen once its writes are durable. A batch without writes is a barrier: it is delivered
//! after every batch submitted before it, without a transaction of its own.
//!
//! When a group fails because of what one batch contains (a constraint violation or an
//! unencodable record), the group is retried batch by batch, so the other batches are committed
//! and delivered as if they had been submitted alone; the failing batches are reported to
//! `on_error` and not delivered.
//!
//! When it fails for any other reason (I/O, a full disk, a locked database), nothing is
//! dropped: the actors have already moved on, so the writes must land. The writer keeps the
//! group and applies the same writes again, backing off from 10 ms to 1 s, until they commit;
//! batches queued meanwhile wait behind it, in order. While it retries, the writer is
//! [stalled](GroupCommitWriter::is_stalled), so callers can refuse new work instead of queueing
//! it. It gives up only once every handle is dropped (shutdown): a group that still fails is then
//! reported to `on_error`. A commit refused because the project's lease is lost, or because
//! the database no longer holds what this writer committed ([`StoreError::stops_project`]), is
//! never retried: it is reported at once, and the project is stopped and loaded again. (A
//! PostgreSQL session that was ended is a broken connection: the retry reconnects.)

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::{ProjectStore, StoreError, Write};
use crate::tuning::spin_until;

mod pool;
mod wal;

pub use pool::WriterPool;
pub use wal::{WalCheckpointer, WalRegistration};

/// A group stops taking further queued messages once it holds this many batches (the batches
/// handed over together by one [`GroupCommitWriter::submit_all`] always stay together).
pub const MAX_GROUP: usize = 4096;

/// The first pause before a failed commit is retried; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between two attempts at a failing commit.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// While a commit keeps failing, a warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

struct Batch<E> {
    writes: Vec<Write>,
    after: E,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    batches: AtomicU64,
    writes: AtomicU64,
    failures: AtomicU64,
    busy_ns: AtomicU64,
    /// Set while a commit fails for a reason other than its contents (and is being retried).
    stalled: AtomicBool,
    /// Set when the last handle is dropped: a failing commit is no longer retried.
    stopping: AtomicBool,
    /// Batches submitted and not yet delivered (or reported).
    pending: AtomicU64,
}

/// A snapshot of a writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Batches processed (committed, failed or empty).
    pub batches: u64,
    /// Writes committed.
    pub writes: u64,
    /// Transactions that failed (each attempt at a retried commit counts).
    pub failures: u64,
    /// Time spent committing (retries included) and delivering (not waiting or spinning for
    /// work), in nanoseconds.
    pub busy_ns: u64,
    /// Whether the store currently fails to commit (disk full, I/O errors) and the writer is
    /// retrying; everything queued waits.
    pub stalled: bool,
}

impl WriterStats {
    /// Batches per committed transaction (0 before the first commit).
    pub fn batches_per_commit(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.batches as f64 / self.commits as f64
        }
    }
}

/// Shared by a writer's handles: when the last one is dropped, the thread stops retrying a
/// failing commit (so a shutdown never waits for the disk); a pooled writer is scheduled once
/// more, to finish what is queued and close its store. It also wakes the writer for its
/// store's [`ProjectStore::maintain`] (the store holds it weakly, so the writer still ends with
/// its last handle).
struct LastHandle {
    counters: Arc<Counters>,
    pooled: Option<pool::Waker>,
    /// Wakes the writer without a batch (an empty message on a writer's own thread).
    nudge: Box<dyn Fn() + Send + Sync>,
}

impl LastHandle {
    /// Hands `store` a [`super::StoreWake`] reaching the writer through its handles, once they exist.
    fn wake_for(store: &mut dyn ProjectStore) -> Arc<OnceLock<Weak<LastHandle>>> {
        let slot: Arc<OnceLock<Weak<LastHandle>>> = Arc::default();
        let reach = Arc::clone(&slot);
        store.set_wake(Arc::new(move || {
            if let Some(last) = reach.get().and_then(Weak::upgrade) {
                (last.nudge)();
            }
        }));
        slot
    }
}

impl Drop for LastHandle {
    fn drop(&mut self) {
        self.counters.stopping.store(true, Ordering::Release);
        if let Some(wake) = &self.pooled {
            wake.wake();
        }
    }
}

/// A handle to a group-commit writer thread. Clone it to submit from several places; the
/// thread finishes what is queued and exits when the last handle is dropped.
pub struct GroupCommitWriter<E> {
    /// Each message holds one or more batches handed over together.
    sender: mpsc::Sender<Vec<Batch<E>>>,
    counters: Arc<Counters>,
    /// For a writer on a [`WriterPool`]: schedules its work on the pool's thread.
    wake: Option<pool::Waker>,
    last: Arc<LastHandle>,
}

impl<E> Clone for GroupCommitWriter<E> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            counters: Arc::clone(&self.counters),
            wake: self.wake.clone(),
            last: Arc::clone(&self.last),
        }
    }
}

impl<E> fmt::Debug for GroupCommitWriter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommitWriter")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The writer thread's callbacks.
struct Sinks<D, F> {
    deliver: D,
    on_error: F,
}

impl<E: Send + 'static> GroupCommitWriter<E> {
    /// Starts a writer thread named `thread_name` that owns `store`. `deliver` receives each
    /// batch's follow-up once its writes are committed; `on_error` receives the errors of
    /// batches rejected for their contents (and, at shutdown, of a commit still failing)
    /// together with the follow-ups that will not be delivered (so waiting callers can be
    /// told). Both run on the writer thread.
    ///
    /// If the thread cannot be started, the failure is logged and every
    /// [`submit`](Self::submit) returns [`StoreError::WriterStopped`].
    pub fn spawn(
        store: Box<dyn ProjectStore>,
        thread_name: impl Into<String>,
        deliver: impl FnMut(E) + Send + 'static,
        on_error: impl FnMut(StoreError, Vec<E>) + Send + 'static,
    ) -> Self {
        Self::spawn_with_spin(store, thread_name, Duration::ZERO, deliver, on_error)
    }

    /// As [`spawn`](Self::spawn), but when its queue runs empty the thread keeps polling it for
    /// `spin` before it sleeps. Waking a sleeping thread costs tens of microseconds on small
    /// virtual machines, which dominates a chain of dependent commits (a task awaiting the
    /// previous one); spinning briefly trades a little CPU, only while the project is busy, for
    /// that latency.
    pub fn spawn_with_spin(
        store: Box<dyn ProjectStore>,
        thread_name: impl Into<String>,
        spin: Duration,
        deliver: impl FnMut(E) + Send + 'static,
        on_error: impl FnMut(StoreError, Vec<E>) + Send + 'static,
    ) -> Self {
        let mut store = store;
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let name = thread_name.into();
        let slot = LastHandle::wake_for(store.as_mut());
        let nudge = sender.clone();
        let last = Arc::new(LastHandle {
            counters: Arc::clone(&counters),
            pooled: None,
            nudge: Box::new(move || drop(nudge.send(Vec::new()))),
        });
        let _ = slot.set(Arc::downgrade(&last));
        let mut thread = WriterThread::new(store, Arc::clone(&counters), name.clone());
        let spawned = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let mut sinks = Sinks { deliver, on_error };
                thread.run(&receiver, spin, &mut sinks);
            });
        if let Err(e) = spawned {
            tracing::error!(thread = %name, error = %e, "could not start the store writer thread");
        }
        Self {
            sender,
            counters,
            wake: None,
            last,
        }
    }

    /// As [`spawn`](Self::spawn), but on a thread of `pool`, shared with other writers: the
    /// store's batches are still committed in order, one group at a time, by one thread. `name`
    /// names the writer in logs. The store is closed once the last handle is dropped and what
    /// was queued is committed.
    pub fn spawn_on(
        pool: &WriterPool,
        store: Box<dyn ProjectStore>,
        name: impl Into<String>,
        deliver: impl FnMut(E) + Send + 'static,
        on_error: impl FnMut(StoreError, Vec<E>) + Send + 'static,
    ) -> Self {
        let mut store = store;
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let slot = LastHandle::wake_for(store.as_mut());
        let thread = WriterThread::new(store, Arc::clone(&counters), name.into());
        let job = pool::PooledWriter::new(thread, receiver, Sinks { deliver, on_error });
        let wake = pool.register(Box::new(job));
        let nudge = wake.clone();
        let last = Arc::new(LastHandle {
            counters: Arc::clone(&counters),
            pooled: Some(wake.clone()),
            nudge: Box::new(move || nudge.wake()),
        });
        let _ = slot.set(Arc::downgrade(&last));
        Self {
            sender,
            counters,
            wake: Some(wake),
            last,
        }
    }

    /// Queues `writes`; `after` is delivered once they are committed (or, for an empty batch,
    /// once every earlier batch has been handled). Fails only when the writer thread is gone.
    pub fn submit(&self, writes: Vec<Write>, after: E) -> Result<(), StoreError> {
        self.submit_all(vec![(writes, after)])
    }

    /// Queues several batches at once, in order, as [`submit`](Self::submit) would one by
    /// one; the writer receives them together, so they always land in the same group commit
    /// (it cannot wake up and commit the first before the others are queued).
    pub fn submit_all(&self, batches: Vec<(Vec<Write>, E)>) -> Result<(), StoreError> {
        if batches.is_empty() {
            return Ok(());
        }
        let batches: Vec<Batch<E>> = batches
            .into_iter()
            .map(|(writes, after)| Batch { writes, after })
            .collect();
        self.counters
            .pending
            .fetch_add(batches.len() as u64, Ordering::AcqRel);
        let sent = self.sender.send(batches);
        if let Some(wake) = &self.wake {
            wake.wake();
        }
        sent.map_err(|e| {
            self.counters
                .pending
                .fetch_sub(e.0.len() as u64, Ordering::AcqRel);
            StoreError::WriterStopped
        })
    }
}

impl<E> GroupCommitWriter<E> {
    /// The writer's counters so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            busy_ns: self.counters.busy_ns.load(Ordering::Relaxed),
            stalled: self.is_stalled(),
        }
    }

    /// Whether the store currently fails to commit (disk full, I/O errors): the writer retries
    /// the same group until it succeeds, and everything submitted meanwhile waits behind it.
    pub fn is_stalled(&self) -> bool {
        self.counters.stalled.load(Ordering::Acquire)
    }

    /// Whether every batch submitted so far has been committed (or rejected) and delivered.
    pub fn is_idle(&self) -> bool {
        self.counters.pending.load(Ordering::Acquire) == 0
    }
}

/// The state of a writer: its store and what a group needs.
struct WriterThread<E> {
    store: Box<dyn ProjectStore>,
    counters: Arc<Counters>,
    name: String,
    group: Vec<Batch<E>>,
    writes: Vec<Write>,
    ends: Vec<usize>,
}

impl<E> WriterThread<E> {
    fn new(store: Box<dyn ProjectStore>, counters: Arc<Counters>, name: String) -> Self {
        Self {
            store,
            counters,
            name,
            group: Vec::new(),
            writes: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The thread's loop: runs until every handle is dropped and the queue is empty.
    fn run(
        &mut self,
        receiver: &mpsc::Receiver<Vec<Batch<E>>>,
        spin: Duration,
        sinks: &mut Sinks<impl FnMut(E), impl FnMut(StoreError, Vec<E>)>,
    ) {
        while let Some(first) = next_batches(receiver, spin) {
            self.commit_group(first, receiver, sinks);
            self.store.maintain();
        }
    }

    /// Commits `first` and what is queued behind it (up to [`MAX_GROUP`] batches) in one
    /// transaction, then delivers their follow-ups.
    fn commit_group(
        &mut self,
        first: Vec<Batch<E>>,
        receiver: &mpsc::Receiver<Vec<Batch<E>>>,
        sinks: &mut Sinks<impl FnMut(E), impl FnMut(StoreError, Vec<E>)>,
    ) {
        let counters = Arc::clone(&self.counters);
        let _busy = BusyTimer(&counters.busy_ns, Instant::now());
        let mut group = std::mem::take(&mut self.group);
        let mut writes = std::mem::take(&mut self.writes);
        let mut ends = std::mem::take(&mut self.ends);
        group.extend(first);
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(batches) => group.extend(batches),
                Err(_) => break,
            }
        }
        let count = group.len() as u64;

        writes.clear();
        ends.clear();
        for batch in &mut group {
            writes.append(&mut batch.writes);
            ends.push(writes.len());
        }
        counters.batches.fetch_add(count, Ordering::Relaxed);

        if writes.is_empty() {
            group
                .drain(..)
                .for_each(|batch| (sinks.deliver)(batch.after));
        } else {
            match self.apply(&writes) {
                Ok(()) => {
                    tracing::trace!(
                        batches = group.len(),
                        writes = writes.len(),
                        "group committed"
                    );
                    group
                        .drain(..)
                        .for_each(|batch| (sinks.deliver)(batch.after));
                }
                Err(error) => {
                    let mut start = 0;
                    let non_empty = ends
                        .iter()
                        .filter(|&&end| std::mem::replace(&mut start, end) < end)
                        .count();
                    if non_empty > 1 && is_batch_error(&error) {
                        tracing::debug!(%error, batches = group.len(), "group commit failed; retrying batch by batch");
                        self.apply_one_by_one(&mut group, &writes, &ends, sinks);
                    } else {
                        self.report(error, group.drain(..).map(|b| b.after).collect(), sinks);
                    }
                }
            }
        }
        counters.pending.fetch_sub(count, Ordering::AcqRel);
        writes.clear();
        self.group = group;
        self.writes = writes;
        self.ends = ends;
    }

    /// Commits `writes`. While the store fails for a reason other than their contents, the
    /// same writes are applied again with backoff, until they commit or the writer stops;
    /// returns the error of writes rejected for their contents, or the last one at shutdown.
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let counters = Arc::clone(&self.counters);
        let mut backoff = FIRST_BACKOFF;
        // The first failure and the last warning, once failing.
        let mut failing: Option<(Instant, Instant)> = None;
        let mut attempts = 0u64;
        loop {
            let error = match self.store.apply(writes) {
                Ok(()) => {
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    counters
                        .writes
                        .fetch_add(writes.len() as u64, Ordering::Relaxed);
                    if let Some((since, _)) = failing {
                        counters.stalled.store(false, Ordering::Release);
                        tracing::info!(writer = %self.name, attempts, failed_for_ms = since.elapsed().as_millis() as u64, "the store commits again; resuming");
                    }
                    return Ok(());
                }
                Err(error) => error,
            };
            counters.failures.fetch_add(1, Ordering::Relaxed);
            attempts += 1;
            if error.stops_project() {
                // Another node owns the project now (or the session is gone): retrying cannot
                // succeed, and must not; the project is stopped and loaded afresh.
                counters.stalled.store(false, Ordering::Release);
                return Err(error);
            }
            if is_batch_error(&error) {
                // The store answers again, these writes are the problem.
                if failing.is_some() {
                    counters.stalled.store(false, Ordering::Release);
                    tracing::info!(writer = %self.name, attempts, "the store answers again; resuming");
                }
                return Err(error);
            }
            let now = Instant::now();
            match &mut failing {
                None => {
                    counters.stalled.store(true, Ordering::Release);
                    tracing::warn!(writer = %self.name, %error, "the store cannot commit (disk full?); retrying until it can, nothing is dropped");
                    failing = Some((now, now));
                }
                Some((since, warned)) if now.duration_since(*warned) >= WARN_EVERY => {
                    tracing::warn!(writer = %self.name, %error, attempts, failing_for_s = since.elapsed().as_secs(), "the store still cannot commit; retrying");
                    *warned = now;
                }
                Some(_) => {}
            }
            if !pause(backoff, &counters.stopping) {
                return Err(error);
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Reports batches that will not be delivered.
    fn report(
        &self,
        error: StoreError,
        dropped: Vec<E>,
        sinks: &mut Sinks<impl FnMut(E), impl FnMut(StoreError, Vec<E>)>,
    ) {
        if error.stops_project() {
            tracing::warn!(writer = %self.name, %error, batches = dropped.len(), "the project's lease or session is lost; dropping what it held");
        } else if is_batch_error(&error) {
            tracing::warn!(writer = %self.name, %error, "store batch rejected");
        } else {
            tracing::error!(writer = %self.name, %error, batches = dropped.len(), "the writer stopped while the store could not commit; dropping what it held");
        }
        (sinks.on_error)(error, dropped);
    }

    /// After a group failed because of one batch's contents: commits each batch on its own,
    /// delivering those that succeed and reporting those rejected. Batches that fail for
    /// another reason are retried as a group is; at shutdown the rest are dropped with them.
    fn apply_one_by_one(
        &mut self,
        group: &mut Vec<Batch<E>>,
        writes: &[Write],
        ends: &[usize],
        sinks: &mut Sinks<impl FnMut(E), impl FnMut(StoreError, Vec<E>)>,
    ) {
        let mut start = 0;
        let mut batches = group.drain(..).zip(ends);
        while let Some((batch, &end)) = batches.next() {
            let own = &writes[start..end];
            start = end;
            if own.is_empty() {
                (sinks.deliver)(batch.after);
                continue;
            }
            match self.apply(own) {
                Ok(()) => (sinks.deliver)(batch.after),
                Err(error) if is_batch_error(&error) => {
                    self.report(error, vec![batch.after], sinks);
                }
                Err(error) => {
                    let dropped = std::iter::once(batch.after)
                        .chain(batches.map(|(b, _)| b.after))
                        .collect();
                    return self.report(error, dropped, sinks);
                }
            }
        }
    }
}

/// Sleeps for `total`, or less if `stopping` is set; returns whether the writer goes on.
fn pause(total: Duration, stopping: &AtomicBool) -> bool {
    let deadline = Instant::now() + total;
    loop {
        if stopping.load(Ordering::Acquire) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(FIRST_BACKOFF));
    }
}

/// Adds the time since its start to a counter when dropped (at the end of each group).
struct BusyTimer<'a>(&'a AtomicU64, Instant);

impl Drop for BusyTimer<'_> {
    fn drop(&mut self) {
        let ns = u64::try_from(self.1.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(ns, Ordering::Relaxed);
    }
}

/// The next batches: polled for up to `spin`, then waited for. `None` once every handle is
/// gone.
fn next_batches<E>(
    receiver: &mpsc::Receiver<Vec<Batch<E>>>,
    spin: Duration,
) -> Option<Vec<Batch<E>>> {
    let polled = spin_until(spin, || match receiver.try_recv() {
        Ok(batch) => Some(Some(batch)),
        Err(mpsc::TryRecvError::Disconnected) => Some(None),
        Err(mpsc::TryRecvError::Empty) => None,
    });
    polled.unwrap_or_else(|| receiver.recv().ok())
}

/// Whether an error is caused by the contents of the writes (so other batches may succeed on
/// their own), rather than by the database or the disk.
fn is_batch_error(error: &StoreError) -> bool {
    match error {
        StoreError::Corrupt(_) | StoreError::Missing(_) => true,
        // Class 23: integrity constraint violation (e.g. a duplicate key).
        StoreError::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
            e.code == rusqlite::ErrorCode::ConstraintViolation
        }
        StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
