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
//! `on_error` and not delivered. When it fails for any other reason (I/O, a locked database),
//! the whole group is reported once and none of it is delivered. The writer keeps running
//! either way.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ProjectStore, StoreError, Write};

/// A group stops taking further queued messages once it holds this many batches (the batches
/// handed over together by one [`GroupCommitWriter::submit_all`] always stay together).
pub const MAX_GROUP: usize = 4096;

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
    /// Transactions that failed.
    pub failures: u64,
    /// Time spent committing and delivering (not waiting or spinning for work), in
    /// nanoseconds.
    pub busy_ns: u64,
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

/// A handle to a group-commit writer thread. Clone it to submit from several places; the
/// thread finishes what is queued and exits when the last handle is dropped.
pub struct GroupCommitWriter<E> {
    /// Each message holds one or more batches handed over together.
    sender: mpsc::Sender<Vec<Batch<E>>>,
    counters: Arc<Counters>,
}

impl<E> Clone for GroupCommitWriter<E> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            counters: Arc::clone(&self.counters),
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

impl<E: Send + 'static> GroupCommitWriter<E> {
    /// Starts a writer thread named `thread_name` that owns `store`. `deliver` receives each
    /// batch's follow-up once its writes are committed; `on_error` receives the errors of
    /// failed commits together with the follow-ups that will not be delivered (so waiting
    /// callers can be told). Both run on the writer thread.
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
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let name = thread_name.into();
        let spawned = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                run(store, &receiver, spin, &thread_counters, deliver, on_error);
            });
        if let Err(e) = spawned {
            tracing::error!(thread = %name, error = %e, "could not start the store writer thread");
        }
        Self { sender, counters }
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
        let batches = batches
            .into_iter()
            .map(|(writes, after)| Batch { writes, after })
            .collect();
        self.sender
            .send(batches)
            .map_err(|_| StoreError::WriterStopped)
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
        }
    }
}

/// The writer thread's loop: runs until every handle is dropped and the queue is empty.
fn run<E>(
    mut store: Box<dyn ProjectStore>,
    receiver: &mpsc::Receiver<Vec<Batch<E>>>,
    spin: Duration,
    counters: &Counters,
    mut deliver: impl FnMut(E),
    mut on_error: impl FnMut(StoreError, Vec<E>),
) {
    let mut group: Vec<Batch<E>> = Vec::new();
    let mut writes: Vec<Write> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    while let Some(first) = next_batches(receiver, spin) {
        let _busy = BusyTimer(&counters.busy_ns, Instant::now());
        group.extend(first);
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(batches) => group.extend(batches),
                Err(_) => break,
            }
        }

        writes.clear();
        ends.clear();
        for batch in &mut group {
            writes.append(&mut batch.writes);
            ends.push(writes.len());
        }
        counters
            .batches
            .fetch_add(group.len() as u64, Ordering::Relaxed);

        if writes.is_empty() {
            group.drain(..).for_each(|batch| deliver(batch.after));
            continue;
        }
        match store.apply(&writes) {
            Ok(()) => {
                tracing::trace!(
                    batches = group.len(),
                    writes = writes.len(),
                    "group committed"
                );
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .writes
                    .fetch_add(writes.len() as u64, Ordering::Relaxed);
                group.drain(..).for_each(|batch| deliver(batch.after));
            }
            Err(error) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                let mut start = 0;
                let non_empty = ends
                    .iter()
                    .filter(|&&end| std::mem::replace(&mut start, end) < end)
                    .count();
                if non_empty > 1 && is_batch_error(&error) {
                    tracing::debug!(%error, batches = group.len(), "group commit failed; retrying batch by batch");
                    apply_one_by_one(
                        store.as_mut(),
                        &mut group,
                        &writes,
                        &ends,
                        counters,
                        &mut deliver,
                        &mut on_error,
                    );
                } else {
                    tracing::warn!(%error, batches = group.len(), "group commit failed");
                    on_error(error, group.drain(..).map(|b| b.after).collect());
                }
            }
        }
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
    if !spin.is_zero() {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            match receiver.try_recv() {
                Ok(batch) => return Some(batch),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) if start.elapsed() >= spin => break,
                Err(mpsc::TryRecvError::Empty) => polls = spin_pause(polls),
            }
        }
    }
    receiver.recv().ok()
}

