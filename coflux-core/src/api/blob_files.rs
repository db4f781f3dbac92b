//! A local content-addressed blob directory, laid out as the server's local backend
//! (`<dir>/<key[0..2]>/<key>`, the key being the SHA-256 of the content in lower-case hex).
//! Keys are checked before any path is built; files are written to a temporary file in the
//! target's directory, hashed on the way, synced, then renamed into place, so a blob or a
//! restored file is never visible half-written. Blocking: call from a blocking thread.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sdk::AssetError;

const CHUNK: usize = 256 * 1024;

/// Whether `key` is a blob key: 64 lower-case hex digits.
pub(crate) fn valid_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where blob `key` is kept under `dir` (the key must be valid).
fn blob_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(&key[..2]).join(key)
}

/// The size of blob `key`, if it is stored.
pub(crate) fn size(dir: &Path, key: &str) -> Result<Option<u64>, AssetError> {
    if !valid_key(key) {
        return Ok(None);
    }
    let path = blob_path(dir, key);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AssetError::io(path)(e)),
    }
}

/// Stores the file at `source` as a blob under `dir`; gives its key and size.
pub(crate) fn store(dir: &Path, source: &Path) -> Result<(String, u64), AssetError> {
    let mut input = File::open(source).map_err(AssetError::io(source))?;
    std::fs::create_dir_all(dir).map_err(AssetError::io(dir))?;
    let (temp, hash, size) = copy_to_temp(&mut input, source, dir)?;
    let key = hex::encode(hash);
    let target = blob_path(dir, &key);
    let placed = (|| {
        let parent = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        if target.exists() {
            // The same content is stored already.
            return std::fs::remove_file(&temp);
        }
        std::fs::rename(&temp, &target)
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(AssetError::io(target)(e));
    }
    Ok((key, size))
}

/// Copies blob `key` from `dir` to `target` (replacing it atomically), checking its content
/// against the key.
pub(crate) fn copy_out(dir: &Path, key: &str, target: &Path) -> Result<(), AssetError> {
    if !valid_key(key) {
        return Err(AssetError::BlobMissing(key.to_owned()));
    }
    let path = blob_path(dir, key);
    let mut input = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AssetError::BlobMissing(key.to_owned()));
        }
        Err(e) => return Err(AssetError::io(path)(e)),
    };
    let parent = target.parent().unwrap_or(Path::new("."));
    let (temp, hash, _) = copy_to_temp(&mut input, &path, parent)?;
    let outcome = if hex::encode(hash) != key {
        Err(AssetError::Io {
            path: path.clone(),
            source: std::io::Error::other("the blob's content does not match its key"),
        })
    } else {
        std::fs::rename(&temp, target).map_err(AssetError::io(target))
    };
    if outcome.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    outcome
}

/// Writes `data` to `target` atomically (a temporary file in its directory, synced, renamed).
pub(crate) fn write_atomic(target: &Path, data: &[u8]) -> Result<(), AssetError> {
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(AssetError::io(parent))?;
    let (temp, mut file) = temp_file(parent)?;
    let written = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(AssetError::io(target)(e));
    }
    Ok(())
}

/// Copies `input` into a new temporary file in `dir`, hashing it; gives the file, the hash and
/// the size. The temporary file is removed if the copy fails.
fn copy_to_temp(
    input: &mut File,
    source: &Path,
    dir: &Path,
) -> Result<(PathBuf, [u8; 32], u64), AssetError> {
    let (temp, mut output) = temp_file(dir)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    let copied = (|| -> Result<(), AssetError> {
        loop {
            let n = input.read(&mut buffer).map_err(AssetError::io(source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
            output
                .write_all(&buffer[..n])
                .map_err(AssetError::io(&temp))?;
        }
        output.sync_all().map_err(AssetError::io(&temp))
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok((temp, hasher.finalize().into(), size))
}

/// A new, uniquely named temporary file in `dir`.
fn temp_file(dir: &Path) -> Result<(PathBuf, File), AssetError> {
    loop {
        let path = dir.join(format!(".coflux-tmp-{:016x}", rand::random::<u64>()));
        match File::options().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(AssetError::io(path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a.txt");
        std::fs::write(&source, "hello").unwrap();
        let blobs = dir.path().join("blobs");
        let (key, size) = store(&blobs, &source).unwrap();
        assert_eq!(
            key,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(size, 5);
        assert_eq!(store(&blobs, &source).unwrap().0, key);
        assert_eq!(size_of(&blobs, &key), Some(5));

        let out = dir.path().join("out.txt");
        copy_out(&blobs, &key, &out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello");

        // A corrupted blob is not restored; bad keys never reach the filesystem.
        std::fs::write(blob_path(&blobs, &key), "bye").unwrap();
        assert!(copy_out(&blobs, &key, &dir.path().join("bad.txt")).is_err());
        assert!(!dir.path().join("bad.txt").exists());
        for bad in ["../../etc/passwd", "%2e%2e", "ab", &key.to_uppercase()] {
            assert!(matches!(
                copy_out(&blobs, bad, &out),
                Err(AssetError::BlobMissing(_))
            ));
            assert_eq!(size_of(&blobs, bad), None);
        }
        // No temporary file is left behind.
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".coflux-tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    fn size_of(dir: &Path, key: &str) -> Option<u64> {
        size(dir, key).unwrap()
    }
}
