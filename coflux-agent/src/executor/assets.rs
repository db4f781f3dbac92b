//! Assets: named sets of files, each stored as a blob, recorded by the server.
//!
//! - `persist_asset` uploads the executor's files (`paths`: {path in the asset: local file})
//!   with [`ExecutorHost::put_blob`], adds the entries it gives by blob (`entries`, e.g. from
//!   another asset), and records the asset with [`ExecutorHost::put_asset`] →
//!   `{asset_id, reference: ["asset", id, name, count, size]}`;
//! - `get_asset` answers `{entries: {path: [blob_key, size, metadata]}}`; the SDK then fetches
//!   each file it restores with `download_blob`, into `<restore dir>/<path>`.
//!
//! Paths are checked on both ways ([`validate_entries`]): relative, `/`-separated, without
//! `.`/`..`/empty components, NUL, control characters or backslashes, so a restore can never
//! write outside its directory. The server checks them again.

use coflux_core::model::asset::media_type;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use coflux_core::protocol::executor::{ExecutionParams, ResponseError};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json, json};

use super::host::{AssetEntry, ExecutorHost, HostError, NewAsset, host_error};

/// How many files of one asset are uploaded at once.
const UPLOADS: usize = 4;

pub use coflux_core::model::asset::{valid_id, validate_entries, validate_path};

/// An entry the SDK gives by blob: `[blob_key, size, metadata]`.
type GivenEntry = (String, u64, Option<Map<String, Json>>);

/// `persist_asset` params (0.12.0: `paths` is a map).
#[derive(Debug, Default, Deserialize)]
struct PersistParams {
    #[serde(default)]
    paths: Option<BTreeMap<String, String>>,
    #[serde(default)]
    metadata: Option<Map<String, Json>>,
    #[serde(default)]
    entries: Option<BTreeMap<String, GivenEntry>>,
}

/// `get_asset` params.
#[derive(Debug, Deserialize)]
struct GetParams {
    asset_id: String,
}

fn params<T: DeserializeOwned>(params: ExecutionParams, code: &str) -> Result<T, ResponseError> {
    let object: Map<String, Json> = params.rest.into_iter().collect();
    serde_json::from_value(Json::Object(object))
        .map_err(|e| ResponseError::new(code, format!("invalid params: {e}")))
}

fn failed(code: &str) -> impl Fn(HostError) -> ResponseError + '_ {
    move |e| host_error(code, e)
}

/// Answers `persist_asset`.
pub(crate) async fn persist(
    host: &Rc<dyn ExecutorHost>,
    params: ExecutionParams,
) -> Result<Json, ResponseError> {
    let params: PersistParams = self::params(params, "persist_error")?;
    let files = params.paths.unwrap_or_default();
    let given = params.entries.unwrap_or_default();
    if let Some(path) = files.keys().find(|p| given.contains_key(*p)) {
        return Err(ResponseError::new(
            "invalid_asset_path",
            format!("asset path {path:?} is given twice"),
        ));
    }
    validate_entries(files.keys().chain(given.keys()).map(String::as_str))
        .map_err(|m| ResponseError::new("invalid_asset_path", m))?;
    if files.is_empty() && given.is_empty() {
        return Err(ResponseError::new(
            "persist_error",
            "the asset has no files",
        ));
    }
    let uploads = files.into_iter().map(|(path, local)| {
        let host = Rc::clone(host);
        async move {
            let local = PathBuf::from(local);
            let meta = tokio::fs::metadata(&local).await;
            if !meta.is_ok_and(|m| m.is_file()) {
                return Err(ResponseError::new(
                    "persist_error",
                    format!("{} is not a readable file", local.display()),
                ));
            }
            let (blob_key, size) = host.put_blob(local).await.map_err(failed("upload_error"))?;
            let metadata = media_type(&path)
                .map(|t| Map::from_iter([("type".to_owned(), json!(t))]))
                .unwrap_or_default();
            Ok((
                path,
                AssetEntry {
                    blob_key,
                    size,
                    metadata,
                },
            ))
        }
    });
    let mut entries: BTreeMap<String, AssetEntry> = futures::stream::iter(uploads)
        .buffer_unordered(UPLOADS)
        .try_collect()
        .await?;
    for (path, (blob_key, size, metadata)) in given {
        let metadata = metadata.unwrap_or_default();
        entries.insert(
            path,
            AssetEntry {
                blob_key,
                size,
                metadata,
            },
        );
    }
    let name = params
        .metadata
        .and_then(|m| m.get("name").and_then(Json::as_str).map(str::to_owned));
    let record = host
        .put_asset(NewAsset { name, entries })
        .await
        .map_err(failed("persist_error"))?;
    Ok(json!({
        "asset_id": record.summary.id,
        "reference": [
            "asset",
            record.summary.id,
            record.summary.name,
            record.summary.count,
            record.summary.size
        ],
    }))
}

/// Answers `get_asset`.
pub(crate) async fn get(
    host: &Rc<dyn ExecutorHost>,
    params: ExecutionParams,
) -> Result<Json, ResponseError> {
    let GetParams { asset_id } = self::params(params, "get_asset_error")?;
    if !valid_id(&asset_id) {
        return Err(ResponseError::new(
            "invalid_asset_id",
            format!("{asset_id:?} is not an asset id"),
        ));
    }
    let record = host
        .get_asset(asset_id)
        .await
        .map_err(failed("get_asset_error"))?;
    // Never hand the SDK a path it would restore outside its directory.
    validate_entries(record.entries.keys().map(String::as_str))
        .map_err(|m| ResponseError::new("invalid_asset_path", m))?;
    let entries: Map<String, Json> = record
        .entries
        .into_iter()
        .map(|(path, e)| (path, json!([e.blob_key, e.size, e.metadata])))
        .collect();
    Ok(json!({ "entries": entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_come_from_extensions() {
        assert_eq!(media_type("x/report.CSV"), Some("text/csv"));
        assert_eq!(media_type("noext"), None);
    }
}
