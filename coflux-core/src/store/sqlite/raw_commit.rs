//! The reference figure for benchmarks (feature `test-util`): the disk's raw commit rate.

use std::fs;
use std::path::Path;
use std::time::Instant;

use rusqlite::{OpenFlags, TransactionBehavior, params};

use super::connection::{configure, open_connection};
use crate::store::{Durability, StoreError};

/// Measures the physical commit rate of the disk under `path`: `commits` single-row INSERT
/// transactions into a scratch table of a new database at `path` (which must not exist), with
/// the same pragmas as [`super::SqliteStore::open`]. Returns commits per second. The reference figure
/// for group commit: the writer can apply many batches per physical commit.
pub fn raw_commit_benchmark(
    path: &Path,
    durability: Durability,
    commits: u32,
) -> Result<f64, StoreError> {
    if path.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", path.display()),
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut conn = open_connection(path, OpenFlags::default())?;
    configure(&conn, durability)?;
    conn.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    let started = Instant::now();
    for i in 0..commits {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO scratch (id, payload) VALUES (?1, ?2)")?
            .execute(params![i64::from(i), "R1:1:1"])?;
        tx.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(f64::from(commits) / seconds)
}
