//! The local-directory blob backend: each project's blobs under `<data_dir>/blobs/<project>`,
//! in the layout of [`coflux_core::store::blobs`].
//!
//! Writes go through the core's [`AtomicWrite`] on blocking threads: a temporary file in the
//! blob's directory, hashed while streaming, renamed into place only when the hash matches the
//! key, so a blob is never visible before it is verified.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use coflux_core::model::ProjectName;
use coflux_core::store::blobs::{self, AtomicWrite};
use futures::{Stream, StreamExt};
use tokio::io::AsyncReadExt;

use super::key::{BlobEntry, BlobError, BlobKey, BlobReader};

const READ_CHUNK: usize = 64 * 1024;

/// Blobs of every project in one directory.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// Blobs under `<data_dir>/blobs`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("blobs"),
        }
    }

    fn project_root(&self, project: &ProjectName) -> PathBuf {
        self.root.join(project.as_str())
    }

    /// Where a blob is (or would be) stored.
    pub fn path(&self, project: &ProjectName, key: &BlobKey) -> PathBuf {
        blobs::blob_path(&self.project_root(project), key.as_str())
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

    /// Opens a blob for streaming, if it exists.
    pub async fn open(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<BlobReader>, BlobError> {
        match tokio::fs::File::open(self.path(project, key)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some(BlobReader {
                    size,
                    stream: file_stream(file).boxed(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a blob from a stream (see `BlobStore::write`).
    pub async fn write<S, E>(
        &self,
        project: &ProjectName,
        key: &BlobKey,
        max_size: u64,
        mut body: S,
    ) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let root = self.project_root(project);
        let directory = blobs::shard_dir(&root, key.as_str());
        let mut write = blocking(move || AtomicWrite::create_in(&directory)).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Payload(e.to_string()))?;
            if write.size() + chunk.len() as u64 > max_size {
                return Err(BlobError::TooLarge { limit: max_size });
            }
            write = blocking(move || {
                write.write(&chunk)?;
                Ok(write)
            })
            .await?;
        }
        let key = key.clone();
        let (_, size) = blocking(move || write.persist_blob(&root, Some(key.as_str()))).await?;
        Ok(size)
    }
}

impl LocalBlobs {
    /// Every blob of a project with its size and mtime (see `BlobStore::list`).
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<BlobEntry>, BlobError> {
        let directory = self.project_root(project);
        tokio::task::spawn_blocking(move || list_directory(&directory))
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }

    /// Deletes a blob; one that is not there is no error.
    pub async fn delete(&self, project: &ProjectName, key: &BlobKey) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(project, key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs a blocking step of a blob write on a blocking thread.
async fn blocking<T: Send + 'static>(
    step: impl FnOnce() -> Result<T, blobs::BlobFileError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
        .map_err(BlobError::from)
}

/// The blobs in a project's directory, laid out as [`blobs::blob_path`]; anything else (temporary upload files,
/// misplaced names) is skipped, and so is a file deleted while the listing runs.
fn list_directory(directory: &Path) -> Result<Vec<BlobEntry>, BlobError> {
    let shards = match std::fs::read_dir(directory) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut blobs = Vec::new();
    for shard in shards {
        let shard = shard?;
        let Some(prefix) = shard.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(shard.path())? {
            let entry = entry?;
            let Some(Ok(key)) = entry.file_name().to_str().map(BlobKey::parse) else {
                continue;
            };
            if blobs::shard_name(key.as_str()) != prefix {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if meta.is_file() {
                blobs.push(BlobEntry {
                    key,
                    size: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
    }
    Ok(blobs)
}

/// Streams a file in 64 KiB chunks (for HTTP responses).
pub fn file_stream(
    file: tokio::fs::File,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
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
