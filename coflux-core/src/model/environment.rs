//! Environments: named, optionally inheriting from a parent, active, paused or archived.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{EnvironmentId, Millis};

/// A validated environment name: segments of `[a-z0-9_-]` separated by `/`, at most 100
/// characters (Coflux's rule; upper case is folded to lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvironmentName(String);

/// Why an environment name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid environment name '{0}': use letters, digits, '_' and '-', in segments separated by '/' (at most 100 characters)"
)]
pub struct InvalidEnvironmentName(pub String);

impl EnvironmentName {
    /// Validates and normalises a name.
    pub fn new(name: &str) -> Result<Self, InvalidEnvironmentName> {
        let lower = name.to_ascii_lowercase();
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if lower.is_empty() || lower.len() > 100 || !lower.split('/').all(valid_segment) {
            return Err(InvalidEnvironmentName(name.chars().take(120).collect()));
        }
        Ok(Self(lower))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvironmentName {
    type Error = InvalidEnvironmentName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}
impl From<EnvironmentName> for String {
    fn from(value: EnvironmentName) -> Self {
        value.0
    }
}
impl fmt::Display for EnvironmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an environment takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentState {
    /// Work is assigned to workers.
    Active,
    /// Work stays queued until the environment is resumed.
    Paused,
    /// Hidden; pending work was cancelled; the name can be reused.
    Archived,
}

impl EnvironmentState {
    /// The state as stored (`active`, `paused`, `archived`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Archived => "archived",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// An environment of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Its id within the project.
    pub id: EnvironmentId,
    /// Its name, unique among non-archived environments.
    pub name: EnvironmentName,
    /// The environment it inherits cached results from, if any.
    pub parent: Option<EnvironmentId>,
    /// Whether it takes work.
    pub state: EnvironmentState,
    /// When it was created.
    pub created_at: Millis,
}

/// Whether an execution in `execution` is visible when a run submitted in `home` is viewed
/// from the environment whose lineage (itself, then its ancestors) is `view`: executions of the
/// run's own environment always are, others from the environment they ran in and its
/// descendants. A step re-run in a child environment is seen from that child and the child's
/// descendants, never from the run's environment or a sibling. Inspection and results both
/// follow this one rule.
pub fn visible_from(home: EnvironmentId, view: &[EnvironmentId], execution: EnvironmentId) -> bool {
    execution == home || view.contains(&execution)
}

/// An environment's lineage among `all`: itself, its parent, and so on up to the root (cycles
/// and missing parents end it).
pub fn lineage(all: &[Environment], id: EnvironmentId) -> Vec<EnvironmentId> {
    let mut lineage = vec![id];
    let mut current = id;
    while let Some(parent) = all.iter().find(|e| e.id == current).and_then(|e| e.parent) {
        if lineage.contains(&parent) {
            break;
        }
        lineage.push(parent);
        current = parent;
    }
    lineage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_coflux_rules() {
        for ok in ["production", "dev/alice", "a-b_c/1", "Staging"] {
            assert!(EnvironmentName::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(EnvironmentName::new("Staging").unwrap().as_str(), "staging");
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "a b",
            "a.b",
            "../x",
            &"x".repeat(101),
        ] {
            assert!(EnvironmentName::new(bad).is_err(), "{bad}");
        }
    }
}