/// One pause of a polling loop; returns the updated poll count. Every few polls it yields the
/// CPU, so a spinning thread that shares its core with another runnable thread (another
/// spinner, or the thread it waits for) lets it run instead of holding the core for its
/// whole time slice.
pub(crate) fn spin_pause(polls: u32) -> u32 {
    if polls % 32 == 31 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
    polls.wrapping_add(1)
}

/// After a group failed because of one batch's contents: commits each batch on its own,
/// delivering those that succeed. Stops applying at the first error that is not a batch's
/// fault (the remaining batches are dropped with it).
fn apply_one_by_one<E>(
    store: &mut dyn ProjectStore,
    group: &mut Vec<Batch<E>>,
    writes: &[Write],
    ends: &[usize],
    counters: &Counters,
    deliver: &mut impl FnMut(E),
    on_error: &mut impl FnMut(StoreError, Vec<E>),
) {
    let mut start = 0;
    let mut batches = group.drain(..).zip(ends);
    while let Some((batch, &end)) = batches.next() {
        let own = &writes[start..end];
        start = end;
        if own.is_empty() {
            deliver(batch.after);
            continue;
        }
        match store.apply(own) {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .writes
                    .fetch_add(own.len() as u64, Ordering::Relaxed);
                deliver(batch.after);
            }
            Err(error) if is_batch_error(&error) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "store batch rejected");
                on_error(error, vec![batch.after]);
            }
            Err(error) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "group commit failed");
                let dropped = std::iter::once(batch.after)
                    .chain(batches.map(|(b, _)| b.after))
                    .collect();
                on_error(error, dropped);
                return;
            }
        }
    }
}

