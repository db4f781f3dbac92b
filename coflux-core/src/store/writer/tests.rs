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
/// one; `apply` fails with an I/O error while `broken` is set.
struct GatedStore<S> {
    inner: S,
    gate: Gate,
}

/// The switches of a [`GatedStore`].
#[derive(Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::Release);
    }
    fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::Release);
    }
}

impl<S: ProjectStore> ProjectStore for GatedStore<S> {
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        while !self.gate.open.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.gate.broken.load(Ordering::Acquire) {
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

fn gated(inner: SqliteStore) -> (Box<dyn ProjectStore>, Gate) {
    let gate = Gate::default();
    let store = GatedStore {
        inner,
        gate: gate.clone(),
    };
    (Box::new(store), gate)
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
    let (store, gate) = gated(SqliteStore::open(&path, Durability::Normal).unwrap());
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
    gate.open();

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
    let (store, gate) =
        gated(SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap());
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
    gate.open();

    assert_eq!(delivered.wait(4), vec![0, 1, 3, 4]);
    assert_eq!(errors.wait(1), vec!["store_sqlite".to_owned()]);
    // Later batches still commit.
    writer.submit(step_batch(2), 5).unwrap();
    assert_eq!(delivered.wait(5), vec![0, 1, 3, 4, 5]);
    let stats = writer.stats();
    assert_eq!(stats.failures, 2, "{stats:?}"); // the group, then the bad batch alone
}

/// Waits up to 10 s for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn store_writer_retries_a_failing_group_until_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sqlite");
    let (store, gate) = gated(SqliteStore::open(&path, Durability::Normal).unwrap());
    let delivered: Sink<u32> = Sink::default();
    let errors: Sink<String> = Sink::default();
    let (d, e) = (delivered.clone(), errors.clone());
    let writer = GroupCommitWriter::spawn(
        store,
        "test-writer",
        move |v| d.push(v),
        move |err, _| e.push(err.code().to_owned()),
    );
    gate.open();
    writer.submit(setup_writes(), 0).unwrap();
    assert_eq!(delivered.wait(1), vec![0]);
    assert!(!writer.stats().stalled);

    // The disk fails: one group (with a barrier inside) is retried, not dropped.
    gate.set_broken(true);
    writer
        .submit_all(vec![
            (step_batch(1), 1),
            (Vec::new(), 2),
            (step_batch(2), 3),
        ])
        .unwrap();
    eventually("the writer stalls", || writer.stats().stalled);
    eventually("a few retries", || writer.stats().failures >= 3);
    // Batches submitted meanwhile wait behind it, barriers included.
    writer.submit(step_batch(3), 4).unwrap();
    writer.submit(Vec::new(), 5).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        delivered.wait(0),
        vec![0],
        "nothing delivered while failing"
    );
    assert!(writer.stats().stalled);

    gate.set_broken(false);
    assert_eq!(delivered.wait(6), vec![0, 1, 2, 3, 4, 5]);
    eventually("the writer recovers", || !writer.stats().stalled);
    writer.submit(step_batch(4), 6).unwrap();
    assert_eq!(delivered.wait(7), vec![0, 1, 2, 3, 4, 5, 6]);
    assert!(errors.wait(0).is_empty(), "on_error is not called");
    let stats = writer.stats();
    assert!(stats.failures >= 3, "{stats:?}");
    // The setup, the retried group, the batch queued behind it, the last one.
    assert_eq!((stats.commits, stats.batches), (4, 7), "{stats:?}");

    drop(writer);
    let reader = SqliteStore::open_reader(&path).unwrap();
    let run = reader.load_run(RunId(1)).unwrap().unwrap();
    assert_eq!(run.steps.len(), 4, "each write committed once");
}

#[test]
fn store_writer_stops_retrying_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, gate) =
        gated(SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap());
    gate.open();
    gate.set_broken(true);
    let (tx, rx) = mpsc::channel();
    let dropped: Sink<u32> = Sink::default();
    let d = dropped.clone();
    let writer = GroupCommitWriter::spawn(
        store,
        "test-writer",
        move |v: u32| tx.send(v).unwrap(),
        move |_, after| after.into_iter().for_each(|v| d.push(v)),
    );
    writer.submit(setup_writes(), 0).unwrap();
    writer.submit(step_batch(1), 1).unwrap();
    // Let it back off to its longest pause first.
    eventually("the writer stalls", || writer.stats().stalled);
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    drop(writer);
    // The channel disconnects when the thread exits (dropping `deliver`).
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Reported, so waiting callers learn of it.
    assert_eq!(dropped.wait(2), vec![0, 1]);
}

#[test]
fn a_full_disk_is_not_a_batch_error() {
    let full = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some("database or disk is full".into()),
    );
    assert!(!is_batch_error(&StoreError::Sqlite(full)));
    assert!(!is_batch_error(&StoreError::Io(std::io::Error::other("x"))));
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
