//! [`BlobStore`]: content-addressed blobs, per project, in a local directory (the default) or
//! an S3-compatible bucket.
//!
//! The key is the SHA-256 of the content in lower-case hex. Keys are validated
//! ([`BlobKey::parse`]) before any path or object name is built, and project names are
//! validated by [`ProjectName`], so no request can name anything outside its project. Uploads
//! are streamed (memory stays bounded whatever the blob's size), hashed on the way, and become
//! visible only once the hash matches the key.
//!
//! For garbage collection ([`crate::gc`]) a store lists a project's blobs with their age
//! ([`BlobStore::list`]) and deletes them ([`BlobStore::delete_unused`]). With usage tracking
//! on ([`BlobStore::with_usage_tracking`]), every upload and every existence or size check
//! ([`BlobStore::write`], [`BlobStore::size`]: what `PUT`, `HEAD` and asset creation do)
//! records that the blob was just used, and a blob used since a sweep's cutoff is not deleted:
//! an agent that found a blob present (and so skipped uploading it) can still reference it.
//! A use and a deletion of the same blob are serialized, so a check never answers "present"
//! for a blob that a sweep is deleting at that moment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use coflux_core::model::ProjectName;
use futures::{Stream, TryStreamExt};

use super::key::{BlobEntry, BlobError, BlobKey, BlobReader};
use super::local::LocalDir;
use super::s3::S3Blobs;
use super::usage::{MemoryUsage, SharedUsage, Sweep, Tracking};
use crate::config::BlobStoreConfig;

/// The largest blob accepted by default (1 GiB).
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 1 << 30;

/// Blobs of every project, in one backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
    max_size: u64,
    usage: Option<Tracking>,
}

/// What became of a blob [`BlobStore::delete_unused`] was asked to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// It was deleted (or was already gone).
    Deleted,
    /// It was uploaded or checked at or after the cutoff, so it was kept.
    RecentlyUsed,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(LocalDir),
    S3(S3Blobs),
}