/// Whether an error is caused by the contents of the writes (so other batches may succeed on
/// their own), rather than by the database or the disk.
fn is_batch_error(error: &StoreError) -> bool {
    match error {
        StoreError::Corrupt(_) => true,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
            e.code == rusqlite::ErrorCode::ConstraintViolation
        }
        StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Barrier, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::{
        Environment, EnvironmentId, EnvironmentName, EnvironmentState, ExecutionResult, RunId,
        RunRecord, StepId, StepOptions, StepRecord, TargetKind, TargetRef, Value,
    };
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Durability, ProjectSnapshot, RunSnapshot, RunSummary};

    /// Holds every `apply` until `open` is set, so tests can queue batches behind the first
    /// one; the n-th `apply` fails with an I/O error when `failing[n]` is true.
    struct GatedStore<S> {
        inner: S,
        open: Arc<AtomicBool>,
        failing: Vec<bool>,
        calls: usize,
    }

    impl<S: ProjectStore> ProjectStore for GatedStore<S> {
        fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
            while !self.open.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.calls += 1;
            if self.failing.get(self.calls - 1).copied().unwrap_or(false) {
                return Err(StoreError::Io(std::io::Error::other("disk on fire")));
            }
            self.inner.apply(writes)
        }
        fn load(&self) -> Result<ProjectSnapshot, StoreError> {
            self.inner.load()
        }
        fn load_run(&self, run: RunId) -> Result<Option<RunSnapshot>, StoreError> {
            self.inner.load_run(run)
        }
        fn list_runs(
            &self,
            env: Option<EnvironmentId>,
            limit: usize,
        ) -> Result<Vec<RunSummary>, StoreError> {
            self.inner.list_runs(env, limit)
        }
        fn manifests(
            &self,
            env: EnvironmentId,
        ) -> Result<Vec<crate::model::TargetDefinition>, StoreError> {
            self.inner.manifests(env)
        }
    }

    fn gated(inner: SqliteStore, failing: Vec<bool>) -> (Box<dyn ProjectStore>, Arc<AtomicBool>) {
        let open = Arc::new(AtomicBool::new(false));
        let store = GatedStore {
            inner,
            open: Arc::clone(&open),
            failing,
            calls: 0,
        };
        (Box::new(store), open)
    }

    fn setup_writes() -> Vec<Write> {
        vec![
            Write::CreateEnvironment(Environment {
                id: EnvironmentId(1),
                name: EnvironmentName::new("production").unwrap(),
                parent: None,
                state: EnvironmentState::Active,
                created_at: 1,
            }),
            Write::CreateRun(RunRecord {
                id: RunId(1),
                environment: EnvironmentId(1),
                parent_execution: None,
                created_at: 1,
            }),
        ]
    }

    /// One step with one execution in run 1.
    fn step_batch(number: u32) -> Vec<Write> {
        let id = StepId {
            run: RunId(1),
            number,
        };
        vec![
            Write::CreateStep(Box::new(StepRecord {
                id,
                parent_execution: None,
                target: TargetRef::new("bench", "task"),
                kind: TargetKind::Task,
                arguments: vec![Value::raw(serde_json::json!(number))],
                options: StepOptions::default(),
                cache_key: None,
                memo_key: None,
                created_at: 2,
            })),
            Write::CreateExecution {
                id: id.execution(1),
                environment: EnvironmentId(1),
                execute_after: None,
                created_at: 2,
                dependencies: Default::default(),
            },
        ]
    }

    fn result_batch(number: u32) -> Vec<Write> {
        vec![Write::RecordResult {
            execution: StepId {
                run: RunId(1),
                number,
            }
            .execution(1),
            result: ExecutionResult::Value {
                value: Value::null(),
            },
            at: 3,
        }]
    }

    /// Collects delivered values; `wait` returns them once `n` have arrived.
    #[derive(Clone, Default)]
    struct Sink<T>(Arc<Mutex<Vec<T>>>);

    impl<T: Clone> Sink<T> {
        fn push(&self, value: T) {
            self.0.lock().unwrap().push(value);
        }
        fn wait(&self, n: usize) -> Vec<T> {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let items = self.0.lock().unwrap().clone();
                if items.len() >= n || Instant::now() > deadline {
                    return items;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    #[test]
    fn store_writer_groups_and_delivers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.sqlite");
        let (store, open) = gated(
            SqliteStore::open(&path, Durability::Normal).unwrap(),
            Vec::new(),
        );
        let delivered: Sink<(usize, u32)> = Sink::default();
        let errors: Sink<String> = Sink::default();
        let (d, e) = (delivered.clone(), errors.clone());
        let writer = GroupCommitWriter::spawn(
            store,
            "test-writer",
            move |v| d.push(v),
            move |err, _| e.push(err.to_string()),
        );
        writer.submit(setup_writes(), (usize::MAX, 0)).unwrap();

        const THREADS: usize = 4;
        const PER_THREAD: u32 = 250;
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let writer = writer.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..PER_THREAD {
                        let number = t as u32 * PER_THREAD + i + 1;
                        // Every third batch is an empty barrier.
                        let writes = if i % 3 == 2 {
                            Vec::new()
                        } else {
                            step_batch(number)
                        };
                        writer.submit(writes, (t, i)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        open.store(true, Ordering::Release);

        let total = THREADS * PER_THREAD as usize + 1;
        let items = delivered.wait(total);
        assert_eq!(items.len(), total);
        assert!(errors.wait(0).is_empty());
        assert_eq!(items[0], (usize::MAX, 0));
        let mut next: HashMap<usize, u32> = HashMap::new();
        for &(t, i) in &items[1..] {
            let expected = next.entry(t).or_insert(0);
            assert_eq!(i, *expected, "thread {t} delivered out of order");
            *expected += 1;
        }
        let stats = writer.stats();
        assert_eq!(stats.batches, total as u64);
        assert!(stats.commits < stats.batches / 10, "{stats:?}");
        assert!(stats.batches_per_commit() > 10.0);
        assert_eq!(stats.failures, 0);

        drop(writer);
        let reader = SqliteStore::open_reader(&path).unwrap();
        let run = reader.load_run(RunId(1)).unwrap().unwrap();
        let expected_steps = (0..THREADS as u32 * PER_THREAD)
            .filter(|n| (n % PER_THREAD) % 3 != 2)
            .count();
        assert_eq!(run.steps.len(), expected_steps);
        assert_eq!(run.executions.len(), expected_steps);
    }

    #[test]
    fn store_writer_commits_batches_handed_over_together_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.sqlite");
        let store = Box::new(SqliteStore::open(&path, Durability::Normal).unwrap());
        let delivered: Sink<u32> = Sink::default();
        let d = delivered.clone();
        let writer = GroupCommitWriter::spawn(store, "test-writer", move |v| d.push(v), |_, _| {});
        writer.submit(setup_writes(), 0).unwrap();
        delivered.wait(1);
        const PAIRS: u32 = 50;
        for pair in 0..PAIRS {
            let (a, b) = (2 * pair + 1, 2 * pair + 2);
            writer
                .submit_all(vec![(step_batch(a), a), (step_batch(b), b)])
                .unwrap();
            // One pair at a time: the writer never sees two pairs queued together.
            delivered.wait(1 + b as usize);
        }
        let items = delivered.wait(1 + 2 * PAIRS as usize);
        assert_eq!(items, (0..=2 * PAIRS).collect::<Vec<_>>());
        let stats = writer.stats();
        assert_eq!(
            stats.commits,
            1 + u64::from(PAIRS),
            "each pair in one transaction"
        );
        assert_eq!(stats.batches, 1 + 2 * u64::from(PAIRS));
    }

    #[test]
    fn store_writer_isolates_a_rejected_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, open) = gated(
            SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap(),
            Vec::new(),
        );
        let delivered: Sink<u32> = Sink::default();
        let errors: Sink<String> = Sink::default();
        let (d, e) = (delivered.clone(), errors.clone());
        let writer = GroupCommitWriter::spawn(
            store,
            "test-writer",
            move |v| d.push(v),
            move |err, _| e.push(err.code().to_owned()),
        );
        writer.submit(setup_writes(), 0).unwrap();
        writer.submit(step_batch(1), 1).unwrap();
        // Refers to an execution that does not exist: rejected.
        writer.submit(result_batch(99), 2).unwrap();
        writer.submit(Vec::new(), 3).unwrap();
        writer.submit(result_batch(1), 4).unwrap();
        open.store(true, Ordering::Release);

        assert_eq!(delivered.wait(4), vec![0, 1, 3, 4]);
        assert_eq!(errors.wait(1), vec!["store_sqlite".to_owned()]);
        // Later batches still commit.
        writer.submit(step_batch(2), 5).unwrap();
        assert_eq!(delivered.wait(5), vec![0, 1, 3, 4, 5]);
        let stats = writer.stats();
        assert_eq!(stats.failures, 2, "{stats:?}"); // the group, then the bad batch alone
    }

    #[test]
    fn store_writer_drops_a_group_on_store_failure_and_keeps_running() {
        let dir = tempfile::tempdir().unwrap();
        // The first apply (the setup, alone) succeeds, the second (everything queued behind
        // it, one group) fails.
        let (store, open) = gated(
            SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap(),
            vec![false, true],
        );
        let delivered: Sink<u32> = Sink::default();
        let errors: Sink<String> = Sink::default();
        let (d, e) = (delivered.clone(), errors.clone());
        let writer = GroupCommitWriter::spawn(
            store,
            "test-writer",
            move |v| d.push(v),
            move |err, _| e.push(err.code().to_owned()),
        );
        writer.submit(setup_writes(), 0).unwrap();
        // Wait until the writer holds the setup batch in its (gated) first apply.
        while writer.stats().batches == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        writer.submit(step_batch(1), 1).unwrap();
        writer.submit(Vec::new(), 2).unwrap();
        writer.submit(step_batch(2), 3).unwrap();
        open.store(true, Ordering::Release);
        assert_eq!(errors.wait(1), vec!["store_io".to_owned()]);
        writer.submit(step_batch(3), 4).unwrap();
        assert_eq!(delivered.wait(2), vec![0, 4]);
        assert_eq!(errors.wait(1).len(), 1);
        let stats = writer.stats();
        assert_eq!(
            (stats.commits, stats.failures, stats.batches),
            (2, 1, 5),
            "{stats:?}"
        );
    }

    #[test]
    fn store_writer_finishes_the_queue_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let store = SqliteStore::open(&path, Durability::Full).unwrap();
        let (tx, rx) = mpsc::channel();
        let writer = GroupCommitWriter::spawn(
            Box::new(store),
            "test-writer",
            move |v: u32| tx.send(v).unwrap(),
            |_, _| {},
        );
        writer.submit(setup_writes(), 0).unwrap();
        for n in 1..=200 {
            writer.submit(step_batch(n), n).unwrap();
        }
        drop(writer);
        // The channel disconnects when the thread exits (dropping `deliver`).
        let got: Vec<u32> = rx.iter().collect();
        assert_eq!(got, (0..=200).collect::<Vec<_>>());
        let reopened = SqliteStore::open(&path, Durability::Normal).unwrap();
        let snapshot = reopened.load().unwrap();
        assert_eq!(snapshot.active_runs[0].executions.len(), 200);
    }

    #[test]
    fn store_writer_reports_when_stopped() {
        let store = SqliteStore::open_in_memory().unwrap();
        let writer = GroupCommitWriter::spawn(
            Box::new(store),
            "test-writer",
            |_: ()| panic!("deliver failed"),
            |_, _| {},
        );
        writer.submit(Vec::new(), ()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match writer.submit(Vec::new(), ()) {
                Err(StoreError::WriterStopped) => break,
                Err(other) => panic!("{other}"),
                Ok(()) => {
                    assert!(Instant::now() < deadline, "writer never stopped");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// Throughput figures; run with
    /// `cargo test --release -p coflux-core store_writer_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark"]
    fn store_writer_throughput() {
        const N: u32 = 10_000;
        let dir = tempfile::tempdir().unwrap();
        for durability in [Durability::Normal, Durability::Full] {
            let raw = crate::store::sqlite::raw_commit_benchmark(
                &dir.path().join(format!("raw-{durability:?}.sqlite")),
                durability,
                2_000,
            )
            .unwrap();
            println!("{durability:?}: raw single-row commits: {raw:.0}/s");

            // Pipelined: N batches of (step + execution) submitted at once, then N results.
            let path = dir.path().join(format!("pipelined-{durability:?}.sqlite"));
            let store = SqliteStore::open(&path, durability).unwrap();
            let (tx, rx) = mpsc::channel();
            let writer = GroupCommitWriter::spawn(
                Box::new(store),
                "bench-writer",
                move |v: u32| tx.send(v).unwrap(),
                |e, _| panic!("{e}"),
            );
            writer.submit(setup_writes(), 0).unwrap();
            rx.recv().unwrap();
            let started = Instant::now();
            for n in 1..=N {
                writer.submit(step_batch(n), n).unwrap();
            }
            for _ in 1..=N {
                rx.recv().unwrap();
            }
            let create = started.elapsed();
            let started = Instant::now();
            for n in 1..=N {
                writer.submit(result_batch(n), n).unwrap();
            }
            for _ in 1..=N {
                rx.recv().unwrap();
            }
            let finish = started.elapsed();
            let stats = writer.stats();
            println!(
                "{durability:?}: {N} create batches in {create:?} ({:.0}/s), {N} result batches in {finish:?} ({:.0}/s); {} commits, {:.1} batches/commit",
                f64::from(N) / create.as_secs_f64(),
                f64::from(N) / finish.as_secs_f64(),
                stats.commits,
                stats.batches_per_commit(),
            );

            // Concurrent: 8 submitters that each wait for their batch before the next one
            // (like actors waiting on durability), N batches in total.
            let path = dir.path().join(format!("concurrent-{durability:?}.sqlite"));
            let store = SqliteStore::open(&path, durability).unwrap();
            let writer = GroupCommitWriter::spawn(
                Box::new(store),
                "bench-writer",
                |done: mpsc::Sender<()>| done.send(()).unwrap(),
                |e, _| panic!("{e}"),
            );
            let (done_tx, done_rx) = mpsc::channel();
            writer.submit(setup_writes(), done_tx).unwrap();
            done_rx.recv().unwrap();
            const SUBMITTERS: u32 = 8;
            let started = Instant::now();
            let handles: Vec<_> = (0..SUBMITTERS)
                .map(|t| {
                    let writer = writer.clone();
                    std::thread::spawn(move || {
                        let (tx, rx) = mpsc::channel();
                        for i in 0..N / SUBMITTERS {
                            writer
                                .submit(step_batch(t * (N / SUBMITTERS) + i + 1), tx.clone())
                                .unwrap();
                            rx.recv().unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let elapsed = started.elapsed();
            let stats = writer.stats();
            println!(
                "{durability:?}: {SUBMITTERS} waiting submitters, {N} batches in {elapsed:?} ({:.0}/s); {} commits, {:.1} batches/commit",
                f64::from(N) / elapsed.as_secs_f64(),
                stats.commits,
                stats.batches_per_commit(),
            );

            let started = Instant::now();
            let snapshot = SqliteStore::open(
                &dir.path().join(format!("pipelined-{durability:?}.sqlite")),
                durability,
            )
            .unwrap()
            .load()
            .unwrap();
            println!(
                "{durability:?}: load() of a finished run with {N} steps: {:?}",
                started.elapsed()
            );
            assert!(snapshot.active_runs.is_empty());
            let started = Instant::now();
            let snapshot = SqliteStore::open(&path, durability)
                .unwrap()
                .load()
                .unwrap();
            println!(
                "{durability:?}: load() of an active run with {} executions: {:?}",
                snapshot.active_runs[0].executions.len(),
                started.elapsed()
            );
        }
    }
}
