//! The HTTP JSON API under `/api`: every request and response body, defined once and used by
//! the server's handlers, the `coflux` CLI and the web UI.
//!
//! Bodies are JSON with snake_case keys; ids are in display form (`R1`, `R1:2`, `R1:2:1`);
//! times are Unix milliseconds. Values are plain JSON (see [`values`]). Every error is an
//! [`ErrorBody`] with a stable code. One module per group of routes:
//!
//! - [`projects`]: health, projects, environments, manifests, limits, schedules, tokens,
//!   blobs and assets;
//! - [`runs`]: submission, a run's view, results, re-runs and cancellation;
//! - [`run_list`]: the runs list (filters, status and duration per run, cursor pages);
//! - [`logs`]: log pages and metrics;
//! - [`inputs`]: questions executions ask (`cf.Prompt`) and their answers;
//! - [`values`]: how stored values and results are shown as plain JSON;
//! - [`agents`]: the sessions of connected agents.

pub mod agents;
pub mod inputs;
pub mod logs;
pub mod projects;
pub mod run_list;
pub mod runs;
pub mod values;

pub use agents::*;
pub use inputs::*;
pub use logs::*;
pub use projects::*;
pub use run_list::*;
pub use runs::*;

use serde::{Deserialize, Serialize};

/// Every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code (stable, machine-readable) and message (for people) of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code, e.g. `run_not_found`, `invalid_cursor`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
}

impl ErrorBody {
    /// An error body with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// An empty object (`{}`): the answer of actions that report nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}