impl BlobStore {
    /// The local store of a data directory (`<data_dir>/blobs`), with the default size limit.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            backend: Backend::Local(LocalDir::new(data_dir.as_ref())),
            max_size: DEFAULT_MAX_BLOB_SIZE,
            usage: None,
        }
    }

    /// The store a configuration selects: local (under `data_dir`) or S3.
    pub fn from_config(
        data_dir: impl AsRef<Path>,
        config: &BlobStoreConfig,
    ) -> Result<Self, BlobError> {
        match config {
            BlobStoreConfig::Local => Ok(Self::new(data_dir)),
            BlobStoreConfig::S3(s3) => Ok(Self {
                backend: Backend::S3(S3Blobs::connect(s3)?),
                max_size: DEFAULT_MAX_BLOB_SIZE,
                usage: None,
            }),
        }
    }

    /// Sets the largest blob [`BlobStore::write`] accepts.
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size;
        self
    }

    /// Turns usage tracking on (for garbage collection): uploads and checks are remembered in
    /// memory until [`BlobStore::forget_uses_before`] drops them, and
    /// [`BlobStore::delete_unused`] spares recently used blobs. Clones made afterwards share
    /// the record.
    pub fn with_usage_tracking(mut self) -> Self {
        self.usage = Some(Tracking::Memory(Arc::new(MemoryUsage::default())));
        self
    }

    /// Turns usage tracking on with the uses recorded in the PostgreSQL database at `url`,
    /// shared by every node (`--database-url`): a sweep on any node sees every node's uses,
    /// and only one node sweeps at a time ([`BlobStore::begin_sweep`]).
    pub fn with_shared_usage_tracking(mut self, url: &str) -> Result<Self, BlobError> {
        self.usage = Some(Tracking::Shared(Arc::new(SharedUsage::open(url)?)));
        Ok(self)
    }

    /// Forgets the uses older than `cutoff` (they no longer protect anything), bounding what
    /// usage tracking keeps to the blobs used since.
    pub async fn forget_uses_before(&self, cutoff: SystemTime) -> Result<(), BlobError> {
        match &self.usage {
            None => Ok(()),
            Some(Tracking::Memory(usage)) => {
                usage.forget_before(cutoff);
                Ok(())
            }
            Some(Tracking::Shared(usage)) => usage.forget_before(cutoff).await,
        }
    }

    async fn note_use(&self, project: &ProjectName, key: &BlobKey) -> Result<(), BlobError> {
        match &self.usage {
            None => Ok(()),
            Some(Tracking::Memory(usage)) => {
                usage.note(project, key).await;
                Ok(())
            }
            Some(Tracking::Shared(usage)) => usage.note(project, key).await,
        }
    }

    /// Starts a sweep: `None` when another node is sweeping (shared tracking only).
    pub async fn begin_sweep(&self) -> Result<Option<Sweep>, BlobError> {
        match &self.usage {
            Some(Tracking::Shared(usage)) => Ok(usage.begin_sweep().await?.map(|c| Sweep(Some(c)))),
            _ => Ok(Some(Sweep(None))),
        }
    }

    /// The largest blob accepted.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The backend's name: `local` or `s3`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Local(_) => "local",
            Backend::S3(_) => "s3",
        }
    }

    /// Where a blob is (or would be) stored, for the local backend.
    pub fn path(&self, project: &ProjectName, key: &BlobKey) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(local) => Some(local.path(project, key)),
            Backend::S3(_) => None,
        }
    }

    /// The blob's size, if it exists. With usage tracking on, this counts as a use of the
    /// blob (see [`BlobStore::with_usage_tracking`]).
    pub async fn size(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<u64>, BlobError> {
        // A check usually precedes a reference to the blob (an agent skips uploading what is
        // present; an asset is recorded over present blobs): it counts as a use.
        self.note_use(project, key).await?;
        match &self.backend {
            Backend::Local(local) => local.size(project, key).await,
            Backend::S3(s3) => s3.size(project, key).await,
        }
    }

    /// Opens a blob for streaming, if it exists.
    pub async fn open(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<BlobReader>, BlobError> {
        match &self.backend {
            Backend::Local(local) => local.open(project, key).await,
            Backend::S3(s3) => s3.open(project, key).await,
        }
    }

    /// Reads a whole blob into memory, if it exists (only for blobs known to be small).
    pub async fn read(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(reader) = self.open(project, key).await? else {
            return Ok(None);
        };
        let mut data = Vec::with_capacity(usize::try_from(reader.size).unwrap_or(0));
        let mut stream = reader.stream;
        while let Some(chunk) = stream.try_next().await? {
            data.extend_from_slice(&chunk);
        }
        Ok(Some(data))
    }

    /// Stores a blob from a stream of chunks, hashing it on the way; it becomes visible only if
    /// the hash equals `key` (local: a temporary file renamed into place; S3: a single upload
    /// or a multipart upload completed only after the check). Returns the size written. On any
    /// error nothing is left behind. With usage tracking on, this counts as a use.
    pub async fn write<S, E>(
        &self,
        project: &ProjectName,
        key: &BlobKey,
        body: S,
    ) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        self.note_use(project, key).await?;
        match &self.backend {
            Backend::Local(local) => local.write(project, key, self.max_size, body).await,
            Backend::S3(s3) => s3.write(project, key, self.max_size, body).await,
        }
    }

    /// Stores a blob held in memory (see [`BlobStore::write`]).
    pub async fn write_bytes(
        &self,
        project: &ProjectName,
        key: &BlobKey,
        content: Bytes,
    ) -> Result<u64, BlobError> {
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(content)]);
        self.write(project, key, body).await
    }

    /// Every blob of a project, with its size and last write time, in no particular order.
    /// Names in the project's storage that are not blob keys (temporary upload files) are left
    /// out.
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<BlobEntry>, BlobError> {
        match &self.backend {
            Backend::Local(local) => local.list(project).await,
            Backend::S3(s3) => s3.list(project).await,
        }
    }

    /// Deletes a blob unless it was used (uploaded or checked, see
    /// [`BlobStore::with_usage_tracking`]) at or after `cutoff`, within `sweep`. A use of the
    /// same blob that starts while the deletion runs waits for it to end. Deleting a blob that
    /// is not there succeeds.
    pub async fn delete_unused(
        &self,
        sweep: &mut Sweep,
        project: &ProjectName,
        key: &BlobKey,
        cutoff: SystemTime,
    ) -> Result<Deletion, BlobError> {
        let delete = async {
            match &self.backend {
                Backend::Local(local) => local.delete(project, key).await,
                Backend::S3(s3) => s3.delete(project, key).await,
            }
        };
        let deleted = match (&self.usage, &mut sweep.0) {
            (_, Some(connection)) => {
                connection
                    .delete_unused(project, key, cutoff, delete)
                    .await?
            }
            (Some(Tracking::Memory(usage)), None) => {
                usage.delete_unused(project, key, cutoff, delete).await?
            }
            (_, None) => {
                delete.await?;
                true
            }
        };
        Ok(if deleted {
            Deletion::Deleted
        } else {
            Deletion::RecentlyUsed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_strictly_validated() {
        let good = "ab".repeat(32);
        assert!(BlobKey::parse(&good).is_ok());
        for bad in [
            "",
            "..",
            "%2e%2e",
            "../../etc/passwd",
            &"AB".repeat(32),
            &"ab".repeat(31),
            &format!("{}\0", "a".repeat(63)),
            &format!("{}/", "a".repeat(63)),
            &"g".repeat(64),
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[actix_rt::test]
    async fn writes_are_verified_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let project = ProjectName::new("p").unwrap();
        let key = BlobKey::of(b"hello");
        let size = store
            .write_bytes(&project, &key, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(size, 5);
        assert_eq!(store.size(&project, &key).await.unwrap(), Some(5));
        assert_eq!(store.read(&project, &key).await.unwrap().unwrap(), b"hello");
        assert!(
            store
                .path(&project, &key)
                .unwrap()
                .starts_with(dir.path().join("blobs").join("p").join(&key.as_str()[..2]))
        );

        let other = BlobKey::of(b"other");
        let err = store
            .write_bytes(&project, &other, Bytes::from_static(b"not other"))
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }));
        assert_eq!(store.size(&project, &other).await.unwrap(), None);
        let leftovers = std::fs::read_dir(dir.path().join("blobs").join("p"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0, "the temporary file is removed");

        let small = BlobStore::new(dir.path()).with_max_size(3);
        let err = small
            .write_bytes(&project, &key, Bytes::from_static(b"hello"))
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 3 }));
    }
}
