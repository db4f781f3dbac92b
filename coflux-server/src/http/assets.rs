//! Asset routes: named sets of files, each file a blob of the project.
//!
//! - `POST /api/projects/{project}/assets` with `{"name"?, "entries": {path: {"blob_key",
//!   "size", "metadata"?}}}` → 201 `{"id","name","count","size"}`. Every path is checked
//!   ([`validate_path`]: relative, `/`-separated, no `.`/`..`/empty components, no NUL,
//!   control characters or backslashes, no file that is also another entry's directory), and
//!   every blob must exist in the project with the declared size;
//! - `GET …/assets/{id}` → `{"id","name","count","size","entries"}`, or 404 `asset_not_found`.
//!
//! Assets are content-addressed: the id is `A` and 16 hex digits of the SHA-256 of the
//! record's canonical JSON, so persisting the same files under the same name twice gives the
//! same id. Records are kept by the [`AssetStore`] (files `<data_dir>/assets/<project>/<id>.json`
//! written atomically, or a PostgreSQL table with `--database-url`); the id is validated
//! ([`valid_id`]) before any path is built.

use crate::asset_store::{AssetStore, AssetStoreError};
use crate::auth::Access;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use coflux_core::model::ProjectName;
use coflux_core::protocol::http::AssetDetail;

use super::blobs::BlobKey;
use super::{existing_project, resource};
use crate::error::ApiError;
use crate::state::AppState;

/// The most entries an asset may have.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest asset name, in characters.
pub const MAX_NAME_LEN: usize = 256;
/// The largest entry metadata, in bytes of JSON.
const MAX_METADATA_LEN: usize = 4096;

/// Registers the asset routes (inside the `/api` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/projects/{project}/assets", Access::DATA).route(web::post().to(create)))
        .service(
            resource("/projects/{project}/assets/{id}", Access::DATA).route(web::get().to(fetch)),
        );
}

/// One file of an asset.
pub use coflux_core::protocol::http::AssetEntry as Entry;

pub use crate::asset_record::Record;

pub use coflux_core::model::asset::{valid_id, validate_entries, validate_path};

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// Checks the record's shape, paths and name (not its blobs).
fn check(record: &Record) -> Result<(), ApiError> {
    if record.entries.is_empty() {
        return Err(bad("empty_asset", "an asset needs at least one entry"));
    }
    if record.entries.len() > MAX_ENTRIES {
        return Err(bad(
            "too_many_entries",
            format!("an asset has at most {MAX_ENTRIES} entries"),
        ));
    }
    if let Some(name) = &record.name
        && (name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control))
    {
        return Err(bad(
            "invalid_asset_name",
            format!(
                "an asset name has at most {MAX_NAME_LEN} characters and no control characters"
            ),
        ));
    }
    validate_entries(record.entries.keys().map(String::as_str))
        .map_err(|m| bad("invalid_asset_path", m))?;
    for (path, entry) in &record.entries {
        let metadata = serde_json::to_vec(&entry.metadata).unwrap_or_default();
        if metadata.len() > MAX_METADATA_LEN {
            return Err(bad(
                "invalid_metadata",
                format!("the metadata of {path:?} is larger than {MAX_METADATA_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

fn project_name(project: &coflux_core::Project) -> Result<ProjectName, ApiError> {
    ProjectName::new(project.name()).map_err(ApiError::internal)
}

async fn create(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Record>,
) -> Result<HttpResponse, ApiError> {
    let project = existing_project(&state, &path.into_inner()).await?;
    let project = project_name(&project)?;
    let record = body.into_inner();
    check(&record)?;
    for (path, entry) in &record.entries {
        let key = BlobKey::parse(&entry.blob_key)?;
        match state.blobs.size(&project, &key).await? {
            None => {
                return Err(bad(
                    "asset_blob_missing",
                    format!("the blob of {path:?} ({key}) is not stored in this project"),
                ));
            }
            Some(size) if size != entry.size => {
                return Err(bad(
                    "asset_size_mismatch",
                    format!(
                        "{path:?} is declared {} bytes but its blob has {size}",
                        entry.size
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let id = record.id();
    let summary = crate::asset_record::summary(&record, &id);
    let assets = Arc::clone(&state.assets);
    web::block(move || assets.put(&project, &id, &record))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            AssetStoreError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "asset_conflict",
                "another asset has the same id; change its name or content",
            ),
            e => ApiError::internal(e),
        })?;
    Ok(HttpResponse::Created().json(summary))
}

/// Reads the record `id` (valid) of a project from `assets`.
async fn get(
    assets: &Arc<AssetStore>,
    project: ProjectName,
    id: &str,
) -> Result<Option<Record>, ApiError> {
    let assets = Arc::clone(assets);
    let id = id.to_owned();
    web::block(move || assets.get(&project, &id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Reads an asset record of a project (`None` for an invalid id or no such record).
pub(crate) async fn read(
    state: &AppState,
    project: &coflux_core::Project,
    id: &str,
) -> Result<Option<Record>, ApiError> {
    if !valid_id(id) {
        return Ok(None);
    }
    get(&state.assets, project_name(project)?, id).await
}

async fn fetch(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, id) = path.into_inner();
    if !valid_id(&id) {
        return Err(bad(
            "invalid_asset_id",
            "an asset id is 'A' followed by 16 lower-case hexadecimal digits",
        ));
    }
    let project = existing_project(&state, &project).await?;
    let Some(record) = get(&state.assets, project_name(&project)?, &id).await? else {
        return Err(ApiError::not_found(
            "asset_not_found",
            format!("asset '{id}' not found"),
        ));
    };
    Ok(HttpResponse::Ok().json(AssetDetail {
        summary: crate::asset_record::summary(&record, &id),
        entries: record.entries,
    }))
}
