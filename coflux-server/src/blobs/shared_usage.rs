//! Blob uses in PostgreSQL (`--database-url`): the table `coflux_blob_uses` (project, key,
//! last use in ms), shared by every node, versioned in `coflux_blob_uses_version`.
//!
//! A use (an upload or a check, on any node) commits its row before the blob is touched. A
//! sweep deletes a blob inside a transaction that holds that row's lock (`FOR UPDATE`) from
//! the check "not used since the cutoff" until after the object is deleted, so a use of the
//! same blob on any node waits for the deletion and then finds the blob gone (the agent
//! uploads it again). The lock lives as long as the sweeping node's session: a sweeper that
//! dies releases it; one that is frozen holds it (uses of that one blob wait) rather than
//! resume a deletion after the lock was given up. One node sweeps at a time: a sweep holds a
//! session advisory lock ([`SWEEP_LOCK`]); a node finding it taken skips its sweep.

use std::sync::Arc;
use std::time::SystemTime;

use coflux_core::model::ProjectName;
use coflux_core::store::postgres::schema;

use super::key::{BlobError, BlobKey};
use crate::asset_store::millis;
use crate::asset_store::pg_pool::PgPool;

/// The advisory lock a sweep holds (`coflux-gc` in ASCII).
pub const SWEEP_LOCK: i64 = 0x636f_666c_7578_6763;

/// Version 1: one row per blob used since the last sweep's cutoff.
const V1: &str = "
CREATE TABLE coflux_blob_uses (
    project TEXT NOT NULL,
    key TEXT NOT NULL,
    used_ms BIGINT NOT NULL,
    PRIMARY KEY (project, key)
);
CREATE INDEX coflux_blob_uses_time ON coflux_blob_uses (used_ms);
";

/// The blob uses of one database.
pub(crate) struct SharedUsage {
    pool: PgPool,
}

impl std::fmt::Debug for SharedUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedUsage")
    }
}

fn db_error(e: impl std::fmt::Display) -> BlobError {
    BlobError::Io(std::io::Error::other(format!("blob use database: {e}")))
}

/// A sweep's connection (holding [`SWEEP_LOCK`] while it lives).
pub(crate) struct SweepConnection {
    client: tokio_postgres::Client,
}

impl SharedUsage {
    /// Connects to `url` and creates or migrates the table.
    pub(crate) fn open(url: &str) -> Result<Self, BlobError> {
        // A use need not wait for its WAL flush: it is visible to a sweep once committed, and
        // the result or asset referencing the blob commits after it (WAL order), so whatever
        // survives a database crash that references the blob has its use too.
        let pool = PgPool::new(url, "coflux-blob-uses", "SET synchronous_commit = off");
        pool.with(|client| {
            Ok(schema::migrate(
                client,
                "public",
                "coflux_blob_uses_version",
                &[V1],
            ))
        })
        .map_err(db_error)?
        .map_err(db_error)?;
        Ok(Self { pool })
    }

    /// Records a use now (committed on return); waits while a sweep is deleting the blob.
    pub(crate) async fn note(
        self: &Arc<Self>,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<(), BlobError> {
        let this = Arc::clone(self);
        let (project, key) = (project.to_string(), key.to_string());
        let now = millis(SystemTime::now());
        tokio::task::spawn_blocking(move || {
            this.pool.with(|client| {
                client.execute(
                    "INSERT INTO coflux_blob_uses (project, key, used_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (project, key)
                     DO UPDATE SET used_ms = GREATEST(coflux_blob_uses.used_ms, EXCLUDED.used_ms)",
                    &[&project, &key, &now],
                )
            })
        })
        .await
        .map_err(db_error)?
        .map_err(db_error)?;
        Ok(())
    }

    /// Forgets the uses older than `cutoff`.
    pub(crate) async fn forget_before(
        self: &Arc<Self>,
        cutoff: SystemTime,
    ) -> Result<(), BlobError> {
        let this = Arc::clone(self);
        let cutoff = millis(cutoff);
        tokio::task::spawn_blocking(move || {
            this.pool.with(|client| {
                client.execute(
                    "DELETE FROM coflux_blob_uses WHERE used_ms < $1",
                    &[&cutoff],
                )
            })
        })
        .await
        .map_err(db_error)?
        .map_err(db_error)?;
        Ok(())
    }

    /// Connects for a sweep and takes [`SWEEP_LOCK`]; `None` when another node holds it.
    pub(crate) async fn begin_sweep(&self) -> Result<Option<SweepConnection>, BlobError> {
        let (client, connection) = tokio_postgres::connect(self.pool.url(), tokio_postgres::NoTls)
            .await
            .map_err(db_error)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "blob GC connection closed");
            }
        });
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        Ok(locked.then_some(SweepConnection { client }))
    }
}

impl SweepConnection {
    /// Runs `delete` unless the blob was used at or after `cutoff` (`Ok(false)`, not run),
    /// holding the blob's use row locked throughout (see the module documentation).
    pub(crate) async fn delete_unused<F>(
        &mut self,
        project: &ProjectName,
        key: &BlobKey,
        cutoff: SystemTime,
        delete: F,
    ) -> Result<bool, BlobError>
    where
        F: std::future::Future<Output = Result<(), BlobError>>,
    {
        let (project, key) = (project.as_str(), key.as_str());
        let tx = self.client.transaction().await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO coflux_blob_uses (project, key, used_ms) VALUES ($1, $2, 0)
             ON CONFLICT (project, key) DO NOTHING",
            &[&project, &key],
        )
        .await
        .map_err(db_error)?;
        let used: i64 = tx
            .query_one(
                "SELECT used_ms FROM coflux_blob_uses WHERE project = $1 AND key = $2 FOR UPDATE",
                &[&project, &key],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        if used >= millis(cutoff) {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        delete.await?;
        tx.execute(
            "DELETE FROM coflux_blob_uses WHERE project = $1 AND key = $2",
            &[&project, &key],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
