//! Where asset records are kept: files `<data_dir>/assets/<project>/<id>.json` (one node), or
//! the table `coflux_assets` in PostgreSQL with `--database-url`, shared by every node so the
//! blob garbage collector of any node sees every record.
//!
//! The calls block (files or a database round trip): async callers run them on a blocking
//! thread.

mod files;
pub(crate) mod pg_pool;
mod postgres;

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use coflux_core::model::ProjectName;

use crate::asset_record::Record;

/// Why storing or reading asset records failed.
#[derive(Debug, thiserror::Error)]
pub enum AssetStoreError {
    /// Another record has the same id.
    #[error("another asset has the same id")]
    Conflict,
    /// A stored record does not decode.
    #[error("asset record {id} is corrupt: {reason}")]
    Corrupt {
        /// The record's id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The filesystem failed.
    #[error("asset storage failed: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error("asset database failed: {0}")]
    Database(#[from] ::postgres::Error),
    /// The asset table could not be created or migrated.
    #[error("asset table migration failed: {0}")]
    Migration(String),
}

/// Called with each stored record's id and content.
type EachRecord<'a> = dyn FnMut(&str, &[u8]) -> Result<(), AssetStoreError> + 'a;

/// The asset records of every project.
pub enum AssetStore {
    /// Files under a data directory.
    Files(files::FileAssets),
    /// The shared PostgreSQL table.
    Postgres(postgres::PgAssets),
}

impl std::fmt::Debug for AssetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Files(_) => "AssetStore::Files",
            Self::Postgres(_) => "AssetStore::Postgres",
        })
    }
}

impl AssetStore {
    /// Records as files under `<data_dir>/assets`.
    pub fn files(data_dir: &Path) -> Self {
        Self::Files(files::FileAssets::new(data_dir.join("assets")))
    }

    /// Records in PostgreSQL (creating or migrating the table).
    pub fn postgres(url: &str) -> Result<Self, AssetStoreError> {
        Ok(Self::Postgres(postgres::PgAssets::open(url)?))
    }

    /// Stores `record` under `id` (its content-derived id) unless the same record is there;
    /// a different record with that id is [`AssetStoreError::Conflict`]. Durable on return.
    pub fn put(
        &self,
        project: &ProjectName,
        id: &str,
        record: &Record,
    ) -> Result<(), AssetStoreError> {
        let content = record.canonical();
        match self {
            Self::Files(files) => files.put(project, id, &content),
            Self::Postgres(pg) => pg.put(project, id, &content, now_ms()),
        }
    }

    /// The record `id` of `project` (the id must have been validated), if there is one.
    pub fn get(&self, project: &ProjectName, id: &str) -> Result<Option<Record>, AssetStoreError> {
        let content = match self {
            Self::Files(files) => files.get(project, id)?,
            Self::Postgres(pg) => pg.get(project, id)?,
        };
        content.map(|content| decode(id, &content)).transpose()
    }

    /// Adds the blob key of every entry of every record of `project` to `keys`; a record that
    /// does not decode is an error (its blobs must then be treated as referenced).
    pub fn blob_keys(
        &self,
        project: &ProjectName,
        keys: &mut HashSet<String>,
    ) -> Result<(), AssetStoreError> {
        let mut add = |id: &str, content: &[u8]| {
            let record = decode(id, content)?;
            keys.extend(record.entries.into_values().map(|entry| entry.blob_key));
            Ok(())
        };
        match self {
            Self::Files(files) => files.for_each(project, &mut add),
            Self::Postgres(pg) => pg.for_each(project, &mut add),
        }
    }

    /// Deletes the records of `project` not in `referenced` and written before `cutoff`;
    /// gives how many went.
    pub fn delete_unreferenced(
        &self,
        project: &ProjectName,
        referenced: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<usize, AssetStoreError> {
        match self {
            Self::Files(files) => files.delete_unreferenced(project, referenced, cutoff),
            Self::Postgres(pg) => pg.delete_unreferenced(project, referenced, millis(cutoff)),
        }
    }
}

fn decode(id: &str, content: &[u8]) -> Result<Record, AssetStoreError> {
    serde_json::from_slice(content).map_err(|e| AssetStoreError::Corrupt {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

/// `time` in milliseconds since the Unix epoch (0 before it).
pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    millis(SystemTime::now())
}
