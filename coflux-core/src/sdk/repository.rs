//! [`Repository`]: the set of targets a worker hosts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::target::Target;
use crate::model::{TargetDefinition, TargetRef};

/// The workflows and tasks a worker can run, by module and name.
#[derive(Clone, Default)]
pub struct Repository {
    targets: BTreeMap<TargetRef, Arc<dyn Target>>,
}

impl Repository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a target (a `#[task]` or `#[workflow]`); a target with the same module and name is
    /// replaced.
    pub fn with(mut self, target: impl Target) -> Self {
        self.add(target);
        self
    }

    /// Adds a target in place.
    pub fn add(&mut self, target: impl Target) {
        let definition = target.definition();
        self.targets.insert(definition.target, Arc::new(target));
    }

    /// Looks a target up.
    pub fn get(&self, target: &TargetRef) -> Option<Arc<dyn Target>> {
        self.targets.get(target).cloned()
    }

    /// The definitions of all targets (the manifest).
    pub fn definitions(&self) -> Vec<TargetDefinition> {
        self.targets.values().map(|t| t.definition()).collect()
    }
}
