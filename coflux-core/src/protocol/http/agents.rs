//! Bodies of the agent routes: the sessions of connected agents, and what waits in a queue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Millis, QueuedExecution, WaitReason};

/// `GET /api/projects/{project}/sessions[?environment=E]`: the agents' sessions, by
/// environment and worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    /// The sessions.
    pub sessions: Vec<SessionItem>,
}

/// One agent's session (it outlives a dropped connection until the reconnect timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionItem {
    /// The environment it serves.
    pub environment: String,
    /// Its worker id (as in execution assignments).
    pub worker: u64,
    /// Whether its agent is connected now.
    pub connected: bool,
    /// Whether it takes no more work (shutting down).
    #[serde(default)]
    pub draining: bool,
    /// When the session started.
    pub opened_at: Millis,
    /// How many executions it runs at once.
    pub capacity: u32,
    /// Executions assigned to it and not reported yet.
    pub running: usize,
    /// Its running executions per target (`module/name`).
    #[serde(default)]
    pub running_targets: BTreeMap<String, usize>,
    /// How many targets it hosts.
    #[serde(default)]
    pub targets: usize,
    /// Tags it provides (`key → values`).
    #[serde(default)]
    pub provides: BTreeMap<String, Vec<String>>,
    /// Tags an execution's `requires` must include to be assigned to it (empty: any).
    #[serde(default)]
    pub accepts: BTreeMap<String, Vec<String>>,
}

/// `GET /api/projects/{project}/environments/{env}/queue[?limit=N]`: what waits, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueList {
    /// The waiting executions (at most `limit`).
    pub executions: Vec<QueueItem>,
    /// How many wait in all.
    pub total: usize,
}

/// A waiting execution and why it waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    /// `R…:n:a`.
    pub execution_id: String,
    /// The target's module.
    pub module: String,
    /// The target's name.
    pub target: String,
    /// When it was created.
    pub created_at: Millis,
    /// `paused`, `delayed`, `no_worker`, `requires_not_provided`, `concurrency_limit` or
    /// `workers_busy`.
    pub reason: String,
    /// For `delayed`: when it becomes ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    /// For `concurrency_limit`: the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl From<&QueuedExecution> for QueueItem {
    fn from(q: &QueuedExecution) -> Self {
        let (until, limit) = match q.reason {
            WaitReason::Delayed { until } => (Some(until), None),
            WaitReason::ConcurrencyLimit { max } => (None, Some(max)),
            _ => (None, None),
        };
        Self {
            execution_id: q.execution.to_string(),
            module: q.target.module.clone(),
            target: q.target.name.clone(),
            created_at: q.created_at,
            reason: q.reason.code().to_owned(),
            until,
            limit,
        }
    }
}
