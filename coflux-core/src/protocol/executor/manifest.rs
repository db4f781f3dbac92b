//! The discovery manifest (`<adapter> discover MODULE...` prints `{"targets":[...]}` as its last
//! stdout line), the option objects it shares with `submit_execution`, and their conversion to
//! and from the model's [`TargetDefinition`] and [`StepOptions`].

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::model::{
    CacheConfig, DeferConfig, ParamSelection, Parameter, Requires, RetryPolicy, StepOptions,
    TargetDefinition, TargetKind, TargetRef,
};

/// What discovery prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The targets found.
    pub targets: Vec<ManifestTarget>,
}

/// One target of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTarget {
    /// Its module.
    pub module: String,
    /// Its name.
    pub name: String,
    /// `task` or `workflow`.
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// `[{name, annotation, default}]`.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Its default options.
    #[serde(flatten)]
    pub options: WireOptions,
    /// Its docstring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// Stream configuration of a generator target (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Json>,
}

/// Step options as the executor protocol spells them (manifest fields and `submit_execution`
/// params); every field is optional and omitted when unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireOptions {
    /// Argument indexes whose referenced executions must finish first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<Vec<u32>>,
    /// Cache options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<WireCache>,
    /// Retry options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<WireRetries>,
    /// Defer options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defer: Option<WireDefer>,
    /// Delay before the first attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// Timeout of each attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Memoisation: `true` or parameter indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<ParamSelection>,
    /// Tags a worker must provide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requires>,
    /// Whether a null result schedules the next execution.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recurrent: bool,
}

/// `{params, max_age_ms?, namespace?, version?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireCache {
    /// `true` or parameter indexes.
    pub params: ParamSelection,
    /// Maximum age of a reused result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Key namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `{limit?, backoff_min_ms?, backoff_max_ms?}` (absent backoffs are zero).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireRetries {
    /// How many retries (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Delay before the first retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_min_ms: Option<u64>,
    /// Delay before the last retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<u64>,
}

/// `{params}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDefer {
    /// `true` or parameter indexes.
    pub params: ParamSelection,
}

impl From<WireOptions> for StepOptions {
    fn from(wire: WireOptions) -> Self {
        Self {
            cache: wire.cache.map(|c| CacheConfig {
                params: c.params,
                max_age_ms: c.max_age_ms,
                namespace: c.namespace,
                version: c.version,
            }),
            retries: wire.retries.map(|r| RetryPolicy {
                limit: r.limit,
                backoff_min_ms: r.backoff_min_ms.unwrap_or(0),
                backoff_max_ms: r.backoff_max_ms.unwrap_or(0),
            }),
            defer: wire.defer.map(|d| DeferConfig { params: d.params }),
            memo: wire.memo.filter(|m| *m != ParamSelection::All(false)),
            delay_ms: wire.delay.filter(|d| *d > 0),
            timeout_ms: wire.timeout.filter(|t| *t > 0),
            requires: wire.requires.unwrap_or_default(),
            wait_for: wire.wait_for.unwrap_or_default(),
            recurrent: wire.recurrent,
            group: None,
            streams: None,
        }
    }
}

impl From<&StepOptions> for WireOptions {
    fn from(options: &StepOptions) -> Self {
        Self {
            wait_for: (!options.wait_for.is_empty()).then(|| options.wait_for.clone()),
            cache: options.cache.as_ref().map(|c| WireCache {
                params: c.params.clone(),
                max_age_ms: c.max_age_ms,
                namespace: c.namespace.clone(),
                version: c.version.clone(),
            }),
            retries: options.retries.as_ref().map(|r| WireRetries {
                limit: r.limit,
                backoff_min_ms: (r.backoff_min_ms > 0).then_some(r.backoff_min_ms),
                backoff_max_ms: (r.backoff_max_ms > 0).then_some(r.backoff_max_ms),
            }),
            defer: options.defer.as_ref().map(|d| WireDefer {
                params: d.params.clone(),
            }),
            delay: options.delay_ms,
            timeout: options.timeout_ms,
            memo: options.memo.clone(),
            requires: (!options.requires.is_empty()).then(|| options.requires.clone()),
            recurrent: options.recurrent,
        }
    }
}

impl From<ManifestTarget> for TargetDefinition {
    fn from(target: ManifestTarget) -> Self {
        Self {
            target: TargetRef::new(target.module, target.name),
            kind: target.kind,
            parameters: target.parameters,
            options: target.options.into(),
            instruction: target.instruction,
        }
    }
}

