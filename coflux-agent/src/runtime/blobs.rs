//! [`BlobClient`]: uploads and downloads content-addressed blobs through the server's HTTP API
//! (`/api/projects/{project}/blobs/{sha256}`), streaming files in both directions.
//!
//! Every request is idempotent (blobs are addressed by their content, an asset record by its
//! entries), so while the server cannot be reached or answers 502/503/504 (e.g. it restarts)
//! a transfer is tried again with backoff, for up to [`RETRY_FOR`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::executor::{AssetRecord, NewAsset};

const CHUNK: usize = 256 * 1024;

/// How long a transfer is retried while the server is unreachable or unavailable.
pub const RETRY_FOR: Duration = Duration::from_secs(120);

/// Why a blob transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Reading or writing a local file failed.
    #[error("blob file error: {0}")]
    Io(#[from] std::io::Error),
    /// The server could not be reached or answered with an error.
    #[error("blob transfer failed: {0}")]
    Http(String),
    /// The server could not be reached, or answered that it is unavailable (tried again).
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
    /// The key is not a sha256 hex digest.
    #[error("invalid blob key")]
    InvalidKey,
    /// The server answered with an API error (`{"error":{"code","message"}}`).
    #[error("{code}: {message}")]
    Api {
        /// The server's stable code, e.g. `asset_not_found`.
        code: String,
        /// The server's message.
        message: String,
    },
}

impl BlobError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io(_) => "blob_io",
            Self::Http(_) => "blob_http",
            Self::Unavailable(_) => "unavailable",
            Self::InvalidKey => "invalid_blob_key",
            Self::Api { .. } => "api_error",
        }
    }
}

/// The HTTP address of the node blob transfers go to: shared with the agent's link, which
/// sets it to the node it connected to last (a configured one, a learned cluster node, or the
/// owner a `moved` close named), so transfers follow the agent when a node goes away.
#[derive(Clone, Debug)]
pub struct ServerBase(Arc<Mutex<String>>);

impl ServerBase {
    /// Starts at `server` (`http://host:port`).
    pub fn new(server: &str) -> Self {
        Self(Arc::new(Mutex::new(
            server.trim_end_matches('/').to_owned(),
        )))
    }

    /// Moves to `server` (`http://host:port`).
    pub fn set(&self, server: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = server.trim_end_matches('/').to_owned();
    }

    /// The current address.
    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Talks to one project's blob store (and its asset records).
#[derive(Clone)]
pub struct BlobClient {
    server: ServerBase,
    project: String,
}

impl BlobClient {
    /// A client for `project` on the server at `server` (`http://host:port`).
    pub fn new(server: &str, project: &str) -> Self {
        Self::following(ServerBase::new(server), project)
    }

    /// A client for `project` on whichever node `server` names at the time of each transfer.
    pub fn following(server: ServerBase, project: &str) -> Self {
        Self {
            server,
            project: project.to_owned(),
        }
    }

    /// `…/api/projects/{project}/{what}` on the current node.
    fn url(&self, what: &str) -> String {
        format!("{}/api/projects/{}/{what}", self.server.get(), self.project)
    }

    fn client() -> awc::Client {
        crate::net::client(std::time::Duration::from_secs(300))
    }

    /// Uploads a file (unless the server has it already); returns its key and size.
    pub async fn put_file(&self, path: &Path) -> Result<(String, u64), BlobError> {
        let (key, size) = hash_file(path).await?;
        let url = self.url(&format!("blobs/{key}"));
        retrying(|| Self::upload(&url, path)).await?;
        Ok((key, size))
    }

