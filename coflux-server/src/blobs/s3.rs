//! The S3 blob backend (any S3-compatible server), through `object_store`.
//!
//! Objects are named `[<prefix>/]<project>/<key>`. An upload is hashed while it streams and
//! becomes visible only after the hash matched the key: a blob smaller than one part
//! ([`PART_SIZE`]) is buffered and sent as a single PUT after the check; a larger one goes up as
//! a multipart upload that is completed only after the check (and aborted otherwise).
//!
//! Every S3 request runs on a small dedicated runtime ([`IoRuntime`]), so connections never
//! belong to one of actix-web's worker runtimes; bodies cross between the two through bounded
//! channels, so a slow client or a slow bucket holds back the other side instead of filling
//! memory. Memory per transfer stays bounded by a few parts whatever the blob's size.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coflux_core::model::ProjectName;
use futures::{Stream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::key::{BlobEntry, BlobError, BlobKey, BlobReader};
use crate::config::S3Config;

/// The size of a multipart upload's parts (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts uploaded concurrently by one upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Chunks in flight between an HTTP worker and the S3 runtime, per transfer.
const CHANNEL_CHUNKS: usize = 8;

/// Transient failures are retried (with backoff) at most this often, within `RETRY_TIMEOUT`:
/// a request waiting on an unreachable store fails within seconds rather than minutes.
const MAX_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Blobs of every project in one bucket. Cheap to clone.
#[derive(Clone)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    prefix: Vec<String>,
    io: Arc<IoRuntime>,
}

impl fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Blobs")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A two-thread runtime that performs the S3 requests, on a thread of its own; it stops when
/// dropped.
struct IoRuntime {
    handle: tokio::runtime::Handle,
    _stop: oneshot::Sender<()>,
}

impl IoRuntime {
    fn start() -> Result<Self, BlobError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coflux-s3")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("coflux-s3-owner".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the S3 runtime and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, BlobError>> + Send + 'static,
    ) -> Result<T, BlobError> {
        self.handle
            .spawn(work)
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }
}

fn backend_error(error: object_store::Error) -> BlobError {
    // The detail (which may name the bucket or endpoint) is only logged by the API layer.
    BlobError::Io(std::io::Error::other(error))
}

impl S3Blobs {
    /// Connects lazily to the configured bucket (no request is made here).
    pub fn connect(config: &S3Config) -> Result<Self, BlobError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_allow_http(config.allow_http)
            .with_retry(RetryConfig {
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder.build().map_err(backend_error)?;
        let prefix = config
            .prefix
            .split('/')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self {
            store: Arc::new(store),
            prefix,
            io: Arc::new(IoRuntime::start()?),
        })
    }

    /// The object name of a blob: `[<prefix>/]<project>/<key>`.
    fn location(&self, project: &ProjectName, key: &BlobKey) -> Path {
        let parts = self.prefix.iter().map(String::as_str);
        Path::from_iter(parts.chain([project.as_str(), key.as_str()]))
    }

