//! [`BlobStore`]: content-addressed blobs, per project, in a local directory (the default) or
//! an S3-compatible bucket.
//!
//! The key is the SHA-256 of the content in lower-case hex. Keys are validated
//! ([`BlobKey::parse`]) before any path or object name is built, and project names are
//! validated by [`ProjectName`], so no request can name anything outside its project. Uploads
//! are streamed (memory stays bounded whatever the blob's size), hashed on the way, and become
//! visible only once the hash matches the key.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use coflux_core::model::ProjectName;
use futures::stream::BoxStream;
use futures::{Stream, TryStreamExt};
use sha2::{Digest, Sha256};

use super::local::LocalBlobs;
use super::s3::S3Blobs;
use crate::config::BlobStoreConfig;

/// The largest blob accepted by default (1 GiB).
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 1 << 30;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The key is not 64 lower-case hexadecimal characters.
    #[error("invalid blob key")]
    InvalidKey,
    /// The content's SHA-256 differs from the key.
    #[error("blob content does not match its key (sha256 {actual})")]
    Mismatch {
        /// The SHA-256 of what was received.
        actual: String,
    },
    /// The content is larger than the limit.
    #[error("blob larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The upload stream failed.
    #[error("reading the upload failed: {0}")]
    Payload(String),
    /// The filesystem failed.
    #[error("blob storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A validated blob key: exactly 64 lower-case hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Validates a key; nothing else is accepted (no `..`, separators, NUL or upper case).
    pub fn parse(key: &str) -> Result<Self, BlobError> {
        let valid = key.len() == 64
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(key.to_owned()))
        } else {
            Err(BlobError::InvalidKey)
        }
    }

    /// The key of some content (its SHA-256).
    pub fn of(content: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(content)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Blobs of every project, in one backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
    max_size: u64,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(LocalBlobs),
    S3(S3Blobs),
}

/// An open blob: its size and its content as a stream of chunks.
pub struct BlobReader {
    /// The blob's size in bytes.
    pub size: u64,
    /// The content, in chunks.
    pub stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// The local store of a data directory (`<data_dir>/blobs`), with the default size limit.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            backend: Backend::Local(LocalBlobs::new(data_dir.as_ref())),
            max_size: DEFAULT_MAX_BLOB_SIZE,
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
            }),
        }
    }

    /// Sets the largest blob [`BlobStore::write`] accepts.
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size;
        self
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

    /// The blob's size, if it exists.
    pub async fn size(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<u64>, BlobError> {
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
    /// error nothing is left behind.
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
        let leftovers = std::fs::read_dir(store.path(&project, &other).unwrap().parent().unwrap())
            .unwrap()
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
