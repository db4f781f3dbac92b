//! Blob routes: agents upload and download values' bytes through these.
//!
//! - `PUT /api/projects/{project}/blobs/{key}`: the raw bytes as the body → 201
//!   `{"key","size"}`; 400 `blob_mismatch` when the content's SHA-256 is not the key;
//! - `GET …/blobs/{key}`: the bytes (`application/octet-stream`) or 404 `blob_not_found`;
//! - `HEAD …/blobs/{key}`: 200 with the blob's `Content-Length`, or 404.
//!
//! The key is validated before anything touches the storage (400 `invalid_blob_key`), and
//! the project must exist (404 `project_not_found`). Bodies stream in both directions with
//! bounded buffers. The store ([`AppState::blobs`]) is a local directory or an S3 bucket
//! (`--blob-store`); the routes behave the same over both.

pub use crate::blobs::{
    BlobEntry, BlobError, BlobKey, BlobReader, BlobStore, DEFAULT_MAX_BLOB_SIZE, Deletion,
    LocalDir, PART_SIZE, S3Blobs,
};

use crate::auth::Access;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use coflux_core::model::ProjectName;
use coflux_core::protocol::http::StoredBlob;

use super::{existing_project, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the blob routes (inside the `/api` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project}/blobs/{key}", Access::DATA)
            .route(web::put().to(put_blob))
            .route(web::get().to(get_blob))
            .route(web::head().to(head_blob)),
    );
}

/// Validates the key first, then checks that the project exists.
async fn locate(
    state: &AppState,
    project: &str,
    key: &str,
) -> Result<(BlobStore, ProjectName, BlobKey), ApiError> {
    let key = BlobKey::parse(key)?;
    let project = existing_project(state, project).await?;
    let name = ProjectName::new(project.name()).map_err(ApiError::internal)?;
    Ok((state.blobs.clone(), name, key))
}

/// The first `limit` bytes of a blob (for previews), with its whole size; `None` when absent.
pub(crate) async fn read_prefix(
    state: &AppState,
    project: &str,
    key: &str,
    limit: usize,
) -> Result<Option<(Vec<u8>, u64)>, ApiError> {
    use futures::StreamExt;
    let (store, project, key) = locate(state, project, key).await?;
    let Some(mut blob) = store.open(&project, &key).await? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    while out.len() < limit {
        match blob.stream.next().await {
            Some(chunk) => out.extend_from_slice(&chunk.map_err(ApiError::internal)?),
            None => break,
        }
    }
    out.truncate(limit);
    Ok(Some((out, blob.size)))
}

fn not_found(key: &BlobKey) -> ApiError {
    ApiError::not_found("blob_not_found", format!("blob '{key}' not found"))
}

async fn put_blob(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    let (store, project, key) = locate(&state, &project, &key).await?;
    let size = store.write(&project, &key, body).await?;
    Ok(HttpResponse::Created().json(StoredBlob {
        key: key.as_str().to_owned(),
        size,
    }))
}

async fn get_blob(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    let (store, project, key) = locate(&state, &project, &key).await?;
    let blob = store
        .open(&project, &key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    Ok(blob_response(blob.size).streaming(blob.stream))
}

/// Like GET without the body: the blob's `Content-Length` (from the store's metadata).
async fn head_blob(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    let (store, project, key) = locate(&state, &project, &key).await?;
    let size = store
        .size(&project, &key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    // actix-web sends no body for HEAD but keeps the declared length.
    let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
    Ok(blob_response(size).streaming(empty))
}

fn blob_response(size: u64) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .no_chunking(size);
    response
}

/// A storage failure as the API reports it (a bad key or content is the client's fault).
impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::InvalidKey => Self::bad_request(
                "invalid_blob_key",
                "a blob key is 64 lower-case hexadecimal characters (its SHA-256)",
            ),
            BlobError::Mismatch { actual } => Self::bad_request(
                "blob_mismatch",
                format!("the content does not match the key (its SHA-256 is {actual})"),
            ),
            BlobError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "blob_too_large",
                format!("blobs are limited to {limit} bytes"),
            ),
            BlobError::Payload(message) => Self::bad_request(
                "invalid_payload",
                format!("the request body could not be read: {message}"),
            ),
            // A full disk passes (agents retry a 503 until it has space again).
            BlobError::Io(e) if is_disk_full(&e) => {
                tracing::warn!(error = %e, "a blob cannot be written: the disk is full");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the server's blob storage cannot be written (disk full?); try again once it \
                     has space",
                )
            }
            BlobError::Io(e) => Self::internal(e),
        }
    }
}

/// Whether an I/O error says the disk (or the user's quota) is full.
fn is_disk_full(error: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    error.kind() == std::io::ErrorKind::StorageFull
        || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}