    async fn upload(url: &str, path: &Path) -> Result<(), BlobError> {
        let exists = Self::client()
            .head(url)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if !exists {
            let file = tokio::fs::File::open(path).await?;
            let body = futures::stream::unfold(file, |mut file| async move {
                let mut buf = vec![0u8; CHUNK];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
                    }
                    Err(e) => Some((Err(e), file)),
                }
            });
            let response = Self::client()
                .put(url)
                .insert_header(("content-type", "application/octet-stream"))
                .send_stream(Box::pin(body))
                .await
                .map_err(no_answer)?;
            check_status(response.status(), "upload")?;
        }
        Ok(())
    }

    /// Downloads a blob into `target` (written to a temporary file, then renamed).
    pub async fn get_file(&self, key: &str, target: &Path) -> Result<(), BlobError> {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BlobError::InvalidKey);
        }
        retrying(|| self.download(key, target)).await
    }

    async fn download(&self, key: &str, target: &Path) -> Result<(), BlobError> {
        let mut response = Self::client()
            .get(self.url(&format!("blobs/{key}")))
            .send()
            .await
            .map_err(no_answer)?;
        check_status(response.status(), &format!("download of {key}"))?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let partial = partial_path(target);
        let mut file = tokio::fs::File::create(&partial).await?;
        // Streamed chunk by chunk (bounded memory) and hashed on the way: a truncated or
        // corrupted download never takes the target's place.
        let mut hasher = Sha256::new();
        let received: Result<(), BlobError> = async {
            while let Some(chunk) = response.next().await {
                let chunk = chunk.map_err(|e| BlobError::Http(e.to_string()))?;
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            Ok(())
        }
        .await;
        drop(file);
        let received = received.and_then(|()| {
            let actual = hex::encode(hasher.finalize());
            if actual.eq_ignore_ascii_case(key) {
                Ok(())
            } else {
                Err(BlobError::Http(format!(
                    "download of {key} has the wrong content (sha256 {actual})"
                )))
            }
        });
        if let Err(error) = received {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
        tokio::fs::rename(&partial, target).await?;
        Ok(())
    }
}

impl BlobClient {
    /// Records an asset whose blobs are uploaded (`POST …/assets`); gives its summary.
    pub async fn put_asset(&self, asset: &NewAsset) -> Result<AssetRecord, BlobError> {
        retrying(|| async {
            let response = Self::client()
                .post(self.url("assets"))
                .send_json(asset)
                .await
                .map_err(no_answer)?;
            json_answer(response).await
        })
        .await
    }

    /// An asset with its entries (`GET …/assets/{id}`); the id must be valid already.
    pub async fn get_asset(&self, id: &str) -> Result<AssetRecord, BlobError> {
        retrying(|| async {
            let response = Self::client()
                .get(self.url(&format!("assets/{id}")))
                .send()
                .await
                .map_err(no_answer)?;
            json_answer(response).await
        })
        .await
    }
}

/// Runs `attempt` until it succeeds or fails with anything but [`BlobError::Unavailable`],
/// waiting between tries (100 ms doubling to 5 s) for at most [`RETRY_FOR`].
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, BlobError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BlobError>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Err(BlobError::Unavailable(reason)) if start.elapsed() < RETRY_FOR => {
                tracing::debug!(%reason, retry_in = ?delay, "blob transfer: the server is unavailable");
                actix_rt::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// A request that did not get an answer.
fn no_answer(error: awc::error::SendRequestError) -> BlobError {
    BlobError::Unavailable(error.to_string())
}

/// An error for an unsuccessful status: unavailable (tried again) for 502, 503 and 504.
fn check_status(status: awc::http::StatusCode, what: &str) -> Result<(), BlobError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        502..=504 => Err(BlobError::Unavailable(format!("{what} answered {status}"))),
        _ => Err(BlobError::Http(format!("{what} answered {status}"))),
    }
}

/// Decodes a JSON answer, or the API error of a failed one.
async fn json_answer<S, T>(mut response: awc::ClientResponse<S>) -> Result<T, BlobError>
where
    S: futures::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    T: serde::de::DeserializeOwned,
{
    let status = response.status();
    let body = response
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| BlobError::Unavailable(e.to_string()))?;
    if matches!(status.as_u16(), 502..=504) {
        return Err(BlobError::Unavailable(format!(
            "the server answered {status}"
        )));
    }
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| BlobError::Http(e.to_string()));
    }
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let field = |name: &str| error["error"][name].as_str().map(str::to_owned);
    Err(BlobError::Api {
        code: field("code").unwrap_or_else(|| format!("http_{}", status.as_u16())),
        message: field("message").unwrap_or_else(|| format!("the server answered {status}")),
    })
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// The sha256 (hex) and size of a file, read in chunks.
pub async fn hash_file(path: &Path) -> Result<(String, u64), std::io::Error> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
