//! Whether a workflow may be submitted in an environment: a connected worker of the
//! environment hosts it, or a manifest registered it there (the `manifests` table keeps
//! registrations of agents that have since gone). Otherwise the submission is refused with
//! [`OrchestrationError::WorkflowNotFound`] and the closest registered names, unless the caller
//! allows unregistered workflows (their run waits for a worker to come).
//!
//! Registrations are per environment, as Coflux's manifests are: a workflow registered only in
//! a parent environment does not count, since executions are only dispatched to workers of the
//! run's own environment (inheritance shares cached results, not workers).

use std::collections::BTreeSet;

use crate::model::{TargetDefinition, TargetKind, TargetRef};

use super::error::OrchestrationError;

/// At most this many names are suggested.
const MAX_SUGGESTIONS: usize = 3;

/// Checks that `target` is hosted (`hosted`: targets of the environment's connected workers,
/// workflows or tasks) or registered as a workflow (`manifests`) in `environment`.
pub fn check_registered(
    target: &TargetRef,
    environment: &str,
    hosted: &BTreeSet<TargetRef>,
    manifests: &[TargetDefinition],
) -> Result<(), OrchestrationError> {
    let workflows = manifests
        .iter()
        .filter(|d| d.kind == TargetKind::Workflow)
        .map(|d| &d.target);
    let known: BTreeSet<&TargetRef> = hosted.iter().chain(workflows).collect();
    if known.contains(target) {
        return Ok(());
    }
    Err(OrchestrationError::WorkflowNotFound {
        target: target.to_string(),
        environment: environment.to_owned(),
        suggestions: suggest(&target.to_string(), known.iter().map(|t| t.to_string())),
    })
}

/// Up to [`MAX_SUGGESTIONS`] of `names` close to `wanted`: within a small edit distance (a
/// third of the name, at least 2), or sharing a prefix of at least 3 characters with it, nearest
/// first.
pub fn suggest(wanted: &str, names: impl IntoIterator<Item = String>) -> Vec<String> {
    let limit = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .filter_map(|name| {
            let distance = edit_distance(wanted, &name);
            let prefixed = |a: &str, b: &str| a.len() >= 3 && b.starts_with(a);
            let close = distance <= limit
                || prefixed(wanted, &name)
                || prefixed(&name, wanted)
                || same_module_prefix(wanted, &name);
            close.then_some((distance, name))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, n)| n)
        .collect()
}

/// Whether both are `module/name` in the same module with names that start alike
/// (`m/typ` and `m/type_check`).
fn same_module_prefix(a: &str, b: &str) -> bool {
    match (a.rsplit_once('/'), b.rsplit_once('/')) {
        (Some((ma, na)), Some((mb, nb))) if ma == mb => {
            let common = na
                .chars()
                .zip(nb.chars())
                .take_while(|(x, y)| x == y)
                .count();
            common >= 3 || (!na.is_empty() && (nb.starts_with(na) || na.starts_with(nb)))
        }
        _ => false,
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StepOptions;

    fn definition(module: &str, name: &str, kind: TargetKind) -> TargetDefinition {
        TargetDefinition {
            target: TargetRef::new(module, name),
            kind,
            parameters: Vec::new(),
            options: StepOptions::default(),
            instruction: None,
        }
    }

    #[test]
    fn hosted_or_registered_workflows_pass() {
        let hosted: BTreeSet<_> = [TargetRef::new("app", "hosted")].into_iter().collect();
        let manifests = [definition("app", "archived_agent", TargetKind::Workflow)];
        for name in ["hosted", "archived_agent"] {
            check_registered(
                &TargetRef::new("app", name),
                "production",
                &hosted,
                &manifests,
            )
            .unwrap();
        }
    }

    #[test]
    fn unknown_workflows_are_refused_with_the_closest_names() {
        let manifests = [
            definition("module", "type", TargetKind::Workflow),
            definition("module", "hello", TargetKind::Workflow),
            definition("module", "typo_task", TargetKind::Task),
            definition("other", "typo", TargetKind::Workflow),
        ];
        let err = check_registered(
            &TargetRef::new("module", "typo"),
            "production",
            &BTreeSet::new(),
            &manifests,
        )
        .unwrap_err();
        assert_eq!(err.code(), "workflow_not_found");
        let OrchestrationError::WorkflowNotFound { suggestions, .. } = &err else {
            panic!("{err:?}");
        };
        // Registered tasks are neither accepted nor suggested.
        assert_eq!(suggestions, &["module/type"]);
        let message = err.to_string();
        assert!(message.contains("'module/typo'"), "{message}");
        assert!(message.contains("environment 'production'"), "{message}");
        assert!(message.contains("did you mean 'module/type'"), "{message}");
    }

    #[test]
    fn suggestions_are_few_and_nearest_first() {
        let names = ["m/hello", "m/help", "m/hell", "m/helium", "m/unrelated"];
        let found = suggest("m/helo", names.iter().map(|s| s.to_string()));
        assert_eq!(found.len(), 3);
        assert!(!found.contains(&"m/unrelated".to_owned()));
        assert!(suggest("zzz/q", names.iter().map(|s| s.to_string())).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
