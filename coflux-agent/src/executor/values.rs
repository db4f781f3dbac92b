//! Values at the pool boundary: executor wire values ⇄ model values, with files going through
//! the host's blob store.
//!
//! - Executor → model: inline JSON passes through as `Value::Raw`; a `file` value (the adapter
//!   spills JSON over 64 KiB) and each fragment are stored with `put_blob`, and the adapter's
//!   temp file is then deleted.
//! - Model → executor: a `Value::Blob` and each fragment are fetched with `get_blob` into the
//!   execution's value directory, and passed as local paths.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use coflux_core::model::Value;
use coflux_core::protocol::executor::{self as wire, ValueError, WireValue};

use super::host::{ExecutorHost, HostError};

/// Converts a value an executor sent. Files are stored as blobs, then deleted if they are the
/// executor's temp files (see [`is_disposable`]).
pub(crate) async fn from_wire(
    host: &Rc<dyn ExecutorHost>,
    value: WireValue,
    scratch: &Path,
) -> Result<Value, ValueError<HostError>> {
    let host = Rc::clone(host);
    wire::value_from_wire(value, |path: PathBuf| {
        let host = Rc::clone(&host);
        let disposable = is_disposable(&path, scratch);
        async move {
            let stored = host.put_blob(path.clone()).await?;
            if disposable && let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::debug!(path = %path.display(), error = %e, "could not remove a temp file");
            }
            Ok(stored)
        }
    })
    .await
}

/// Converts a value to send to an executor, fetching blobs into `dir` (reused by key).
pub(crate) async fn to_wire(
    host: &Rc<dyn ExecutorHost>,
    value: &Value,
    dir: &Path,
) -> Result<WireValue, HostError> {
    wire::value_to_wire(value, |key: String, _size| {
        let host = Rc::clone(host);
        let target = dir.join(&key);
        async move {
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(HostError::new(
                    "invalid_blob_key",
                    format!("invalid blob key '{key}'"),
                ));
            }
            if tokio::fs::metadata(&target).await.is_err() {
                host.get_blob(key, target.clone()).await?;
            }
            Ok(target)
        }
    })
    .await
}

/// Whether a file an executor named is its own temp file, which the agent deletes once
/// stored: a `coflux_*` file directly in the system temp directory (where the Python adapter
/// and Rust executors write them), or anything in the execution's scratch directory.
pub(crate) fn is_disposable(path: &Path, scratch: &Path) -> bool {
    if path.starts_with(scratch) {
        return true;
    }
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("coflux_"));
    named && path.parent() == Some(std::env::temp_dir().as_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_executor_temp_files_are_disposable() {
        let tmp = std::env::temp_dir();
        let scratch = tmp.join("coflux-exec-x");
        assert!(is_disposable(&tmp.join("coflux_abc"), &scratch));
        assert!(is_disposable(&scratch.join("values/k"), &scratch));
        assert!(!is_disposable(&tmp.join("report.txt"), &scratch));
        assert!(!is_disposable(Path::new("/home/me/coflux_data"), &scratch));
    }
}
