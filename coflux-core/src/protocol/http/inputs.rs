//! Inputs (`cf.Prompt`): the questions executions ask, and the answers people give.
//!
//! - `GET /api/projects/{project}/inputs` → [`InputList`] (the pending ones, oldest first);
//! - `GET …/inputs/{id}` → [`InputItem`];
//! - `POST …/inputs/{id}/respond` [`RespondInput`] → [`InputItem`];
//! - `POST …/inputs/{id}/dismiss` → [`InputItem`].

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::model::{InputRecord, InputState, Millis};

/// An input as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputItem {
    /// Its id (`RUN:IN`).
    pub id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// The execution that asked.
    pub execution_id: String,
    /// `pending`, `responded`, `dismissed` or `cancelled`.
    pub status: String,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Markdown template with `{placeholders}`.
    pub template: String,
    /// Placeholder values (serialized as the SDK sent them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholders: Option<Json>,
    /// JSON Schema of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Json>,
    /// Button labels: respond, dismiss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// Initial form values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Json>,
    /// Routing tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Json>,
    /// Deduplication key.
    pub key: String,
    /// When it was asked for.
    pub created_at: Millis,
    /// The answer, once responded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// When it was answered, dismissed or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Millis>,
}

impl From<InputRecord> for InputItem {
    fn from(record: InputRecord) -> Self {
        let (status, value, resolved_at) = match record.state {
            InputState::Pending => ("pending", None, None),
            InputState::Responded { value, at } => ("responded", Some(value), Some(at)),
            InputState::Dismissed { at } => ("dismissed", None, Some(at)),
            InputState::Cancelled { at } => ("cancelled", None, Some(at)),
        };
        let spec = record.spec;
        Self {
            id: record.id.to_string(),
            run_id: record.id.run.to_string(),
            execution_id: record.execution.to_string(),
            status: status.into(),
            title: spec.title,
            template: spec.template,
            placeholders: spec.placeholders,
            schema: spec.schema,
            actions: spec.actions,
            initial: spec.initial,
            requires: spec.requires,
            key: spec.key,
            created_at: record.created_at,
            value,
            resolved_at,
        }
    }
}

/// `GET …/inputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputList {
    /// The pending inputs, oldest first.
    pub inputs: Vec<InputItem>,
}

/// `POST …/inputs/{id}/respond`: the answer (checked against the input's schema: `type`,
/// `required` and the types of listed properties).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RespondInput {
    /// The answer.
    pub value: Json,
}
