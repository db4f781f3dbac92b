//! [`WriterPool`]: a fixed set of threads shared by many group-commit writers.
//!
//! Each writer is pinned to one thread of the pool (the least loaded when it is created), so
//! its groups are committed in order, one at a time, as on a thread of its own. A submission
//! schedules the writer on its thread (once: a writer already scheduled is not queued again);
//! the thread takes one group of it (everything queued, up to `MAX_GROUP` batches: one
//! transaction), then moves on to the next scheduled writer, and schedules it again if more
//! arrived meanwhile. Idle writers cost no thread. Once its last handle is dropped, a writer
//! commits what is left and closes its store.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::{Batch, Sinks, StoreError, WriterThread};
use crate::tuning::spin_until;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One writer's work, run by its pool thread.
pub(super) trait Job: Send {
    /// Commits one group if any is queued. Returns `None` once every handle is gone and the
    /// queue is empty (the job is then dropped), else whether it committed a group.
    fn run(&mut self) -> Option<bool>;
}

/// A writer's state on the pool.
pub(super) struct PooledWriter<E, D, F> {
    thread: WriterThread<E>,
    receiver: mpsc::Receiver<Vec<Batch<E>>>,
    sinks: Sinks<D, F>,
}

impl<E, D, F> PooledWriter<E, D, F> {
    pub(super) fn new(
        thread: WriterThread<E>,
        receiver: mpsc::Receiver<Vec<Batch<E>>>,
        sinks: Sinks<D, F>,
    ) -> Self {
        Self {
            thread,
            receiver,
            sinks,
        }
    }
}

impl<E, D, F> Job for PooledWriter<E, D, F>
where
    E: Send,
    D: FnMut(E) + Send,
    F: FnMut(StoreError, Vec<E>) + Send,
{
    fn run(&mut self) -> Option<bool> {
        let ran = match self.receiver.try_recv() {
            Ok(first) => {
                self.thread
                    .commit_group(first, &self.receiver, &mut self.sinks);
                Some(true)
            }
            Err(mpsc::TryRecvError::Empty) => Some(false),
            Err(mpsc::TryRecvError::Disconnected) => None,
        };
        // Woken by its store, or after a group: what the store asked for.
        self.thread.store.maintain();
        ran
    }
}

/// A writer registered on a pool thread.
struct Entry {
    /// Set while it is in its thread's queue.
    scheduled: AtomicBool,
    job: Mutex<Option<Box<dyn Job>>>,
    thread: Arc<PoolThread>,
}

/// Schedules a pooled writer on its thread.
#[derive(Clone)]
pub(super) struct Waker(Arc<Entry>);

impl Waker {
    /// Queues the writer on its thread unless it is queued already.
    pub(super) fn wake(&self) {
        if !self.0.scheduled.swap(true, Ordering::AcqRel) {
            self.0.thread.push(Arc::clone(&self.0));
        }
    }
}

/// One thread of the pool and its queue of scheduled writers.
struct PoolThread {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// How many writers are queued (read without the lock while spinning).
    queued: AtomicUsize,
    /// Writers pinned to this thread and not yet closed.
    writers: AtomicUsize,
    /// Set when the pool is dropped: the thread ends once its writers are closed.
    closed: AtomicBool,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Arc<Entry>>,
    sleeping: bool,
}

impl PoolThread {
    fn push(&self, entry: Arc<Entry>) {
        let mut queue = lock(&self.queue);
        queue.entries.push_back(entry);
        self.queued.fetch_add(1, Ordering::Release);
        let sleeping = queue.sleeping;
        drop(queue);
        if sleeping {
            self.ready.notify_one();
        }
    }

    fn pop(&self) -> Option<Arc<Entry>> {
        let entry = lock(&self.queue).entries.pop_front();
        if entry.is_some() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        entry
    }

    /// Whether the thread may end: its pool is gone and so are its writers.
    fn finished(&self) -> bool {
        self.closed.load(Ordering::Acquire) && self.writers.load(Ordering::Acquire) == 0
    }

