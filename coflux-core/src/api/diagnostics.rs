//! A project's diagnostics (memory, writer counters) and the failure injection its tests use
//! (feature `failpoints`).

#[cfg(feature = "failpoints")]
use super::Error;
use super::Project;
#[cfg(feature = "failpoints")]
use crate::model::RunId;

impl Project {
    /// How many runs the project holds in memory: active runs, and finished runs that someone
    /// still waits on or that were read recently (finished runs are retired from memory).
    pub fn runs_in_memory(&self) -> usize {
        self.handle().router.runs_in_memory()
    }

    /// Whether the project stopped on this node: its lease was lost (its commits are refused)
    /// or it was unloaded (this handle no longer reaches its actors).
    pub fn is_stopped(&self) -> bool {
        self.handle().router.is_fenced() || self.handle().router.is_closed()
    }

    /// The project's store writer counters so far (commits, batches, writes): how well
    /// transitions are grouped into transactions.
    pub fn writer_stats(&self) -> crate::store::writer::WriterStats {
        self.handle().router.writer_stats()
    }

    /// Makes the project's commits fail as on a full disk while `full` is set, to test how it
    /// copes (feature `failpoints`).
    #[cfg(any(test, feature = "failpoints"))]
    pub fn inject_disk_full(&self, full: bool) {
        self.handle().router.inject_disk_full(full);
    }

    /// Makes the actor of `run` panic, to test supervision (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    pub fn inject_run_panic(&self, run: RunId) {
        self.handle().router.inject_run_panic(run);
    }

    /// Makes the project actor panic, to test supervision (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    pub fn inject_project_panic(&self) {
        self.handle().router.inject_project_panic();
    }

    /// Makes the project actor panic while it handles its next message, to test supervision
    /// (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    pub fn inject_project_panic_on_next(&self) {
        self.handle().router.inject_project_panic_on_next();
    }

    /// Makes the actor of an environment panic, to test supervision (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    pub async fn inject_environment_panic(&self, environment: &str) -> Result<(), Error> {
        let env = self.environment_id(environment).await?;
        self.handle().router.inject_environment_panic(env.id);
        Ok(())
    }
}
