//! Readers of a project whose writer runs in this process, after a crash of PostgreSQL.
//!
//! With [`Durability::Normal`](crate::store::Durability::Normal) a crash can lose commits the
//! writer already acknowledged; the writer commits them again from its replay buffer (see
//! [`super::commit`]). Until it has, the database is behind what this process has seen, and a
//! reader must not answer from that older state (a finished run would look unfinished). So a
//! reader reads the commit sequence in the round trip of its BEGIN; while it is behind the
//! writer's, the reader asks the writer to settle at once (a flag and a wake-up of its thread:
//! an idle writer has no batch that would make it reconnect), and begins again, for at most
//! [`BEHIND_WAIT`].
//!
//! A connection checks once: PostgreSQL loses commits only in a crash, which ends every
//! session, so while the session that found the database caught up is alive, no commit the
//! writer acknowledged since can have been lost (a crash breaks the connection, and the
//! reader's new one checks again). Reads cost no extra statement in the steady state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Conn, PgLocation};
use crate::store::{StoreError, StoreWake};

/// The longest a reader waits for the writer to commit again what PostgreSQL lost.
pub(super) const BEHIND_WAIT: Duration = Duration::from_secs(10);
/// The pause between two looks of a waiting reader.
const POLL: Duration = Duration::from_millis(10);

const BEGIN_SQL: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
/// [`BEGIN_SQL`] and the commit sequence, as one simple query.
const BEGIN_WITH_SEQ_SQL: &str =
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT seq FROM commit_seq WHERE id = 1";

/// What the writer of a location shares with the location's readers in this process.
#[derive(Default)]
pub(super) struct Shared {
    /// The last commit sequence the writer committed (0: no writer here).
    pub(super) committed: AtomicI64,
    /// A reader found the database behind `committed`: the writer should settle now.
    behind: AtomicBool,
    /// Wakes the writer (set by its group-commit writer).
    wake: Mutex<Option<StoreWake>>,
}

impl Shared {
    /// The shared state of `location`'s writer and readers.
    pub(super) fn of(location: &PgLocation) -> Arc<Shared> {
        static MAP: OnceLock<Mutex<HashMap<PgLocation, Arc<Shared>>>> = OnceLock::new();
        let mut map = MAP
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(location.clone()).or_default())
    }

    fn wake_slot(&self) -> std::sync::MutexGuard<'_, Option<StoreWake>> {
        self.wake.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `wake` now wakes the location's writer.
    pub(super) fn set_wake(&self, wake: &StoreWake) {
        *self.wake_slot() = Some(Arc::clone(wake));
    }

    /// Forgets `wake` unless another writer replaced it since.
    pub(super) fn unset_wake(&self, wake: &StoreWake) {
        let mut slot = self.wake_slot();
        if slot.as_ref().is_some_and(|w| Arc::ptr_eq(w, wake)) {
            *slot = None;
        }
    }

    /// Takes the request a reader made (see [`Shared::request_settle`]).
    pub(super) fn take_settle_request(&self) -> bool {
        self.behind.swap(false, Ordering::AcqRel)
    }

    /// Asks the writer to settle, waking it once per request.
    fn request_settle(&self) {
        if !self.behind.swap(true, Ordering::AcqRel) {
            let wake = self.wake_slot().clone();
            if let Some(wake) = wake {
                wake();
            }
        }
    }
}

/// Begins a read-only, repeatable-read transaction. With `shared` (a reader's), its snapshot
/// is checked against the writer's commit sequence (see the module documentation).
pub(super) fn begin_read(conn: &mut Conn, shared: Option<&Shared>) -> Result<(), StoreError> {
    let deadline = Instant::now() + BEHIND_WAIT;
    loop {
        let expected = shared.map_or(0, |s| s.committed.load(Ordering::Acquire));
        if expected == 0 || conn.verified {
            conn.client.batch_execute(BEGIN_SQL)?;
            // Without a writer here, nothing this process saw committed can be missing.
            conn.verified = shared.is_some();
            return Ok(());
        }
        let seq = begin_with_seq(conn)?;
        if seq >= expected {
            conn.verified = true;
            return Ok(());
        }
        conn.client.batch_execute("ROLLBACK")?;
        if let Some(shared) = shared {
            shared.request_settle();
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Diverged(format!(
                "the database is at commit {seq}, behind this node's {expected}"
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// BEGIN and the commit sequence read in its snapshot, in one round trip (one simple query:
/// cheaper than two pipelined prepared statements).
fn begin_with_seq(conn: &mut Conn) -> Result<i64, StoreError> {
    let read = conn.client.batch_first_int(BEGIN_WITH_SEQ_SQL);
    let read = read.map_err(StoreError::from).inspect_err(|e| {
        // The transaction may have begun: end it (a broken connection is replaced instead).
        if !super::commit::is_disconnect(e) {
            let _ = conn.client.batch_execute("ROLLBACK");
        }
    })?;
    match read {
        Some(seq) => Ok(seq),
        None => {
            // The transaction began: end it.
            conn.client.batch_execute("ROLLBACK")?;
            Err(StoreError::Diverged(
                "the commit sequence could not be read".to_owned(),
            ))
        }
    }
}
