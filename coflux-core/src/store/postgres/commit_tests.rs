//! The commit sequence and the replay of batches PostgreSQL lost, against a real PostgreSQL
//! (`COFLUX_TEST_DATABASE_URL`; skipped without it unless `COFLUX_PG_TESTS=require`).
//!
//! A crash of PostgreSQL that loses unflushed commits is simulated by rebuilding the project
//! schema from a prefix of the batches (what a crash restart would have kept) and ending the
//! store's session, as a restart does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::store::conformance_tests::fixtures::batches;
use crate::store::conformance_tests::{TestSchema, read_all, test_database_url};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::writer::{GroupCommitWriter, WriterPool};
use crate::store::{Durability, ProjectStore, StoreError};

/// A plain connection to the test database.
fn side(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// The sequence persisted in `schema`.
fn persisted(url: &str, schema: &str) -> i64 {
    side(url)
        .query_one(&format!("SELECT seq FROM \"{schema}\".commit_seq"), &[])
        .unwrap()
        .get(0)
}

/// Ends `store`'s session from another connection, as a restart of PostgreSQL would.
fn end_session(store: &PgStore, url: &str) {
    let pid: i32 = {
        let mut conn = store.conn();
        let statement = conn.client.prepare("SELECT pg_backend_pid()").unwrap();
        conn.client.query_one(&statement, &[]).unwrap().get(0)
    };
    side(url)
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    // Let the termination land before the store's next statement.
    std::thread::sleep(Duration::from_millis(100));
}

/// PostgreSQL "crashes" keeping only `kept` of `store`'s batches: the schema is rebuilt from
/// them by another store, and `store`'s session ends.
fn crash(store: &PgStore, url: &str, schema: &TestSchema, kept: &[Vec<Write>]) {
    side(url)
        .batch_execute(&format!(
            "DROP SCHEMA \"{}\" CASCADE",
            schema.location.schema
        ))
        .unwrap();
    let mut survivor = PgStore::open(&schema.location).unwrap();
    for batch in kept {
        survivor.apply(batch).unwrap();
    }
    drop(survivor);
    end_session(store, url);
}

/// The non-empty batches of the conformance fixtures.
fn fixtures() -> Vec<Vec<Write>> {
    batches().into_iter().filter(|b| !b.is_empty()).collect()
}

/// `store` reads back what a SQLite store holds after `batches` (the reference).
fn assert_holds(store: &PgStore, batches: &[Vec<Write>]) {
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = SqliteStore::open(&dir.path().join("p.sqlite"), Durability::Normal).unwrap();
    for batch in batches {
        sqlite.apply(batch).unwrap();
    }
    assert_eq!(read_all(store), read_all(&sqlite));
}

#[test]
fn commit_sequence_moves_by_one_per_batch_and_survives_reopening() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "seq");
    let batches = fixtures();
    let mut store = PgStore::open(&schema.location)
        .unwrap()
        .with_durability(Durability::Normal);
    assert_eq!(store.commit_seq(), 0);
    for batch in &batches {
        store.apply(batch).unwrap();
    }
    // A rejected batch does not move it.
    assert!(store.apply(&batches[0]).is_err());
    let n = batches.len() as i64;
    assert_eq!(store.commit_seq(), n);
    assert_eq!(persisted(&url, &schema.location.schema), n);
    drop(store);
    let reopened = PgStore::open(&schema.location).unwrap();
    assert_eq!(reopened.commit_seq(), n);
}

#[test]
fn batches_postgres_lost_are_committed_again_after_reconnecting() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "replay");
    let batches = fixtures();
    assert!(batches.len() >= 4, "enough batches to lose a tail");
    let kept = batches.len() / 2;
    let (last, before_last) = batches.split_last().unwrap();

    let mut store = PgStore::open(&schema.location)
        .unwrap()
        .with_durability(Durability::Normal);
    store.log.hold = true;
    for batch in before_last {
        store.apply(batch).unwrap();
    }
    assert_eq!(store.unflushed_batches(), before_last.len());

    // PostgreSQL "crashes" keeping only the first `kept` batches: the schema is rebuilt from
    // them by another store, and the writer's session ends.
    crash(&store, &url, &schema, &batches[..kept]);

    // The next commit fails with the connection (the writer retries it)...
    let error = store.apply(last).unwrap_err();
    assert!(!error.stops_project(), "{error}");
    // ... and its retry reconnects, replays what was lost, then commits it.
    store.apply(last).unwrap();
    assert_eq!(store.replayed_batches(), (before_last.len() - kept) as u64);
    assert_eq!(store.unflushed_batches(), 1);
    assert_eq!(
        persisted(&url, &schema.location.schema),
        batches.len() as i64
    );
    assert_holds(&store, &batches);
}

