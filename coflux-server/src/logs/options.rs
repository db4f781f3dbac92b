//! The log store's options and its writer's counters.

use coflux_core::store::Durability;

/// Tuning of a [`LogStore`].
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// `synchronous` of the log databases (logs are best-effort; `Normal` is plenty).
    pub durability: Durability,
    /// The most records committed in one transaction.
    pub max_batch: usize,
    /// The most records queued and not yet written; beyond it `append` fails with
    /// [`LogError::Overloaded`].
    pub max_pending: usize,
    /// How many live records a follower may fall behind before it re-reads from the database.
    pub follower_buffer: usize,
    /// The most records one pruning transaction deletes (pruning runs in such batches, so
    /// appends are never held up for long).
    pub prune_batch: usize,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            max_batch: 500,
            max_pending: 100_000,
            follower_buffer: 1024,
            prune_batch: 5_000,
        }
    }
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Transactions committed.
    pub commits: u64,
    /// Records committed.
    pub records: u64,
    /// Transactions that failed (their records were lost).
    pub failures: u64,
}
