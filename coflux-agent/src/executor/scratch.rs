//! Per-execution scratch directories, recycled.
//!
//! Each execution gets a private `work` directory (its working directory) and a `values`
//! directory (blobs fetched for it). Creating and removing three directories per execution
//! costs about 0.35 ms of kernel time on ext4 (inode allocation, and a synchronous discard
//! when a directory's block is freed on a `discard` mount): more than everything else the
//! agent does for a trivial task. So a directory set whose `work` and `values` are still empty
//! when its execution ends is kept and handed to the next execution; one that holds anything
//! is removed, as before. An execution therefore never sees another one's files. The kept
//! sets are removed when the pool shuts down (an agent killed with SIGKILL leaves them, at most
//! [`KEPT`], as it leaves the directories of the executions it was running).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

/// How many empty directory sets are kept for reuse (a sequential chain needs two: the
/// waiting parent's and its child's).
const KEPT: usize = 8;

/// An execution's private directories; removed (or recycled when still empty) when dropped.
pub(crate) struct Scratch {
    root: Option<tempfile::TempDir>,
    /// Its working directory.
    pub(crate) work: PathBuf,
    /// Where values fetched for it go.
    pub(crate) values: PathBuf,
    pool: Weak<ScratchPool>,
}

/// Empty directory sets ready for reuse (agent thread only).
#[derive(Default)]
pub(crate) struct ScratchPool {
    free: RefCell<Vec<tempfile::TempDir>>,
}

impl ScratchPool {
    /// A directory set for one execution: a recycled one, or a new one.
    pub(crate) fn take(self: &Rc<Self>) -> std::io::Result<Scratch> {
        let root = match self.free.borrow_mut().pop() {
            Some(root) => root,
            None => {
                let root = tempfile::Builder::new().prefix("coflux-exec-").tempdir()?;
                std::fs::create_dir(root.path().join("work"))?;
                std::fs::create_dir(root.path().join("values"))?;
                root
            }
        };
        Ok(Scratch {
            work: root.path().join("work"),
            values: root.path().join("values"),
            root: Some(root),
            pool: Rc::downgrade(self),
        })
    }

    /// Removes the kept directory sets (on shutdown).
    pub(crate) fn clear(&self) {
        self.free.borrow_mut().clear();
    }

    /// How many directory sets wait for reuse.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.borrow().len()
    }
}

/// Whether `dir` is a directory with nothing in it.
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (Some(root), Some(pool)) = (self.root.take(), self.pool.upgrade()) else {
            return;
        };
        let mut free = pool.free.borrow_mut();
        if free.len() < KEPT && is_empty_dir(&self.work) && is_empty_dir(&self.values) {
            free.push(root);
        }
        // Otherwise `root` is dropped here: removed with everything in it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_directories_are_reused_and_used_ones_removed() {
        let pool = Rc::new(ScratchPool::default());
        let first = pool.take().unwrap();
        let (work, values) = (first.work.clone(), first.values.clone());
        assert!(work.is_dir() && values.is_dir());
        drop(first);
        assert_eq!(pool.kept(), 1);

        let second = pool.take().unwrap();
        assert_eq!(second.work, work, "an empty set is handed out again");
        std::fs::write(second.work.join("out.txt"), "x").unwrap();
        drop(second);
        assert_eq!(pool.kept(), 0);
        assert!(!work.exists(), "a set holding files is removed");

        let third = pool.take().unwrap();
        assert_ne!(third.work, work);
        assert!(third.work.is_dir() && third.values.is_dir());
        let root = third.work.parent().unwrap().to_path_buf();
        let spare = pool.take().unwrap();
        let spare_root = spare.work.parent().unwrap().to_path_buf();
        drop(spare);
        pool.clear();
        assert!(!spare_root.exists(), "kept sets are removed on shutdown");
        drop(pool);
        drop(third);
        assert!(!root.exists(), "without its pool a set is removed");
    }
}