    /// The next scheduled writer: polled for up to `spin`, then waited for. `None` once the
    /// thread is [finished](Self::finished).
    fn next(&self, spin: Duration) -> Option<Arc<Entry>> {
        let polled = spin_until(spin, || {
            (self.queued.load(Ordering::Acquire) > 0)
                .then(|| self.pop())
                .flatten()
        });
        if polled.is_some() {
            return polled;
        }
        let mut queue = lock(&self.queue);
        loop {
            if let Some(entry) = queue.entries.pop_front() {
                queue.sleeping = false;
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return Some(entry);
            }
            if self.finished() {
                return None;
            }
            queue.sleeping = true;
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// The thread's loop, until its pool is dropped and its writers are closed.
    fn run(&self, spin: Duration) {
        while let Some(entry) = self.next(spin) {
            // Cleared before the job looks at its queue: a batch submitted from now on
            // schedules it again.
            entry.scheduled.store(false, Ordering::Release);
            let mut job = lock(&entry.job);
            let Some(running) = job.as_mut() else {
                continue;
            };
            match running.run() {
                Some(true) => {
                    drop(job);
                    // More may have arrived during the commit: look again after the others.
                    Waker(entry).wake();
                }
                Some(false) => {}
                None => {
                    // Every handle is gone and everything is committed: close the store.
                    job.take();
                    self.writers.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }
}

/// A fixed number of writer threads shared by writers (see the module documentation).
/// Threads are started as writers need them, up to the pool's size, and spin for up to
/// `spin` for more work before they sleep.
pub struct WriterPool {
    size: usize,
    spin: Duration,
    name: String,
    threads: Mutex<Vec<Arc<PoolThread>>>,
}

impl std::fmt::Debug for WriterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterPool")
            .field("size", &self.size)
            .field("threads", &lock(&self.threads).len())
            .finish()
    }
}

impl Drop for WriterPool {
    fn drop(&mut self) {
        for thread in lock(&self.threads).iter() {
            thread.closed.store(true, Ordering::Release);
            // Wakes a sleeping thread so it can end (under the lock: it cannot miss it).
            let _queue = lock(&thread.queue);
            thread.ready.notify_all();
        }
    }
}

impl WriterPool {
    /// A pool of up to `size` (at least one) threads named `<name>-<i>`.
    pub fn new(size: usize, spin: Duration, name: impl Into<String>) -> Self {
        Self {
            size: size.max(1),
            spin,
            name: name.into(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// How many threads the pool has started.
    pub fn threads(&self) -> usize {
        lock(&self.threads).len()
    }

    /// Pins a writer to the least loaded thread (starting one if the pool is not full).
    pub(super) fn register(&self, job: Box<dyn Job>) -> Waker {
        let thread = self.pick();
        thread.writers.fetch_add(1, Ordering::AcqRel);
        Waker(Arc::new(Entry {
            scheduled: AtomicBool::new(false),
            job: Mutex::new(Some(job)),
            thread,
        }))
    }

    fn pick(&self) -> Arc<PoolThread> {
        let mut threads = lock(&self.threads);
        let least = threads
            .iter()
            .min_by_key(|t| t.writers.load(Ordering::Acquire))
            .cloned();
        if let Some(thread) = &least
            && (threads.len() >= self.size || thread.writers.load(Ordering::Acquire) == 0)
        {
            return Arc::clone(thread);
        }
        let thread = Arc::new(PoolThread {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            queued: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        let run = Arc::clone(&thread);
        let spin = self.spin;
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{}", self.name, threads.len()))
            .spawn(move || run.run(spin));
        match spawned {
            Ok(_) => {
                threads.push(Arc::clone(&thread));
                thread
            }
            Err(e) => {
                tracing::error!(error = %e, "could not start a store writer thread");
                // Share an existing thread; with none, the writer's batches wait forever, as
                // those of a writer whose own thread could not start.
                least.unwrap_or(thread)
            }
        }
    }
}
