//! [`WalCheckpointer`]: one thread checkpoints the WAL of every registered database.
//!
//! Writers commit with automatic checkpoints disabled, so a commit never pays for one; this
//! thread runs `PRAGMA wal_checkpoint(PASSIVE)` (which never blocks a writer) on each database
//! that committed since its last checkpoint, every interval, from a connection of its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::super::StoreError;
use super::super::sqlite::open_connection;
use super::{Counters, GroupCommitWriter};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A database whose WAL is checkpointed, while its [`WalRegistration`] lives.
struct Database {
    path: PathBuf,
    alive: Weak<()>,
    /// The writer's counters (commits so far).
    counters: Arc<Counters>,
    /// Commits at the last checkpoint.
    checkpointed: u64,
    /// Opened at the first checkpoint.
    conn: Option<Connection>,
}

#[derive(Default)]
struct Shared {
    databases: Mutex<Vec<Database>>,
    closed: AtomicBool,
    started: AtomicBool,
}

/// Checkpoints registered databases from one thread (see the module documentation). The
/// thread starts with the first registration and ends once this is dropped.
pub struct WalCheckpointer {
    shared: Arc<Shared>,
    interval: Duration,
}

impl std::fmt::Debug for WalCheckpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalCheckpointer")
            .field("databases", &lock(&self.shared.databases).len())
            .finish()
    }
}

/// Keeps a database registered with a [`WalCheckpointer`]; dropping it closes the
/// checkpointer's connection to it (at its next round).
#[derive(Debug)]
pub struct WalRegistration {
    _alive: Arc<()>,
}

impl WalCheckpointer {
    /// A checkpointer running every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            shared: Arc::default(),
            interval,
        }
    }

    /// Checkpoints `path` (written by `writer`) until the registration is dropped.
    pub fn register<E>(
        &self,
        path: &Path,
        writer: &GroupCommitWriter<E>,
    ) -> Result<WalRegistration, StoreError> {
        if !self.shared.started.swap(true, Ordering::AcqRel) {
            let shared = Arc::clone(&self.shared);
            let interval = self.interval;
            let spawned = std::thread::Builder::new()
                .name("coflux-checkpointer".into())
                .spawn(move || run(&shared, interval));
            if let Err(e) = spawned {
                self.shared.started.store(false, Ordering::Release);
                return Err(StoreError::Io(e));
            }
        }
        let alive = Arc::new(());
        lock(&self.shared.databases).push(Database {
            path: path.to_path_buf(),
            alive: Arc::downgrade(&alive),
            counters: Arc::clone(&writer.counters),
            checkpointed: 0,
            conn: None,
        });
        Ok(WalRegistration { _alive: alive })
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

fn run(shared: &Shared, interval: Duration) {
    while !shared.closed.load(Ordering::Acquire) {
        std::thread::sleep(interval);
        // Taken out of the list while checkpointing, so registering never waits for a disk.
        let mut databases = std::mem::take(&mut *lock(&shared.databases));
        databases.retain(|db| db.alive.strong_count() > 0);
        for db in &mut databases {
            checkpoint(db);
        }
        let mut list = lock(&shared.databases);
        databases.append(&mut list);
        *list = databases;
    }
}

fn checkpoint(db: &mut Database) {
    let commits = db.counters.commits.load(Ordering::Relaxed);
    if commits == db.checkpointed {
        return;
    }
    if db.conn.is_none() {
        match open_connection(&db.path, OpenFlags::default()) {
            Ok(conn) => {
                let _ = conn.busy_timeout(Duration::from_secs(5));
                db.conn = Some(conn);
            }
            Err(e) => {
                return tracing::warn!(error = %e, "could not open a database to checkpoint it");
            }
        }
    }
    if let Some(conn) = &db.conn {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => db.checkpointed = commits,
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}
