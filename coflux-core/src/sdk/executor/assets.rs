//! Assets of a Rust executor, through the agent with the requests the Python adapter sends:
//! `persist_asset` (`paths` = `{path in the asset: local file}`; files with extra metadata are
//! uploaded first with `upload_blob` and given as `entries` = `{path: [blob_key, size,
//! metadata]}`, as are entries taken from other assets), `get_asset` and `download_blob`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Map, Value as Json, json};

use super::stdio::{CLOSED, StdioLink};
use crate::model::ExecutionId;
use crate::protocol::executor::{
    AdapterRequest, DownloadBlob, ExecutionParams, ResponseError, UploadBlob,
};
use crate::sdk::asset::{Asset, AssetEntry, AssetError, AssetHost, PersistRequest, entry_metadata};

fn refused(error: ResponseError) -> AssetError {
    match error.code.as_str() {
        CLOSED => AssetError::Unavailable(error.message),
        _ => AssetError::Refused {
            code: error.code,
            message: error.message,
        },
    }
}

fn unexpected(what: &str, answer: &Json) -> AssetError {
    AssetError::Unavailable(format!("unexpected {what} answer: {answer}"))
}

fn caller(execution: Option<ExecutionId>) -> Result<String, AssetError> {
    execution.map(|e| e.to_string()).ok_or(AssetError::NoStore)
}

fn local_path(path: &std::path::Path) -> Result<String, AssetError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| AssetError::NotAFile(path.to_path_buf()))
}

fn file_size(path: &std::path::Path) -> Result<u64, AssetError> {
    Ok(std::fs::metadata(path).map_err(AssetError::io(path))?.len())
}

impl StdioLink {
    async fn persist_asset(
        self,
        execution: Option<ExecutionId>,
        request: PersistRequest,
    ) -> Result<Asset, AssetError> {
        let execution_id = caller(execution)?;
        let mut paths = Map::new();
        let mut entries = Map::new();
        let mut size = 0;
        let count = (request.files.len() + request.entries.len()) as u64;
        for file in request.files {
            let source = local_path(&file.source)?;
            let file_size = file_size(&file.source)?;
            size += file_size;
            if file.metadata.is_empty() {
                paths.insert(file.path, Json::String(source));
                continue;
            }
            let answer = self
                .call(AdapterRequest::UploadBlob(UploadBlob {
                    execution_id: execution_id.clone(),
                    source_path: source,
                }))
                .await
                .map_err(refused)?;
            let key = answer["blob_key"]
                .as_str()
                .ok_or_else(|| unexpected("upload_blob", &answer))?;
            let metadata = entry_metadata(&file.path, &file.metadata);
            entries.insert(file.path, json!([key, file_size, metadata]));
        }
        for entry in request.entries {
            size += entry.size;
            entries.insert(
                entry.path,
                json!([entry.blob_key, entry.size, entry.metadata]),
            );
        }
        let mut rest = BTreeMap::new();
        if !paths.is_empty() {
            rest.insert("paths".to_owned(), Json::Object(paths));
        }
        if let Some(name) = &request.name {
            rest.insert("metadata".to_owned(), json!({ "name": name }));
        }
        if !entries.is_empty() {
            rest.insert("entries".to_owned(), Json::Object(entries));
        }
        let params = ExecutionParams { execution_id, rest };
        let answer = self
            .call(AdapterRequest::PersistAsset(params))
            .await
            .map_err(refused)?;
        let id = answer["asset_id"]
            .as_str()
            .ok_or_else(|| unexpected("persist_asset", &answer))?;
        // `reference` (["asset", id, name, count, size]) is our agent's; Python reads only the id.
        let reference = &answer["reference"];
        Ok(Asset::described(
            id.to_owned(),
            reference[2].as_str().map(str::to_owned).or(request.name),
            reference[3].as_u64().or(Some(count)),
            reference[4].as_u64().or(Some(size)),
        ))
    }

    async fn asset_entries(
        self,
        execution: Option<ExecutionId>,
        asset_id: String,
    ) -> Result<Vec<AssetEntry>, AssetError> {
        let execution_id = caller(execution)?;
        let rest = BTreeMap::from([("asset_id".to_owned(), Json::String(asset_id))]);
        let params = ExecutionParams { execution_id, rest };
        let answer = self
            .call(AdapterRequest::GetAsset(params))
            .await
            .map_err(refused)?;
        let listing = answer["entries"]
            .as_object()
            .ok_or_else(|| unexpected("get_asset", &answer))?;
        listing
            .iter()
            .map(|(path, entry)| {
                let (Some(key), Some(size)) = (entry[0].as_str(), entry[1].as_u64()) else {
                    return Err(unexpected("get_asset", &answer));
                };
                Ok(AssetEntry {
                    path: path.clone(),
                    blob_key: key.to_owned(),
                    size,
                    metadata: entry[2].as_object().cloned().unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn download(
        self,
        execution: Option<ExecutionId>,
        entry: AssetEntry,
        target: PathBuf,
    ) -> Result<(), AssetError> {
        let request = AdapterRequest::DownloadBlob(DownloadBlob {
            execution_id: caller(execution)?,
            blob_key: entry.blob_key,
            target_path: local_path(&target)?,
            offset: None,
            length: None,
        });
        self.call(request).await.map_err(refused).map(drop)
    }
}

impl AssetHost for StdioLink {
    fn persist(
        &self,
        execution: Option<ExecutionId>,
        request: PersistRequest,
    ) -> BoxFuture<'static, Result<Asset, AssetError>> {
        self.clone().persist_asset(execution, request).boxed()
    }

    fn entries(
        &self,
        execution: Option<ExecutionId>,
        id: String,
    ) -> BoxFuture<'static, Result<Vec<AssetEntry>, AssetError>> {
        self.clone().asset_entries(execution, id).boxed()
    }

    fn fetch(
        &self,
        execution: Option<ExecutionId>,
        entry: AssetEntry,
        target: PathBuf,
    ) -> BoxFuture<'static, Result<(), AssetError>> {
        self.clone().download(execution, entry, target).boxed()
    }
}