#[test]
fn idle_writer_replays_when_a_reader_finds_the_database_behind() {
    let Some(url) = test_database_url() else {
        return;
    };
    idle_writer_replays(&url, "idle", |store| {
        GroupCommitWriter::spawn(store, "test-idle-writer", |()| {}, |e, _| panic!("{e}"))
    });
    let pool = WriterPool::new(1, Duration::ZERO, "test-idle-pool");
    idle_writer_replays(&url, "idle_pooled", |store| {
        GroupCommitWriter::spawn_on(&pool, store, "idle", |()| {}, |e, _| panic!("{e}"))
    });
}

/// The scenario of the test above, with the group-commit writer `spawn` starts.
fn idle_writer_replays(
    url: &str,
    name: &str,
    spawn: impl FnOnce(Box<dyn ProjectStore>) -> GroupCommitWriter<()>,
) {
    let url = url.to_owned();
    let schema = TestSchema::new(&url, name);
    let batches = fixtures();
    let kept = batches.len() / 2;
    let mut store = PgStore::open(&schema.location)
        .unwrap()
        .with_durability(Durability::Normal);
    store.log.hold = true;
    for batch in &batches {
        store.apply(batch).unwrap();
    }
    let n = batches.len() as i64;

    // PostgreSQL "crashes" keeping only the first `kept` batches (as in the test above), and
    // the writer has nothing more to commit.
    crash(&store, &url, &schema, &batches[..kept]);
    // The rebuilding store was a second writer of the location: what the readers compare
    // with is the first one's again.
    store.shared.committed.store(n, Ordering::Release);

    let writer = spawn(Box::new(store));
    // A reader finds the database behind the idle writer: it wakes it, the writer reconnects
    // and commits the lost batches again, and the read answers from the whole state.
    let reader = PgStore::open_reader(&schema.location).unwrap();
    let started = std::time::Instant::now();
    assert_holds(&reader, &batches);
    assert!(
        started.elapsed() < super::super::catch_up::BEHIND_WAIT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(persisted(&url, &schema.location.schema), n);
    assert!(writer.is_idle());
    drop(writer);
}

#[test]
fn a_batch_in_doubt_that_had_committed_is_not_applied_twice() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "doubt");
    let batches = fixtures();
    let mut store = PgStore::open(&schema.location)
        .unwrap()
        .with_durability(Durability::Normal);
    for batch in &batches[..2] {
        store.apply(batch).unwrap();
    }
    // The second batch's COMMIT reached PostgreSQL but its answer did not come back: the
    // store knows only the first, and the second is in doubt.
    store.log.seq = 1;
    store.log.flushed = 0;
    store.log.buffer.clear();
    store.log.buffered_writes = 0;
    store.log.doubt = Some(Buffered {
        seq: 2,
        writes: batches[1].clone(),
        lsn: i64::MAX,
    });
    store.log.broken = true;
    end_session(&store, &url);
    // The writer's retry of it finds it committed (applying it again would fail: its rows
    // exist), and the next batches follow.
    store.apply(&batches[1]).unwrap();
    assert_eq!(store.commit_seq(), 2);
    for batch in &batches[2..] {
        store.apply(batch).unwrap();
    }
    assert_holds(&store, &batches);
}

#[test]
fn a_sequence_behind_what_was_flushed_stops_the_project() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "diverge");
    let batches = fixtures();
    // Full: every commit is known flushed.
    let mut store = PgStore::open(&schema.location).unwrap();
    for batch in &batches[..3] {
        store.apply(batch).unwrap();
    }
    side(&url)
        .execute(
            &format!(
                "UPDATE \"{}\".commit_seq SET seq = 1",
                schema.location.schema
            ),
            &[],
        )
        .unwrap();
    end_session(&store, &url);
    let error = store.apply(&batches[3]).unwrap_err();
    assert!(!error.stops_project(), "{error}");
    let error = store.apply(&batches[3]).unwrap_err();
    assert!(
        matches!(error, StoreError::Diverged(_)) && error.stops_project(),
        "{error}"
    );
}