    /// The blob's size, if it exists.
    pub async fn size(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<u64>, BlobError> {
        let store = Arc::clone(&self.store);
        let location = self.location(project, key);
        self.io
            .run(async move {
                match store.head(&location).await {
                    Ok(meta) => Ok(Some(meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(backend_error(e)),
                }
            })
            .await
    }

    /// Opens a blob for streaming, if it exists. The object is read on the S3 runtime and
    /// handed over in chunks through a bounded channel.
    pub async fn open(
        &self,
        project: &ProjectName,
        key: &BlobKey,
    ) -> Result<Option<BlobReader>, BlobError> {
        let store = Arc::clone(&self.store);
        let location = self.location(project, key);
        let (opened, size) = oneshot::channel();
        let (chunks, received) = mpsc::channel(CHANNEL_CHUNKS);
        self.io.handle.spawn(async move {
            let result = match store.get(&location).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => {
                    let _ = opened.send(Ok(None));
                    return;
                }
                Err(e) => {
                    let _ = opened.send(Err(backend_error(e)));
                    return;
                }
            };
            if opened.send(Ok(Some(result.meta.size))).is_err() {
                return;
            }
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                // A closed channel: the reader went away; stop reading the object.
                if chunks.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        let size = size
            .await
            .map_err(|_| BlobError::Io(std::io::Error::other("the S3 runtime stopped")))??;
        Ok(size.map(|size| BlobReader {
            size,
            stream: futures::stream::unfold(received, |mut received| async move {
                received.recv().await.map(|chunk| (chunk, received))
            })
            .boxed(),
        }))
    }

    /// Stores a blob from a stream (see `BlobStore::write`): the body is handed to the
    /// S3 runtime through a bounded channel, hashed and uploaded there.
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
        let (chunks, received) = mpsc::channel(CHANNEL_CHUNKS);
        let upload = Upload {
            store: Arc::clone(&self.store),
            location: self.location(project, key),
            small: Vec::new(),
            multipart: None,
        };
        let key = key.clone();
        let done = self.io.handle.spawn(upload.run(key, max_size, received));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| e.to_string());
            let failed = chunk.is_err();
            // A closed channel: the upload failed; its result says why.
            if chunks.send(chunk).await.is_err() || failed {
                break;
            }
        }
        drop(chunks);
        done.await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
    }
}

impl S3Blobs {
    /// Every blob of a project with its size and `LastModified` (see
    /// `BlobStore::list`): the objects directly under `[<prefix>/]<project>/` whose
    /// names are blob keys, listed page by page on the S3 runtime.
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<BlobEntry>, BlobError> {
        let store = Arc::clone(&self.store);
        let parts = self.prefix.iter().map(String::as_str);
        let directory = Path::from_iter(parts.chain([project.as_str()]));
        self.io
            .run(async move {
                let mut listing = store.list(Some(&directory));
                let mut blobs = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(backend_error)?;
                    let Some(mut rest) = meta.location.prefix_match(&directory) else {
                        continue;
                    };
                    let (Some(name), None) = (rest.next(), rest.next()) else {
                        continue;
                    };
                    let Ok(key) = BlobKey::parse(name.as_ref()) else {
                        continue;
                    };
                    blobs.push(BlobEntry {
                        key,
                        size: meta.size,
                        modified: meta.last_modified.into(),
                    });
                }
                Ok(blobs)
            })
            .await
    }

    /// Deletes a blob; one that is not there is no error.
    pub async fn delete(&self, project: &ProjectName, key: &BlobKey) -> Result<(), BlobError> {
        let store = Arc::clone(&self.store);
        let location = self.location(project, key);
        self.io
            .run(async move {
                match store.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(backend_error(e)),
                }
            })
            .await
    }
}

/// One upload in progress: buffered while it is smaller than a part, multipart beyond.
struct Upload {
    store: Arc<AmazonS3>,
    location: Path,
    small: Vec<u8>,
    multipart: Option<WriteMultipart>,
}

type Chunks = mpsc::Receiver<Result<Bytes, String>>;

impl Upload {
    /// Receives the body, uploads it, and makes it visible only if its hash is `key`; on any
    /// failure nothing is visible and uploaded parts are discarded.
    async fn run(mut self, key: BlobKey, max_size: u64, chunks: Chunks) -> Result<u64, BlobError> {
        match self.receive(&key, max_size, chunks).await {
            Ok(size) => Ok(size),
            Err(error) => {
                if let Some(multipart) = self.multipart.take()
                    && let Err(error) = multipart.abort().await
                {
                    tracing::warn!(%error, "aborting a multipart blob upload failed");
                }
                Err(error)
            }
        }
    }

    async fn receive(
        &mut self,
        key: &BlobKey,
        max_size: u64,
        mut chunks: Chunks,
    ) -> Result<u64, BlobError> {
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.map_err(BlobError::Payload)?;
            size += chunk.len() as u64;
            if size > max_size {
                return Err(BlobError::TooLarge { limit: max_size });
            }
            hasher.update(&chunk);
            self.push(&chunk).await?;
        }
        let actual = hex::encode(hasher.finalize());
        if actual != key.as_str() {
            return Err(BlobError::Mismatch { actual });
        }
        match self.multipart.take() {
            Some(multipart) => {
                multipart.finish().await.map_err(backend_error)?;
            }
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.small));
                self.store
                    .put(&self.location, payload)
                    .await
                    .map_err(backend_error)?;
            }
        }
        Ok(size)
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        if let Some(multipart) = &mut self.multipart {
            // Back-pressure: at most PARTS_IN_FLIGHT parts uploading, one more filling.
            multipart
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(backend_error)?;
            multipart.write(chunk);
            return Ok(());
        }
        if self.small.len() + chunk.len() < PART_SIZE {
            self.small.extend_from_slice(chunk);
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&self.location)
            .await
            .map_err(backend_error)?;
        let mut multipart = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        multipart.write(&std::mem::take(&mut self.small));
        multipart.write(chunk);
        self.multipart = Some(multipart);
        Ok(())
    }
}
