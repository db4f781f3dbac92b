//! Unloading a project: whether it is in use, then stopping its actors and closing its stores.

use std::sync::atomic::Ordering;

use crate::store::writer::GroupCommitWriter;

use super::{Router, lock};

impl Router {
    /// Records whether the project has cron schedules (by its actor, after each message).
    pub fn set_scheduled(&self, scheduled: bool) {
        self.scheduled.store(scheduled, Ordering::Release);
    }

    /// Whether a commit was refused because the project's lease is lost (the project must
    /// stop on this node).
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Whether the project was unloaded (its actors stopped; messages to them are dropped).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Why the project may not be unloaded now (`None`: it may): a run in memory, a worker
    /// connected, a caller waiting, a cron schedule, or something queued for or held by its
    /// writer.
    pub fn busy(&self) -> Option<&'static str> {
        if self.scheduled.load(Ordering::Acquire) {
            Some("cron schedules")
        } else if !lock(&self.runs).is_empty() {
            Some("runs in memory")
        } else if !lock(&self.workers).is_empty() {
            Some("workers connected")
        } else if !lock(&self.replies).is_empty() {
            Some("callers waiting")
        } else if !lock(&self.outgoing).is_empty()
            || self.flush_scheduled.load(Ordering::Acquire)
            || !lock(&self.writer)
                .as_ref()
                .is_none_or(GroupCommitWriter::is_idle)
        {
            Some("commits pending")
        } else {
            None
        }
    }

    /// Unloading, first step: stops every actor of the project, each after the messages
    /// already in its mailbox.
    pub async fn stop_actors(&self) {
        let project = lock(&self.project_actor).clone();
        let environments: Vec<_> = lock(&self.environments).values().cloned().collect();
        let runs: Vec<_> = lock(&self.runs).values().map(|(a, _)| a.clone()).collect();
        if let Some(addr) = project {
            let _ = addr.send(super::super::hosts::Stop).await;
        }
        for addr in environments {
            let _ = addr.send(super::super::hosts::Stop).await;
        }
        for addr in runs {
            let _ = addr.send(super::super::hosts::Stop).await;
        }
    }

    /// Unloading, second step (once the actors are stopped): hands what they queued to the
    /// writer, then lets the writer go (it commits what it holds and closes the database) and
    /// closes the reader. Later messages to the project's actors are dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.flush();
        self.shutdown();
        // A PostgreSQL client must not be dropped on an async runtime's thread (its drop
        // blocks on its own runtime).
        if let Some(reader) = lock(&self.reader).take() {
            let _ = std::thread::Builder::new()
                .name("coflux-reader-close".into())
                .spawn(move || drop(reader));
        }
    }
}
