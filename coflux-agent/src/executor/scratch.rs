//! Per-execution scratch directories: created only when needed, and recycled.
//!
//! Each execution gets a private `work` directory (its working directory) and a `values`
//! directory (blobs fetched for it), under one base directory of the agent
//! (`coflux-agent-*` in the system temp directory, removed when the pool is dropped).
//! Creating and removing directories costs about 0.35 ms of kernel time each on ext4 (inode
//! allocation, and a synchronous discard when a directory's block is freed on a `discard`
//! mount): more than everything else the agent does for a trivial task. So:
//!
//! - nothing is created up front: a single-use (Python) executor `chdir`s into `work`, so it is
//!   created before such an execution starts ([`Scratch::create_work`]); a concurrent (Rust)
//!   executor does not change directory, and the Rust SDK creates `work` on first use; `values`
//!   is created by the first blob fetched into it;
//! - a set whose directories are still empty (or were never created) when its execution ends
//!   is kept and handed to the next execution; one that holds anything is removed. An execution
//!   therefore never sees another one's files.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

/// How many unused directory sets are kept for reuse (a sequential chain needs two: the
/// waiting parent's and its child's; a burst of executions reuses the same few when they do
/// not touch their directories).
const KEPT: usize = 256;

/// An execution's private directories; removed (or recycled when still empty) when dropped.
pub(crate) struct Scratch {
    /// The set's own directory (holding `work` and `values`).
    root: PathBuf,
    /// Its working directory (may not exist yet).
    pub(crate) work: PathBuf,
    /// Where values fetched for it go (may not exist yet).
    pub(crate) values: PathBuf,
    pool: Weak<ScratchPool>,
}

impl Scratch {
    /// Creates the working directory now (for an executor that changes into it).
    pub(crate) fn create_work(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.work)
    }
}

/// The agent's base directory and the directory sets ready for reuse (agent thread only).
#[derive(Default)]
pub(crate) struct ScratchPool {
    base: RefCell<Option<tempfile::TempDir>>,
    next: Cell<u64>,
    free: RefCell<Vec<PathBuf>>,
}

impl ScratchPool {
    /// A directory set for one execution: a recycled one, or a new (not yet created) one.
    pub(crate) fn take(self: &Rc<Self>) -> std::io::Result<Scratch> {
        let root = match self.free.borrow_mut().pop() {
            Some(root) => root,
            None => {
                let mut base = self.base.borrow_mut();
                let base = match base.as_ref() {
                    Some(base) => base,
                    None => {
                        base.insert(tempfile::Builder::new().prefix("coflux-agent-").tempdir()?)
                    }
                };
                let n = self.next.get();
                self.next.set(n + 1);
                base.path().join(format!("exec-{n}"))
            }
        };
        Ok(Scratch {
            work: root.join("work"),
            values: root.join("values"),
            root,
            pool: Rc::downgrade(self),
        })
    }

    /// Removes every directory set (on shutdown; executions still running keep theirs until
    /// they end).
    pub(crate) fn clear(&self) {
        for root in self.free.borrow_mut().drain(..) {
            remove(&root);
        }
    }

    /// How many directory sets wait for reuse.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.borrow().len()
    }
}

impl Drop for ScratchPool {
    fn drop(&mut self) {
        // Dropping the base removes it with everything in it.
        self.free.get_mut().clear();
    }
}

/// What an ended execution left in its set.
#[derive(Debug, PartialEq, Eq)]
enum Left {
    /// The set was never created (most are not), which one failed `stat` tells.
    Nothing,
    /// Its directories exist but are empty.
    Empty,
    /// Something (or it could not be read).
    Files,
}

fn left_in(root: &Path, work: &Path, values: &Path) -> Left {
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Left::Nothing,
        Err(_) => Left::Files,
        Ok(_) if is_unused(work) && is_unused(values) => Left::Empty,
        Ok(_) => Left::Files,
    }
}

/// Whether `dir` is missing or a directory with nothing in it.
fn is_unused(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn remove(root: &Path) {
    if let Err(e) = std::fs::remove_dir_all(root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!(path = %root.display(), error = %e, "could not remove a scratch directory");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let root = std::mem::take(&mut self.root);
        let Some(pool) = self.pool.upgrade() else {
            return remove(&root);
        };
        let mut free = pool.free.borrow_mut();
        let full = free.len() >= KEPT;
        match left_in(&root, &self.work, &self.values) {
            // A set never created has nothing to remove (a wide fan-out runs more executions
            // at once than are kept: each would cost a failed removal).
            Left::Nothing if full => {}
            Left::Nothing | Left::Empty if !full => free.push(root),
            _ => remove(&root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_directories_are_created_on_demand_reused_and_removed_when_used() {
        let pool = Rc::new(ScratchPool::default());
        let first = pool.take().unwrap();
        let (work, values) = (first.work.clone(), first.values.clone());
        assert!(
            !work.exists() && !values.exists(),
            "nothing is created up front"
        );
        first.create_work().unwrap();
        assert!(work.is_dir());
        drop(first);
        assert_eq!(pool.kept(), 1);

        let second = pool.take().unwrap();
        assert_eq!(second.work, work, "an unused set is handed out again");
        std::fs::create_dir_all(&second.values).unwrap();
        std::fs::write(second.values.join("blob"), "x").unwrap();
        drop(second);
        assert_eq!(pool.kept(), 0);
        assert!(
            !work.parent().unwrap().exists(),
            "a set holding files is removed"
        );

        let third = pool.take().unwrap();
        assert_ne!(third.work, work);
        let root = third.work.parent().unwrap().to_path_buf();
        third.create_work().unwrap();
        let spare = pool.take().unwrap();
        spare.create_work().unwrap();
        let spare_root = spare.work.parent().unwrap().to_path_buf();
        drop(spare);
        pool.clear();
        assert!(!spare_root.exists(), "kept sets are removed on shutdown");
        let base = root.parent().unwrap().to_path_buf();
        drop(pool);
        assert!(!base.exists(), "the base goes with the pool");
        drop(third);
        assert!(!root.exists());
    }
}
