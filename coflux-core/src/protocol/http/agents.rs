//! Bodies of the agent routes: the sessions of connected agents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Millis;

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
