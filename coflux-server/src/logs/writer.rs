//! The log writer thread: blocks for the first queued command, takes everything already queued
//! behind it (up to [`LogStoreOptions::max_batch`] records), commits it in one transaction per
//! project (group commit), then publishes the committed records to their run's followers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use coflux_core::model::{ProjectName, RunId};
use tokio::sync::{broadcast, oneshot};

use super::backend::{LogWriter, Prepared, PreparedMetric};
use super::options::{LogStats, LogStoreOptions};
use super::record::{LogError, StoredLog};

type RunKey = (ProjectName, RunId);
/// The followers of each run, by project and run.
pub(super) type Followers = Mutex<HashMap<RunKey, broadcast::Sender<Arc<StoredLog>>>>;

/// What the writer thread is asked to do.
pub(super) enum Command {
    Append {
        project: ProjectName,
        records: Vec<Prepared>,
    },
    Prune {
        project: ProjectName,
        older_than_ms: i64,
        limit: usize,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    DeleteRuns {
        project: ProjectName,
        runs: Vec<RunId>,
        reply: oneshot::Sender<Result<u64, LogError>>,
    },
    Metrics {
        project: ProjectName,
        records: Vec<PreparedMetric>,
    },
}

/// State shared by the handles and the writer thread.
pub(super) struct Shared {
    pub(super) followers: Followers,
    pub(super) pending: AtomicUsize,
    pub(super) stats: Mutex<LogStats>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) options: LogStoreOptions,
    pub(super) db: Box<dyn LogWriter>,
}

impl Writer {
    pub(super) fn run(mut self, receiver: &mpsc::Receiver<Command>) {
        while let Ok(first) = receiver.recv() {
            let mut appends: Vec<(ProjectName, Vec<Prepared>)> = Vec::new();
            let mut metric_appends: Vec<(ProjectName, Vec<PreparedMetric>)> = Vec::new();
            let mut controls = Vec::new();
            let mut taken = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append { project, records } => {
                        taken += records.len();
                        match appends.iter_mut().find(|(p, _)| *p == project) {
                            Some((_, queued)) => queued.extend(records),
                            None => appends.push((project, records)),
                        }
                    }
                    Command::Metrics { project, records } => {
                        taken += records.len();
                        match metric_appends.iter_mut().find(|(p, _)| *p == project) {
                            Some((_, queued)) => queued.extend(records),
                            None => metric_appends.push((project, records)),
                        }
                    }
                    control => controls.push(control),
                }
                if taken < self.options.max_batch {
                    next = receiver.try_recv().ok();
                }
            }
            for (project, records) in appends {
                self.commit(&project, records);
            }
            for (project, records) in metric_appends {
                self.commit_metrics(&project, records);
            }
            self.shared.pending.fetch_sub(taken, Ordering::AcqRel);
            for control in controls {
                self.control(control);
            }
        }
        tracing::debug!("log writer stopped");
    }

    fn control(&mut self, control: Command) {
        match control {
            Command::Flush { reply } => {
                let _ = reply.send(());
            }
            Command::Prune {
                project,
                older_than_ms,
                limit,
                reply,
            } => {
                let result = self.db.prune(&project, older_than_ms, limit);
                match &result {
                    Ok(deleted) => {
                        tracing::debug!(project = %project, deleted, older_than_ms, "old logs pruned")
                    }
                    Err(_) => self.db.reset(&project),
                }
                let _ = reply.send(result);
            }
            Command::DeleteRuns {
                project,
                runs,
                reply,
            } => {
                let result = self.db.delete_runs(&project, &runs);
                match &result {
                    Ok(deleted) => {
                        tracing::debug!(project = %project, runs = runs.len(), deleted, "logs of deleted runs removed")
                    }
                    Err(_) => self.db.reset(&project),
                }
                let _ = reply.send(result);
            }
            Command::Append { .. } | Command::Metrics { .. } => {}
        }
    }

    fn commit(&mut self, project: &ProjectName, records: Vec<Prepared>) {
        let count = records.len();
        match self.db.write_logs(project, &records) {
            Ok(cursors) => {
                {
                    let mut stats = lock(&self.shared.stats);
                    stats.commits += 1;
                    stats.records += count as u64;
                }
                tracing::trace!(project = %project, records = count, "logs committed");
                let stored = records.into_iter().zip(cursors).map(|(prepared, cursor)| {
                    let record = prepared.record;
                    StoredLog {
                        cursor,
                        execution: record.execution,
                        timestamp_ms: record.timestamp_ms,
                        level: record.level,
                        template: record.template,
                        values: record.values,
                    }
                });
                self.publish(project, stored);
            }
            Err(error) => {
                lock(&self.shared.stats).failures += 1;
                // Drop what is held: it is reopened (and re-checked) on the next batch.
                self.db.reset(project);
                tracing::error!(project = %project, records = count, %error, "failed to write logs; they are lost");
            }
        }
    }

    fn commit_metrics(&mut self, project: &ProjectName, records: Vec<PreparedMetric>) {
        let count = records.len();
        match self.db.write_metrics(project, records) {
            Ok(()) => {
                lock(&self.shared.stats).commits += 1;
                tracing::trace!(project = %project, records = count, "metrics committed");
            }
            Err(error) => {
                lock(&self.shared.stats).failures += 1;
                self.db.reset(project);
                tracing::error!(project = %project, records = count, %error, "failed to write metrics; they are lost");
            }
        }
    }

    fn publish(&self, project: &ProjectName, stored: impl Iterator<Item = StoredLog>) {
        let mut followers = lock(&self.shared.followers);
        if followers.is_empty() {
            return;
        }
        // A batch holds few runs, in stretches: look each stretch's run up once.
        let mut current: Option<(RunId, Option<broadcast::Sender<Arc<StoredLog>>>)> = None;
        for log in stored {
            let run = log.execution.run();
            if current.as_ref().is_none_or(|(r, _)| *r != run) {
                let key = (project.clone(), run);
                let sender = match followers.get(&key) {
                    Some(sender) if sender.receiver_count() == 0 => {
                        followers.remove(&key);
                        None
                    }
                    other => other.cloned(),
                };
                current = Some((run, sender));
            }
            if let Some((_, Some(sender))) = &current {
                // No receivers left is not an error: the follower went away.
                let _ = sender.send(Arc::new(log));
            }
        }
    }
}
