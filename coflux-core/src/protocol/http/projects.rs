//! Bodies of the project-level routes: health, projects, environments, manifests, limits,
//! schedules, tokens, blobs and assets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use crate::model::asset::AssetEntry;
use crate::model::{Environment, Millis, TargetDefinition};

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
}

/// `GET /api/projects`: the projects the caller may see, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    /// The projects.
    pub projects: Vec<ProjectItem>,
}

/// A project (`POST /api/projects` answers one too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectItem {
    /// Its name.
    pub name: String,
}

/// `POST /api/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// The project's name (creating an existing project is a no-op).
    pub name: String,
}

/// `GET …/environments`: all environments, archived ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentList {
    /// The environments.
    pub environments: Vec<EnvironmentItem>,
}

/// An environment: `{"name","parent","state","created_at"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentItem {
    /// Its name.
    pub name: String,
    /// The name of the environment it inherits from.
    pub parent: Option<String>,
    /// `active`, `paused` or `archived`.
    pub state: String,
    /// Creation time.
    pub created_at: Millis,
}

impl EnvironmentItem {
    /// Shows `env`, resolving its parent's name among `all`.
    pub fn new(env: &Environment, all: &[Environment]) -> Self {
        Self {
            name: env.name.to_string(),
            parent: env.parent.map(|id| {
                all.iter()
                    .find(|e| e.id == id)
                    .map_or_else(|| id.to_string(), |e| e.name.to_string())
            }),
            state: env.state.as_str().into(),
            created_at: env.created_at,
        }
    }
}

/// `POST …/environments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    /// Its name.
    pub name: String,
    /// The environment it inherits from.
    #[serde(default)]
    pub parent: Option<String>,
}

/// `PATCH …/environments/{env}`: `{"parent": "P"}` re-bases it on P, `{"parent": null}` leaves
/// it without a parent; `{}` changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    /// The new parent: absent to keep it, `null` for none.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent: Option<Option<String>>,
}

/// A field that is present (possibly `null`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PUT …/environments/{env}/manifests` (and the answer of `GET` on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifests {
    /// Workflow and task definitions.
    pub targets: Vec<TargetDefinition>,
}

/// The answer of `PUT …/manifests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// How many definitions were registered.
    pub registered: usize,
}

/// `GET …/environments/{env}/limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitList {
    /// The limits.
    pub limits: Vec<Limit>,
}

/// A concurrency limit of a target in an environment (also the answer of setting one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// The target's module.
    pub module: String,
    /// The target's name.
    pub target: String,
    /// At most this many executions at once; `null` for no limit.
    pub max: Option<u32>,
}

/// `PUT …/limits/{module}/{target}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLimit {
    /// The limit; `null` or 0 lifts it.
    pub max: Option<u32>,
}

/// `GET …/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleList {
    /// The schedules.
    pub schedules: Vec<ScheduleItem>,
}

/// A cron schedule of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleItem {
    /// Its id.
    pub id: u32,
    /// The environment its runs start in.
    pub environment: String,
    /// The workflow's module.
    pub module: String,
    /// The workflow's name.
    pub target: String,
    /// The cron expression (UTC).
    pub cron: String,
    /// The arguments of every run, as plain JSON.
    pub arguments: Vec<Json>,
    /// Creation time.
    pub created_at: Millis,
    /// The last tick accounted for.
    pub last_tick: Millis,
    /// The next tick.
    pub next_at: Option<Millis>,
    /// Ticks that passed while the server was down and were not run.
    pub missed: u64,
}

impl From<&crate::api::ScheduleView> for ScheduleItem {
    fn from(s: &crate::api::ScheduleView) -> Self {
        Self {
            id: s.id,
            environment: s.environment.clone(),
            module: s.target.module.clone(),
            target: s.target.name.clone(),
            cron: s.cron.clone(),
            arguments: s.arguments.iter().map(super::values::value_json).collect(),
            created_at: s.created_at,
            last_tick: s.last_tick,
            next_at: s.next_at,
            missed: s.missed,
        }
    }
}