impl From<&TargetDefinition> for ManifestTarget {
    fn from(definition: &TargetDefinition) -> Self {
        Self {
            module: definition.target.module.clone(),
            name: definition.target.name.clone(),
            kind: definition.kind,
            parameters: definition.parameters.clone(),
            options: (&definition.options).into(),
            instruction: definition.instruction.clone(),
            streams: None,
        }
    }
}

impl Manifest {
    /// The manifest of these definitions.
    pub fn from_definitions<'a>(
        definitions: impl IntoIterator<Item = &'a TargetDefinition>,
    ) -> Self {
        Self {
            targets: definitions.into_iter().map(ManifestTarget::from).collect(),
        }
    }

    /// The targets as model definitions.
    pub fn into_definitions(self) -> Vec<TargetDefinition> {
        self.targets
            .into_iter()
            .map(TargetDefinition::from)
            .collect()
    }

    /// Finds the manifest in discovery's stdout: the last line that is JSON (lines before it,
    /// such as prints at import time, are noise). `None` if no line is JSON.
    pub fn from_discovery_output(stdout: &str) -> Option<Result<Self, serde_json::Error>> {
        stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<Json>(line.trim()).ok())
            .map(serde_json::from_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A manifest line as printed by `python -m coflux discover` (coflux 0.12.0).
    const PYTHON: &str = r#"{"targets":[{"module":"flows","name":"add","type":"task","parameters":[{"name":"a","annotation":"<class 'int'>","default":null},{"name":"b","annotation":"<class 'int'>","default":"1"}],"cache":{"params":true},"retries":{"limit":2},"memo":[0],"requires":{"gpu":["true"]},"instruction":"Adds."},{"module":"flows","name":"main","type":"workflow","parameters":[],"wait_for":[0],"defer":{"params":[1]},"delay":500,"timeout":60000,"recurrent":true,"streams":{"buffer":0},"unknown_field":1}]}"#;

    #[test]
    fn python_manifests_convert_to_definitions() {
        let noisy = format!("importing flows...\n{PYTHON}\n");
        let manifest = Manifest::from_discovery_output(&noisy).unwrap().unwrap();
        let defs = manifest.clone().into_definitions();
        let add = &defs[0];
        assert_eq!(add.target, TargetRef::new("flows", "add"));
        assert_eq!(add.kind, TargetKind::Task);
        assert_eq!(add.parameters[1].default.as_deref(), Some("1"));
        assert_eq!(
            add.options.cache.as_ref().unwrap().params,
            ParamSelection::All(true)
        );
        assert_eq!(add.options.retries, Some(RetryPolicy::limit(2)));
        assert_eq!(add.options.memo, Some(ParamSelection::Indexes(vec![0])));
        assert_eq!(add.options.requires["gpu"], vec!["true".to_string()]);
        assert_eq!(add.instruction.as_deref(), Some("Adds."));
        let main = &defs[1];
        assert_eq!(main.kind, TargetKind::Workflow);
        assert_eq!(main.options.wait_for, vec![0]);
        assert_eq!(
            main.options.defer.as_ref().unwrap().params,
            ParamSelection::Indexes(vec![1])
        );
        assert_eq!(
            (main.options.delay_ms, main.options.timeout_ms),
            (Some(500), Some(60000))
        );
        assert!(main.options.recurrent);
        assert_eq!(manifest.targets[1].streams, Some(json!({"buffer": 0})));
    }

    #[test]
    fn definitions_convert_to_the_same_manifest_format() {
        let manifest = Manifest::from_discovery_output(PYTHON).unwrap().unwrap();
        let defs = manifest.clone().into_definitions();
        let back = Manifest::from_definitions(&defs);
        // Everything the model keeps survives; `streams` is not part of the model.
        let mut expected = manifest;
        expected.targets[1].streams = None;
        assert_eq!(back, expected);
        // Unset options are omitted, as the Python adapter does.
        let text = serde_json::to_value(&back.targets[0]).unwrap();
        assert_eq!(text["retries"], json!({"limit": 2}));
        assert!(text.get("delay").is_none() && text.get("recurrent").is_none());
        assert_eq!(back.into_definitions(), defs);
    }

    #[test]
    fn output_without_json_has_no_manifest() {
        assert!(Manifest::from_discovery_output("Traceback ...\nerror\n").is_none());
        assert!(
            Manifest::from_discovery_output("{\"nope\":1}")
                .unwrap()
                .is_err()
        );
    }
}
