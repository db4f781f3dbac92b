//! Asset records that deleted runs leave behind: once no recorded value refers to an asset
//! any more, its record (`<data_dir>/assets/<project>/<id>.json`) is deleted, and the blobs
//! only it referenced become unreferenced (a blob garbage collector may then remove them).
//!
//! Embedded, deleting runs ([`Project::delete_run`], run retention) does this itself. A host
//! whose own stores refer to assets too (the server's logs) sets
//! [`super::Config::asset_records_by_host`] and calls [`Project::forget_asset_records`] with
//! what those stores refer to.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::RunId;

use super::error::Error;
use super::project::Project;

/// Asset records written within this long are kept even when nothing refers to them yet (an
/// execution persists an asset before it records the result that refers to it).
pub const ASSET_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

impl Project {
    /// Deletes the project's asset records in `directory` (its `<data_dir>/assets/<project>`)
    /// that no recorded value (nor any id in `also_referenced`) refers to and that were written
    /// before `now - ASSET_GRACE`. Returns how many were deleted.
    pub async fn forget_asset_records(
        &self,
        directory: &Path,
        also_referenced: HashSet<String>,
        now: SystemTime,
    ) -> Result<usize, Error> {
        let mut referenced = self.referenced_asset_ids().await?;
        referenced.extend(also_referenced);
        let directory = directory.to_path_buf();
        let cutoff = now.checked_sub(ASSET_GRACE).unwrap_or(UNIX_EPOCH);
        actix_rt::task::spawn_blocking(move || {
            delete_unreferenced_asset_records(&directory, &referenced, cutoff)
        })
        .await
        .map_err(|_| Error::Unavailable("asset record clean-up failed".into()))?
        .map_err(|e| Error::Store(e.into()))
    }

    /// After `deleted` runs are gone: their asset records go too, unless the host removes
    /// them itself. A failure is logged (the records are retried after the next deletion).
    pub(super) async fn after_runs_deleted(&self, deleted: &[RunId]) {
        let Some(directory) = self.asset_records.clone().filter(|_| !deleted.is_empty()) else {
            return;
        };
        match self
            .forget_asset_records(&directory, HashSet::new(), SystemTime::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(project = %self.name(), records = n, "asset records deleted"),
            Err(error) => {
                tracing::warn!(project = %self.name(), %error, "asset records not deleted")
            }
        }
    }
}

/// Deletes the asset records (`<id>.json`) in `directory` not in `referenced` and last
/// modified before `cutoff`; a missing directory has none. Returns how many.
pub fn delete_unreferenced_asset_records(
    directory: &Path,
    referenced: &HashSet<String>,
    cutoff: SystemTime,
) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(id) = name
            .strip_suffix(".json")
            .filter(|_| !name.starts_with('.'))
        else {
            continue;
        };
        if referenced.contains(id) || entry.metadata()?.modified()? >= cutoff {
            continue;
        }
        std::fs::remove_file(entry.path())?;
        deleted += 1;
    }
    Ok(deleted)
}
