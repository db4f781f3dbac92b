//! The local blob backend: core's [`LocalBlobs`] for each project (`<data_dir>/blobs/<project>`),
//! its blocking calls made on blocking threads. Uploads are hashed while streaming and renamed
//! into place only when the hash matches the key, so a blob is never visible before it is
//! verified.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use coflux_core::model::ProjectName;
use coflux_core::store::blobs::{self, BlobBackend, BlobFileError, BlobUpload, LocalBlobs};
use futures::{Stream, StreamExt};

use super::key::{BlobEntry, BlobError, BlobKey, BlobReader};

const READ_CHUNK: usize = 64 * 1024;

/// Blobs of every project in one directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Blobs under `<data_dir>/blobs`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("blobs"),
        }
    }

    fn project(&self, project: &ProjectName) -> LocalBlobs {
        LocalBlobs::new(self.root.join(project.as_str()))
    }

    /// Where a blob is (or would be) stored.
    pub fn path(&self, project: &ProjectName, key: &BlobKey) -> PathBuf {
        blobs::blob_path(&self.root.join(project.as_str()), key.as_str())
    }

    /// The blob's size, if it exists.
    pub async fn size(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<u64>, BlobError> {
        let key = key.clone();
        blocking(self.project(project), move |b| b.size(key.as_str())).await
    }

    /// Opens a blob for streaming, if it exists.
    pub async fn open(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<BlobReader>, BlobError> {
        let key = key.clone();
        let opened = blocking(self.project(project), move |b| b.open(key.as_str())).await?;
        Ok(opened.map(|(reader, size)| BlobReader {
            size,
            stream: read_stream(reader).boxed(),
        }))
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
        let mut upload = blocking(self.project(project), |b| b.upload()).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Payload(e.to_string()))?;
            if upload.size() + chunk.len() as u64 > max_size {
                return Err(BlobError::TooLarge { limit: max_size });
            }
            upload = blocking(upload, move |mut upload| {
                upload.write(&chunk)?;
                Ok(upload)
            })
            .await?;
        }
        let key = key.clone();
        let (_, size) = blocking(upload, move |upload| upload.commit(Some(key.as_str()))).await?;
        Ok(size)
    }

    /// Every blob of a project with its size and mtime (see `BlobStore::list`).
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<BlobEntry>, BlobError> {
        let stored = blocking(self.project(project), |b| b.list()).await?;
        Ok(stored
            .into_iter()
            .filter_map(|blob| {
                Some(BlobEntry {
                    key: BlobKey::parse(&blob.key).ok()?,
                    size: blob.size,
                    modified: blob.modified,
                })
            })
            .collect())
    }

    /// Deletes a blob; one that is not there is no error.
    pub async fn delete(&self, project: &ProjectName, key: &BlobKey) -> Result<(), BlobError> {
        let key = key.clone();
        blocking(self.project(project), move |b| b.delete(key.as_str())).await
    }
}

/// Runs a blocking step with `value` on a blocking thread.
async fn blocking<V: Send + 'static, T: Send + 'static>(
    value: V,
    step: impl FnOnce(V) -> Result<T, BlobFileError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(move || step(value))
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
        .map_err(BlobError::from)
}

/// Streams a blocking reader in 64 KiB chunks, each read on a blocking thread.
fn read_stream<R: Read + Send + 'static>(
    reader: R,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; READ_CHUNK];
            let n = reader.read(&mut buffer)?;
            buffer.truncate(n);
            Ok::<_, std::io::Error>((buffer, reader))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok((buffer, _)) if buffer.is_empty() => None,
            Ok((buffer, reader)) => Some((Ok(Bytes::from(buffer)), Some(reader))),
            Err(e) => Some((Err(e), None)),
        }
    })
}
