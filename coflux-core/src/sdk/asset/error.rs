//! [`AssetError`]: why persisting, listing or restoring an asset failed.

use std::path::PathBuf;

/// Why an asset operation failed. `?` turns it into a [`Failure`](crate::sdk::Failure) in a
/// target body.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// No asset store is reachable: the call is outside an execution (and outside
    /// [`with_assets`](super::with_assets)), or the host has none.
    #[error(
        "no asset store here: assets are used inside an execution, or within `with_assets(...)`"
    )]
    NoStore,
    /// A path inside the asset that could escape a restore directory or is otherwise unusable
    /// (see [`crate::model::asset::validate_path`]).
    #[error("invalid_asset_path: asset path {path:?} {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two entries clash: the same path twice, or a file that is also another entry's
    /// directory.
    #[error("invalid_asset_path: {0}")]
    Clash(String),
    /// A restored file would land outside its directory (through a symbolic link there).
    #[error("invalid_asset_path: {path:?} would be restored outside {}", dir.display())]
    Escapes {
        /// The path inside the asset.
        path: String,
        /// The restore directory.
        dir: PathBuf,
    },
    /// Not an asset id (`A` and 16 lower-case hex digits).
    #[error("invalid_asset_id: {0:?} is not an asset id")]
    InvalidId(String),
    /// A file given to persist does not exist or is not a regular file.
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// Nothing matched: an asset needs at least one file.
    #[error("no files to persist")]
    Empty,
    /// The asset does not exist.
    #[error("asset_not_found: asset {0} not found")]
    NotFound(String),
    /// A blob an entry refers to is not stored.
    #[error("asset_blob_missing: blob {0} is not stored")]
    BlobMissing(String),
    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store refused the request (the agent's or server's `{code, message}`).
    #[error("{code}: {message}")]
    Refused {
        /// A stable code, e.g. `invalid_asset_path` or `upload_error`.
        code: String,
        /// A human-readable message.
        message: String,
    },
    /// The link to the store failed (closed, or an unexpected answer).
    #[error("asset store unavailable: {0}")]
    Unavailable(String),
}

impl AssetError {
    /// A stable code: `invalid_asset_path` for any path that is refused (here or by the
    /// store), `invalid_asset_id`, `asset_not_found`, `asset_blob_missing`, `empty_asset`,
    /// `not_a_file`, `no_asset_store`, `io_error`, `unavailable`, or the store's own code.
    pub fn code(&self) -> &str {
        match self {
            Self::NoStore => "no_asset_store",
            Self::InvalidPath { .. } | Self::Clash(_) | Self::Escapes { .. } => {
                "invalid_asset_path"
            }
            Self::InvalidId(_) => "invalid_asset_id",
            Self::NotAFile(_) => "not_a_file",
            Self::Empty => "empty_asset",
            Self::NotFound(_) => "asset_not_found",
            Self::BlobMissing(_) => "asset_blob_missing",
            Self::Io { .. } => "io_error",
            Self::Refused { code, .. } => code,
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// Checks a listing of asset paths ([`crate::model::asset::validate_entries`]).
    pub(crate) fn check_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), Self> {
        let paths: Vec<&str> = paths.into_iter().collect();
        for path in &paths {
            crate::model::asset::validate_path(path).map_err(|why| Self::InvalidPath {
                path: (*path).to_owned(),
                reason: why.to_owned(),
            })?;
        }
        crate::model::asset::validate_entries(paths.iter().copied()).map_err(Self::Clash)
    }
}
