//! Asset ids and the paths of asset entries, checked the same way by the server, the agent
//! and the CLI: a path is relative and `/`-separated, without empty, `.` or `..` components,
//! NUL, control characters or backslashes, so restoring an asset never writes outside its
//! directory. [`AssetRecord`] is an asset as recorded (by the server, an embedded project and
//! the agent alike), with its content-derived id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

/// One file of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetEntry {
    /// The blob holding the file's bytes (SHA-256 hex).
    pub blob_key: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Free-form metadata (e.g. `{"type": "text/plain"}`); an object.
    #[serde(default)]
    pub metadata: Map<String, Json>,
}

/// An asset as recorded (and as `POST …/assets` receives it): an optional name and its files
/// by path. Its id is derived from its content ([`AssetRecord::id`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRecord {
    /// An optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Path inside the asset → file.
    pub entries: BTreeMap<String, AssetEntry>,
}

impl AssetRecord {
    /// Canonical JSON: sorted keys at every level, whatever serde_json's map order is.
    pub fn canonical(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or(Json::Null);
        serde_json::to_vec(&sorted_json(value)).unwrap_or_default()
    }

    /// The content-derived id: `A` and the first 16 hex digits of the SHA-256 of
    /// [`AssetRecord::canonical`].
    pub fn id(&self) -> String {
        let digest = hex::encode(Sha256::digest(self.canonical()));
        format!("A{}", &digest[..16])
    }

    /// The total size of its files in bytes.
    pub fn size(&self) -> u64 {
        self.entries.values().map(|e| e.size).sum()
    }
}

/// The longest path accepted inside an asset, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Whether `id` is an asset id: `A` and 16 lower-case hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 17
        && id.starts_with('A')
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a path inside an asset; the reason when it could escape a restore directory or is
/// otherwise unusable.
pub fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("is too long");
    }
    if path.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if path.contains('\\') {
        return Err("contains a backslash");
    }
    if path.starts_with('/') {
        return Err("is absolute");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("has an empty component"),
            "." | ".." => return Err("has a '.' or '..' component"),
            c if c.len() > 255 => return Err("has a component longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a whole listing: each path, and that no entry is a directory of another one.
pub fn validate_entries<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let paths: std::collections::BTreeSet<&str> = paths.into_iter().collect();
    for path in &paths {
        validate_path(path).map_err(|why| format!("asset path {path:?} {why}"))?;
        let mut prefix = *path;
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if paths.contains(parent) {
                return Err(format!(
                    "asset path {parent:?} is both a file and the directory of {path:?}"
                ));
            }
            prefix = parent;
        }
    }
    Ok(())
}

/// A media type for common file extensions, recorded as an entry's `type` metadata (as Coflux
/// does).
pub fn media_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "parquet" => "application/vnd.apache.parquet",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

/// `value` with the keys of every object sorted (for canonical JSON, e.g. to derive an asset's
/// id from its record).
pub fn sorted_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Json::Object(map) => {
            let ordered: std::collections::BTreeMap<String, Json> =
                map.into_iter().map(|(k, v)| (k, sorted_json(v))).collect();
            Json::Object(ordered.into_iter().collect())
        }
        Json::Array(items) => Json::Array(items.into_iter().map(sorted_json).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_content_derived_and_validated() {
        let entry = AssetEntry {
            blob_key: "ab".repeat(32),
            size: 3,
            metadata: serde_json::Map::new(),
        };
        let record = |name: Option<&str>| AssetRecord {
            name: name.map(str::to_owned),
            entries: std::collections::BTreeMap::from([("a.txt".to_owned(), entry.clone())]),
        };
        let id = record(Some("r")).id();
        assert!(valid_id(&id), "{id}");
        assert_eq!(id, record(Some("r")).id());
        assert_ne!(id, record(None).id());
        for bad in [
            "",
            "A",
            "a0123456789abcdef",
            "A0123456789ABCDEF",
            "A..",
            "A0123456789abcdef0",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn paths_that_could_escape_are_rejected() {
        for good in [
            "a",
            "out.txt",
            "dir/sub/file.csv",
            "a..b",
            ".hidden",
            "x/.y",
        ] {
            assert_eq!(validate_path(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/./b",
            "..",
            ".",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert!(validate_entries(["a", "a/b"]).is_err());
        assert!(validate_entries(["a/b/c", "a/b"]).is_err());
        assert!(validate_entries(["a/b", "a/c", "ab"]).is_ok());
        assert!(valid_id("A0123456789abcdef"));
        assert!(!valid_id("A0123456789abcde/"));
        assert!(!valid_id("a0123456789abcdef"));
    }
}
