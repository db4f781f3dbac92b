//! Connections to a project database: the VFS every connection goes through, the pragmas of
//! read-write connections, the WAL checkpointer thread and the raw commit benchmark.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, ffi};

use super::SqliteStore;
use crate::store::{Durability, StoreError};

/// The page size of new databases, in bytes.
pub(super) const PAGE_SIZE: i64 = 1024;

/// How long a connection waits for another connection's lock before failing.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The same while a database is being opened for writing.
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// The VFS of project databases (see the module documentation).
#[cfg(unix)]
const PROJECT_VFS: Option<&str> = Some("unix-excl");
#[cfg(not(unix))]
const PROJECT_VFS: Option<&str> = None;

/// Opens a connection to a project database with `flags`. Every connection to a project
/// database in this process must be opened here: connections through different VFSs would
/// not see each other's locks and WAL index.
pub(crate) fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    match PROJECT_VFS {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
}

/// [`StoreError::InUse`] for a database that another process holds (its exclusive lock
/// outlasted the busy timeout); other errors unchanged.
pub(super) fn in_use(error: StoreError) -> StoreError {
    match &error {
        StoreError::Sqlite(e) if e.sqlite_error_code() == Some(ffi::ErrorCode::DatabaseBusy) => {
            StoreError::InUse
        }
        _ => error,
    }
}

/// Sets the pragmas every read-write connection uses.
pub(super) fn configure(conn: &Connection, durability: Durability) -> Result<(), StoreError> {
    // The first statements take the file's lock: a database that another process holds fails
    // fast (a lock held in this process is released within milliseconds).
    conn.busy_timeout(OPEN_BUSY_TIMEOUT)?;
    // Only takes effect on a new, empty database (see the module documentation).
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    set_journal_mode_wal(conn)?;
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // 16 MiB of page cache (negative: KiB) keeps the hot part of the tables in memory.
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

pub(super) fn set_journal_mode_wal(conn: &Connection) -> Result<(), StoreError> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(StoreError::Io(std::io::Error::other(format!(
            "could not enable WAL mode (journal_mode is {mode})"
        ))))
    }
}

impl SqliteStore {
    /// Stops this connection from checkpointing the WAL inside its commits (use with a
    /// [`Checkpointer`], so that checkpoints never stall a commit).
    pub fn disable_auto_checkpoint(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }
}

/// Checkpoints a database's WAL from its own thread and connection (`PASSIVE`: it never blocks
/// the writer), so that the writer's commits never pay for a checkpoint. Stops when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    /// Starts checkpointing `path` every `interval`.
    pub fn spawn(path: &Path, interval: std::time::Duration) -> Result<Self, StoreError> {
        use std::sync::atomic::Ordering;
        let conn = open_connection(path, OpenFlags::default())?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        std::thread::Builder::new()
            .name("coflux-checkpointer".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
