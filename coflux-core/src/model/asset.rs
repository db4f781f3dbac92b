//! Asset ids and the paths of asset entries, checked the same way by the server, the agent
//! and the CLI: a path is relative and `/`-separated, without empty, `.` or `..` components,
//! NUL, control characters or backslashes, so restoring an asset never writes outside its
//! directory.

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
