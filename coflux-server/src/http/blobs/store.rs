//! [`BlobStore`]: content-addressed blobs on disk, per project.
//!
//! Layout: `<data_dir>/blobs/<project>/<key[0..2]>/<key>`, where the key is the SHA-256 of the
//! content in lower-case hex. Keys are validated ([`BlobKey::parse`]) before any path is built,
//! and project names are validated by [`ProjectName`], so no request can name a file outside
//! its project's directory. Writes go to a temporary file in the blob's directory, are hashed
//! while streaming, and are renamed into place only when the hash matches the key.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use coflux_core::model::ProjectName;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest blob accepted by default (1 GiB).
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 1 << 30;

const READ_CHUNK: usize = 64 * 1024;

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

/// Blobs of every project under one data directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    max_size: u64,
}

/// An open blob: its file and size.
#[derive(Debug)]
pub struct BlobFile {
    /// The file, positioned at its start.
    pub file: tokio::fs::File,
    /// The blob's size in bytes.
    pub size: u64,
}

impl BlobStore {
    /// The blob store of a data directory (`<data_dir>/blobs`), with the default size limit.
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            root: data_dir.as_ref().join("blobs"),
            max_size: DEFAULT_MAX_BLOB_SIZE,
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

    fn directory(&self, project: &ProjectName, key: &BlobKey) -> PathBuf {
        self.root.join(project.as_str()).join(&key.as_str()[..2])
    }

    /// Where a blob is (or would be) stored.
    pub fn path(&self, project: &ProjectName, key: &BlobKey) -> PathBuf {
        self.directory(project, key).join(key.as_str())
    }

    /// The blob's size, if it exists.
    pub async fn size(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.path(project, key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a blob for reading, if it exists.
    pub async fn open(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<BlobFile>, BlobError> {
        match tokio::fs::File::open(self.path(project, key)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some(BlobFile { file, size }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole blob into memory, if it exists (for small blobs).
    pub async fn read(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<Vec<u8>>, BlobError> {
        match tokio::fs::read(self.path(project, key)).await {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a blob from a stream of chunks: written to a temporary file next to its final
    /// place, hashed on the way, and renamed into place only if the hash equals `key`.
    /// Returns the size written. On any error nothing is left behind.
    pub async fn write<S, E>(
        &self,
        project: &ProjectName,
        key: &BlobKey,
        mut body: S,
    ) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let directory = self.directory(project, key);
        tokio::fs::create_dir_all(&directory).await?;
        let (file, temp_path) = tempfile::Builder::new()
            .prefix(".upload-")
            .tempfile_in(&directory)?
            .into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Payload(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_size {
                return Err(BlobError::TooLarge {
                    limit: self.max_size,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let actual = hex::encode(hasher.finalize());
        if actual != key.as_str() {
            return Err(BlobError::Mismatch { actual });
        }
        let target = directory.join(key.as_str());
        temp_path
            .persist(&target)
            .map_err(|e| BlobError::Io(e.error))?;
        Ok(size)
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

/// Streams a file in chunks (for HTTP responses).
pub fn file_stream(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buffer = vec![0u8; READ_CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
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
                .starts_with(dir.path().join("blobs").join("p").join(&key.as_str()[..2]))
        );

        let other = BlobKey::of(b"other");
        let err = store
            .write_bytes(&project, &other, Bytes::from_static(b"not other"))
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }));
        assert_eq!(store.size(&project, &other).await.unwrap(), None);
        let leftovers = std::fs::read_dir(store.path(&project, &other).parent().unwrap())
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
