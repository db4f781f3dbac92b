//! Cache, memo and defer keys, and the project's cache index.
//!
//! A key is the SHA-256 of the namespace (default `module:target`), the version and the chosen
//! arguments *by position*, so renaming a parameter keeps the key and reordering changes it.
//! A lookup returns the newest execution with the same key, created in the looking-up
//! environment or one of its ancestors, that is still pending or succeeded within `max_age`.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::model::{
    CacheConfig, EnvironmentId, ExecutionId, Millis, ParamSelection, StepId, TargetRef, Value,
};
use crate::store::{CacheEntry, CacheOutcome};

/// The key of a cached step.
pub fn cache_key(target: &TargetRef, config: &CacheConfig, arguments: &[Value]) -> String {
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{}:{}", target.module, target.name));
    key(
        &namespace,
        config.version.as_deref().unwrap_or(""),
        &config.params,
        arguments,
    )
}

/// The key of a memoised or deferred step (namespace `module:target`, no version).
pub fn call_key(target: &TargetRef, params: &ParamSelection, arguments: &[Value]) -> String {
    key(
        &format!("{}:{}", target.module, target.name),
        "",
        params,
        arguments,
    )
}

fn key(namespace: &str, version: &str, params: &ParamSelection, arguments: &[Value]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(namespace.as_bytes());
    hasher.update([0]);
    hasher.update(version.as_bytes());
    for (index, argument) in arguments.iter().enumerate() {
        if params.includes(index) {
            hasher.update([0]);
            hasher.update(index.to_string().as_bytes());
            hasher.update([0]);
            hasher.update(argument.key_part().as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

/// Every known execution of every cached step, by key.
#[derive(Debug, Default)]
pub struct CacheIndex {
    entries: HashMap<String, Vec<CacheEntry>>,
}

impl CacheIndex {
    /// Builds the index from stored entries.
    pub fn from_entries(entries: Vec<CacheEntry>) -> Self {
        let mut index = Self::default();
        for entry in entries {
            index.update(entry);
        }
        index
    }

    /// Adds an execution or updates its outcome.
    pub fn update(&mut self, entry: CacheEntry) {
        let list = self.entries.entry(entry.key.clone()).or_default();
        if entry.outcome == CacheOutcome::Failed {
            list.retain(|e| e.execution != entry.execution);
            return;
        }
        match list.iter_mut().find(|e| e.execution == entry.execution) {
            Some(existing) => existing.outcome = entry.outcome,
            None => list.push(entry),
        }
    }

    /// Drops every entry of an execution of `runs` (runs being deleted).
    pub fn forget_runs(&mut self, runs: &std::collections::HashSet<crate::model::RunId>) {
        self.entries.retain(|_, list| {
            list.retain(|e| !runs.contains(&e.execution.run()));
            !list.is_empty()
        });
    }

    /// The newest usable entry for `key`, seen from an environment whose lineage (itself and its
    /// ancestors) is given, excluding executions of `step` itself.
    pub fn lookup(
        &self,
        key: &str,
        lineage: &[EnvironmentId],
        step: StepId,
        max_age_ms: Option<u64>,
        now: Millis,
    ) -> Option<ExecutionId> {
        let oldest = max_age_ms.map(|age| now - i64::try_from(age).unwrap_or(i64::MAX));
        self.entries
            .get(key)?
            .iter()
            .filter(|e| e.execution.step != step && lineage.contains(&e.environment))
            .filter(|e| match e.outcome {
                CacheOutcome::Pending => true,
                CacheOutcome::Succeeded(at) => oldest.is_none_or(|oldest| at >= oldest),
                CacheOutcome::Failed => false,
            })
            .max_by_key(|e| (e.created_at, e.execution))
            .map(|e| e.execution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunId;
    use serde_json::json;

    fn exec(run: u64) -> ExecutionId {
        StepId {
            run: RunId(run),
            number: 1,
        }
        .execution(1)
    }

    fn entry(run: u64, env: u32, created_at: Millis, outcome: CacheOutcome) -> CacheEntry {
        CacheEntry {
            key: "k".into(),
            execution: exec(run),
            environment: EnvironmentId(env),
            created_at,
            outcome,
        }
    }

    #[test]
    fn keys_depend_on_chosen_positions_namespace_and_version() {
        let t = TargetRef::new("m", "f");
        let all = CacheConfig {
            params: ParamSelection::All(true),
            max_age_ms: None,
            namespace: None,
            version: None,
        };
        let a = [Value::raw(json!(1)), Value::raw(json!(2))];
        let b = [Value::raw(json!(1)), Value::raw(json!(3))];
        assert_ne!(cache_key(&t, &all, &a), cache_key(&t, &all, &b));
        let first = CacheConfig {
            params: ParamSelection::Indexes(vec![0]),
            ..all.clone()
        };
        assert_eq!(cache_key(&t, &first, &a), cache_key(&t, &first, &b));
        let v2 = CacheConfig {
            version: Some("2".into()),
            ..all.clone()
        };
        assert_ne!(cache_key(&t, &all, &a), cache_key(&t, &v2, &a));
        let ns = CacheConfig {
            namespace: Some("shared".into()),
            ..all.clone()
        };
        assert_eq!(
            cache_key(&t, &ns, &a),
            cache_key(&TargetRef::new("other", "g"), &ns, &a)
        );
    }

    #[test]
    fn lookup_walks_the_lineage_and_prefers_the_newest() {
        let mut index = CacheIndex::default();
        index.update(entry(1, 1, 10, CacheOutcome::Succeeded(11)));
        index.update(entry(2, 2, 20, CacheOutcome::Succeeded(21)));
        let me = StepId {
            run: RunId(9),
            number: 1,
        };
        // Environment 2 is a child of 1: it sees both, newest first.
        assert_eq!(
            index.lookup("k", &[EnvironmentId(2), EnvironmentId(1)], me, None, 100),
            Some(exec(2))
        );
        // Environment 1 never sees its child's result.
        assert_eq!(
            index.lookup("k", &[EnvironmentId(1)], me, None, 100),
            Some(exec(1))
        );
        // A sibling (3, child of 1) sees only the parent's.
        assert_eq!(
            index.lookup("k", &[EnvironmentId(3), EnvironmentId(1)], me, None, 100),
            Some(exec(1))
        );
        // Max age filters succeeded entries by when they succeeded.
        assert_eq!(
            index.lookup("k", &[EnvironmentId(1)], me, Some(50), 100),
            None
        );
        // Failed entries are removed; pending ones match at any age.
        index.update(entry(3, 1, 30, CacheOutcome::Pending));
        assert_eq!(
            index.lookup("k", &[EnvironmentId(1)], me, Some(1), 100),
            Some(exec(3))
        );
        index.update(entry(3, 1, 30, CacheOutcome::Failed));
        assert_eq!(
            index.lookup("k", &[EnvironmentId(1)], me, Some(1), 100),
            None
        );
    }
}
