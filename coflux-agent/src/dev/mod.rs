//! `--dev` mode support: watch a repository for changes ([`Watcher`]) and rebuild it
//! ([`BuildCommand`]) before the agent re-discovers its targets and restarts its executors.

mod build;
mod watch;

pub use build::{BuildCommand, BuildError, BuildSuccess, DEFAULT_TAIL_LINES};
pub use watch::{
    ChangeBatch, DEFAULT_IGNORE, IgnoreRules, WatchError, WatchItem, WatchOptions, Watcher,
};
