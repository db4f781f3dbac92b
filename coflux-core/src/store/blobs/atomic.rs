//! [`AtomicWrite`]: a file written to a temporary file, hashed on the way, synced, checked
//! against its expected key when one is given, and only then renamed into place, so nothing is
//! visible half-written.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BlobFileError, io, shard_dir};

const CHUNK: usize = 256 * 1024;

/// A file being written atomically: a temporary file, hashed as it is written, removed unless
/// [`persist`](Self::persist)ed.
#[derive(Debug)]
pub struct AtomicWrite {
    temp: Option<PathBuf>,
    file: File,
    hasher: Sha256,
    size: u64,
}

impl AtomicWrite {
    /// Starts a write with a temporary file in `dir` (created if needed), which must be on the
    /// target's filesystem.
    pub fn create_in(dir: &Path) -> Result<Self, BlobFileError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        loop {
            let path = dir.join(format!(".coflux-tmp-{:016x}", rand::random::<u64>()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        temp: Some(path),
                        file,
                        hasher: Sha256::new(),
                        size: 0,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }

    fn temp(&self) -> &Path {
        self.temp.as_deref().unwrap_or(Path::new("."))
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), BlobFileError> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        let written = self.file.write_all(data);
        written.map_err(|e| io(self.temp())(e))
    }

    /// Appends everything read from `input` (`source` names it in errors).
    pub fn copy_from(&mut self, input: &mut impl Read, source: &Path) -> Result<(), BlobFileError> {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = input.read(&mut buffer).map_err(io(source))?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buffer[..n])?;
        }
    }

    /// The bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the content and gives its key, checked against `expected` if given.
    fn finish(&mut self, expected: Option<&str>) -> Result<String, BlobFileError> {
        let synced = self.file.sync_all();
        synced.map_err(|e| io(self.temp())(e))?;
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        match expected {
            Some(expected) if expected != actual => Err(BlobFileError::Mismatch { actual }),
            _ => Ok(actual),
        }
    }

    fn rename_to(mut self, target: &Path) -> Result<(), BlobFileError> {
        let temp = self.temp.take().expect("a write is persisted once");
        if let Err(e) = std::fs::rename(&temp, target) {
            let _ = std::fs::remove_file(&temp);
            return Err(io(target)(e));
        }
        Ok(())
    }

    /// Syncs, checks the content against `expected` if given, and renames it onto `target`
    /// (replacing it); gives the content's key and size.
    pub fn persist(
        mut self,
        target: &Path,
        expected: Option<&str>,
    ) -> Result<(String, u64), BlobFileError> {
        let key = self.finish(expected)?;
        let size = self.size;
        self.rename_to(target)?;
        Ok((key, size))
    }

    /// Syncs, checks the content against `expected` if given, and places it as a blob under
    /// `root` at its key; gives the key and size.
    pub fn persist_blob(
        mut self,
        root: &Path,
        expected: Option<&str>,
    ) -> Result<(String, u64), BlobFileError> {
        let key = self.finish(expected)?;
        let size = self.size;
        let shard = shard_dir(root, &key);
        std::fs::create_dir_all(&shard).map_err(io(&shard))?;
        self.rename_to(&shard.join(&key))?;
        Ok((key, size))
    }
}

impl Drop for AtomicWrite {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::blob_path;
    use super::*;

    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn entries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn blobs_are_verified_before_they_appear() {
        let dir = tempfile::tempdir().unwrap();
        let mut write = AtomicWrite::create_in(dir.path()).unwrap();
        write.write(b"hello").unwrap();
        assert_eq!(
            write.persist_blob(dir.path(), Some(HELLO)).unwrap(),
            (HELLO.to_owned(), 5)
        );
        assert_eq!(
            std::fs::read(blob_path(dir.path(), HELLO)).unwrap(),
            b"hello"
        );

        let other = "ab".repeat(32);
        let mut write = AtomicWrite::create_in(dir.path()).unwrap();
        write.write(b"not ab").unwrap();
        assert!(matches!(
            write.persist_blob(dir.path(), Some(&other)),
            Err(BlobFileError::Mismatch { actual }) if actual != other
        ));
        assert!(!blob_path(dir.path(), &other).exists());

        // An abandoned write leaves nothing behind.
        let mut write = AtomicWrite::create_in(dir.path()).unwrap();
        write.write(b"half").unwrap();
        drop(write);
        assert_eq!(entries(dir.path()), vec!["2c".to_owned()]);
    }
}