/// `POST …/environments/{env}/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// The workflow's module.
    pub module: String,
    /// The workflow's name.
    pub target: String,
    /// Five fields (or six, seconds first), UTC.
    pub cron: String,
    /// Arguments as plain JSON.
    #[serde(default)]
    pub arguments: Vec<Json>,
}

/// `POST …/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `agent`, `user` or `admin`.
    pub role: String,
    /// The environments it may act in (a pattern with `*`); all by default.
    #[serde(default)]
    pub environments: Option<String>,
    /// Days until it expires; never by default.
    #[serde(default)]
    pub expires_days: Option<u64>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenItem {
    /// Its id (the part after `cfx_`).
    pub id: String,
    /// The project it is for.
    pub project: String,
    /// The environments it may act in; `null` for all.
    pub environments: Option<String>,
    /// `agent`, `user` or `admin`.
    pub role: String,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry; `null` for never.
    pub expires_at: Option<Millis>,
    /// When it was revoked.
    pub revoked_at: Option<Millis>,
}

/// The answer of `POST …/tokens`: the token (shown only here) and its description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The secret token, `cfx_<id>_<secret>`.
    pub token: String,
    /// What it is.
    #[serde(flatten)]
    pub info: TokenItem,
}

/// `GET …/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    /// The project's tokens.
    pub tokens: Vec<TokenItem>,
}

/// The answer of `PUT …/blobs/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    /// The blob's key (its SHA-256).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The answer of `POST …/assets`: `{"id","name","count","size"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSummary {
    /// Its id (`A` and 16 hex digits).
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// How many files it has.
    pub count: usize,
    /// Their total size in bytes.
    pub size: u64,
}

/// `GET …/assets/{id}`: the summary and the files by path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetDetail {
    /// Id, name, count and size.
    #[serde(flatten)]
    pub summary: AssetSummary,
    /// Path inside the asset → file (empty in a creation's answer).
    #[serde(default)]
    pub entries: BTreeMap<String, AssetEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_created_token_is_its_description_and_the_secret() {
        let created = CreatedToken {
            token: "cfx_ab12_secret".into(),
            info: TokenItem {
                id: "ab12".into(),
                project: "acme".into(),
                environments: None,
                role: "user".into(),
                created_at: 5,
                expires_at: Some(9),
                revoked_at: None,
            },
        };
        let wire = serde_json::to_value(&created).unwrap();
        assert_eq!(
            wire,
            json!({"token": "cfx_ab12_secret", "id": "ab12", "project": "acme",
                   "environments": null, "role": "user", "created_at": 5, "expires_at": 9,
                   "revoked_at": null})
        );
        assert_eq!(
            serde_json::from_value::<CreatedToken>(wire).unwrap(),
            created
        );
    }

    #[test]
    fn an_asset_detail_is_its_summary_and_entries() {
        let detail: AssetDetail = serde_json::from_value(json!({
            "id": "A0123456789abcdef", "name": null, "count": 1, "size": 3,
            "entries": {"a.txt": {"blob_key": "k", "size": 3, "metadata": {"type": "text/plain"}}}
        }))
        .unwrap();
        assert_eq!(detail.summary.count, 1);
        assert_eq!(detail.entries["a.txt"].metadata["type"], "text/plain");
        let unknown = json!({"blob_key": "k", "size": 3, "mode": 7});
        assert!(serde_json::from_value::<AssetEntry>(unknown).is_err());
    }
}

/// `GET /api/cluster`: the nodes sharing the database and the projects each owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// Every node recorded, by id.
    pub nodes: Vec<ClusterNode>,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Its id: the URL other nodes reach it at.
    pub id: String,
    /// Whether it renewed its heartbeat recently.
    pub live: bool,
    /// Its blob store (`local` or `s3`).
    pub blobs: String,
    /// Its last heartbeat (ms since the epoch, the database's clock).
    pub heartbeat_at: i64,
    /// The projects it holds an unexpired lease on, by name.
    pub projects: Vec<String>,
}