#[test]
fn unflushed_batches_are_forgotten_once_flushed_and_bounded() {
    let Some(url) = test_database_url() else {
        return;
    };
    let schema = TestSchema::new(&url, "trim");
    let batches = fixtures();
    let mut store = PgStore::open(&schema.location)
        .unwrap()
        .with_durability(Durability::Normal);
    for batch in &batches[..batches.len() - 1] {
        store.apply(batch).unwrap();
    }
    // PostgreSQL's WAL writer flushes within three of its delays (200 ms by default).
    std::thread::sleep(Duration::from_millis(1500));
    store.apply(batches.last().unwrap()).unwrap();
    assert!(
        store.unflushed_batches() <= 1,
        "{} batches still buffered",
        store.unflushed_batches()
    );

    // Held (a WAL writer that never catches up), the buffer stops at its cap: the commit
    // past it waits for the flush and empties it.
    store.log.hold = true;
    let tick = |store: &mut PgStore, at: i64| {
        store
            .apply(&[Write::ScheduleTicked {
                id: 1,
                last_tick: at,
                missed: 0,
            }])
            .unwrap();
    };
    let mut at = 10_000;
    while store.unflushed_batches() < MAX_BUFFERED_BATCHES {
        at += 1;
        tick(&mut store, at);
    }
    tick(&mut store, at + 1);
    assert_eq!(store.unflushed_batches(), 0);
    tick(&mut store, at + 2);
    assert_eq!(store.unflushed_batches(), 1);
}

/// PostgreSQL stays down past the lease: the owner's replay extends its lease in the same
/// transaction if nobody took the project (no other node wrote), and is fenced if another
/// node did.
#[test]
fn a_replay_renews_a_lease_that_expired_untaken_and_is_fenced_once_taken() {
    use super::lease::{Acquired, FenceCheck, Leases};
    let Some(url) = test_database_url() else {
        return;
    };
    let batches = fixtures();
    let lease = Duration::from_millis(1000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for taken in [false, true] {
        let schema = TestSchema::new(&url, "lease-replay");
        let id = format!("{taken}-{}-{nanos}", std::process::id());
        let (project, a, b) = (format!("replay-{id}"), format!("a-{id}"), format!("b-{id}"));
        let node_a = Leases::connect(&url, &a, lease).unwrap();
        let Acquired::Owned(epoch) = node_a.acquire(&project).unwrap() else {
            panic!("a free project is taken");
        };
        let fence = Fence::Lease(FenceCheck {
            project: project.clone(),
            node: a.clone(),
            epoch,
            idle_limit: Duration::from_secs(5),
            lease,
        });
        let mut store = PgStore::open(&schema.location)
            .unwrap()
            .with_fence(fence)
            .unwrap()
            .with_durability(Durability::Normal);
        store.log.hold = true;
        store.apply(&batches[0]).unwrap();
        store.apply(&batches[1]).unwrap();
        // PostgreSQL "crashes" keeping only the first batch, and stays down past the lease.
        crash(&store, &url, &schema, &batches[..1]);
        std::thread::sleep(lease + Duration::from_millis(300));
        let node_b = Leases::connect(&url, &b, lease).unwrap();
        let taken_epoch = match taken.then(|| node_b.acquire(&project).unwrap()) {
            Some(Acquired::Owned(e)) => Some(e),
            Some(other) => panic!("an expired lease is taken: {other:?}"),
            None => None,
        };
        assert!(store.apply(&batches[2]).is_err(), "the connection broke");
        let retried = store.apply(&batches[2]);
        let row = node_a.lease(&project).unwrap().unwrap();
        if taken {
            assert!(
                matches!(retried, Err(StoreError::Fenced { .. })),
                "{retried:?}"
            );
            assert_ne!(row.node, a);
            assert_eq!(persisted(&url, &schema.location.schema), 1);
        } else {
            retried.unwrap();
            assert_eq!(store.replayed_batches(), 1);
            assert_eq!(
                (row.node.as_str(), row.epoch, row.expired),
                (a.as_str(), epoch, false)
            );
            assert_holds(&store, &batches[..3]);
            // The lease round renews it too, with the same epoch, as the project is loaded.
            assert_eq!(
                node_a.renew(&[(project.clone(), epoch)]).unwrap(),
                [(project.clone(), epoch)]
            );
        }
        let _ = node_a.release(&project, epoch);
        if let Some(e) = taken_epoch {
            node_b.release(&project, e).unwrap();
        }
    }
}
