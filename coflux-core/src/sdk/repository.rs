//! [`Repository`]: the set of targets a worker hosts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::asset::{AssetHost, current_host, with_assets};
use super::target::{Target, TargetFuture};
use crate::model::{TargetDefinition, TargetRef, Value};

/// The workflows and tasks a worker can run, by module and name.
#[derive(Clone, Default)]
pub struct Repository {
    targets: BTreeMap<TargetRef, Arc<dyn Target>>,
    assets: Option<Arc<dyn AssetHost>>,
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

    /// Adds every target of `other` (replacing those with the same module and name).
    pub fn merge(mut self, other: Repository) -> Self {
        self.targets.extend(other.targets);
        self
    }

    /// Gives the targets' executions `host` as their asset store when their own host has none
    /// (an embedded project's worker sets its data directory's store this way).
    pub fn with_asset_host(mut self, host: Arc<dyn AssetHost>) -> Self {
        self.assets = Some(host);
        self
    }

    /// [`Repository::with_asset_host`], unless one is set already.
    pub(crate) fn with_default_asset_host(self, host: impl FnOnce() -> Arc<dyn AssetHost>) -> Self {
        match self.assets {
            Some(_) => self,
            None => self.with_asset_host(host()),
        }
    }

    /// Looks a target up.
    pub fn get(&self, target: &TargetRef) -> Option<Arc<dyn Target>> {
        let found = self.targets.get(target).cloned()?;
        Some(match &self.assets {
            Some(host) => Arc::new(WithAssets {
                target: found,
                host: Arc::clone(host),
            }),
            None => found,
        })
    }

    /// The definitions of all targets (the manifest).
    pub fn definitions(&self) -> Vec<TargetDefinition> {
        self.targets.values().map(|t| t.definition()).collect()
    }
}

/// A target whose body runs with a default asset store.
struct WithAssets {
    target: Arc<dyn Target>,
    host: Arc<dyn AssetHost>,
}

impl Target for WithAssets {
    fn definition(&self) -> TargetDefinition {
        self.target.definition()
    }

    fn invoke(&self, arguments: Vec<Value>) -> TargetFuture {
        let body = self.target.invoke(arguments);
        let host = Arc::clone(&self.host);
        Box::pin(async move {
            // The host's own store (e.g. the agent's, under an executor) wins.
            match current_host() {
                Some(_) => body.await,
                None => with_assets(host, body).await,
            }
        })
    }
}
