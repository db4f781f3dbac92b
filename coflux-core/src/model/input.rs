//! Inputs (`cf.Prompt`): a question an execution asks a person, answered (or dismissed) through
//! the API or the CLI. An input belongs to the run of the execution that asked for it.
//!
//! [`InputOp`] is what an agent or the API asks of an input; [`InputReply`] the answer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{ExecutionId, IdParseError, Millis, RunId};

/// An input: the `number`-th input of its run (1, 2, ...). Shown as `RUN:INUMBER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputId {
    /// The run of the execution that asked.
    pub run: RunId,
    /// Its number within the run.
    pub number: u32,
}

impl fmt::Display for InputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:I{}", self.run, self.number)
    }
}

impl FromStr for InputId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdParseError::new("input", s);
        let (run, number) = s.rsplit_once(":I").ok_or_else(err)?;
        Ok(Self {
            run: run.parse().map_err(|_| err())?,
            number: number.parse().map_err(|_| err())?,
        })
    }
}

/// What an execution asks: the prompt as the SDK sends it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InputSpec {
    /// Markdown template with `{placeholders}`.
    pub template: String,
    /// Serialized placeholder values, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholders: Option<Json>,
    /// JSON Schema (as JSON) the response must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Json>,
    /// Deduplication key: asking again with the same key in the run gives the same input.
    pub key: String,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Button labels: respond, dismiss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// Initial form values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Json>,
    /// Tags routing the input to some users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Json>,
}

/// Where an input stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InputState {
    /// Waiting for an answer.
    Pending,
    /// Answered with `value`.
    Responded {
        /// The answer (plain JSON).
        value: Json,
        /// When.
        at: Millis,
    },
    /// Dismissed by a person (the caller gets `InputDismissed`).
    Dismissed {
        /// When.
        at: Millis,
    },
    /// Cancelled by the execution (or its run).
    Cancelled {
        /// When.
        at: Millis,
    },
}

impl InputState {
    /// Whether it is final (answered, dismissed or cancelled).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Pending)
    }

    /// `pending`, `responded`, `dismissed` or `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Responded { .. } => "responded",
            Self::Dismissed { .. } => "dismissed",
            Self::Cancelled { .. } => "cancelled",
        }
    }
}

/// A stored input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// Its id.
    pub id: InputId,
    /// The execution that asked for it first.
    pub execution: ExecutionId,
    /// The prompt.
    pub spec: InputSpec,
    /// When it was asked for.
    pub created_at: Millis,
    /// Where it stands.
    pub state: InputState,
}

/// An operation on an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum InputOp {
    /// `execution` asks for an input (or gets the run's input with the same key).
    Submit {
        /// The asking execution.
        execution: ExecutionId,
        /// The prompt.
        spec: InputSpec,
    },
    /// Answered once the input is final.
    Wait {
        /// The input.
        input: InputId,
    },
    /// The input as it stands.
    Get {
        /// The input.
        input: InputId,
    },
    /// A person answers.
    Respond {
        /// The input.
        input: InputId,
        /// The answer.
        value: Json,
    },
    /// A person dismisses it.
    Dismiss {
        /// The input.
        input: InputId,
    },
    /// The execution cancels it (a final input stays as it is).
    Cancel {
        /// The input.
        input: InputId,
    },
}

impl InputOp {
    /// The run the input belongs to.
    pub fn run(&self) -> RunId {
        match self {
            Self::Submit { execution, .. } => execution.run(),
            Self::Wait { input }
            | Self::Get { input }
            | Self::Respond { input, .. }
            | Self::Dismiss { input }
            | Self::Cancel { input } => input.run,
        }
    }
}

/// The answer to an [`InputOp`]: the input as it stands afterwards.
pub type InputReply = InputRecord;

/// Checks `value` against the basics of a JSON Schema: `type` and, for objects, `required`
/// and the `type` of each listed property. Returns what is wrong.
pub fn check_against_schema(schema: &Json, value: &Json) -> Result<(), String> {
    check(schema, value, "value")
}

fn check(schema: &Json, value: &Json, at: &str) -> Result<(), String> {
    if let Some(kind) = schema.get("type").and_then(Json::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at} must be of type {kind}"));
        }
    }
    if let Some(object) = value.as_object() {
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for name in required.iter().filter_map(Json::as_str) {
                if !object.contains_key(name) {
                    return Err(format!("{at} is missing the required field '{name}'"));
                }
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Json::as_object) {
            for (name, property) in properties {
                if let Some(field) = object.get(name) {
                    check(property, field, &format!("{at}.{name}"))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_ids_round_trip() {
        let id = InputId {
            run: RunId(42),
            number: 3,
        };
        assert_eq!(id.to_string().parse::<InputId>().unwrap(), id);
        assert!("R1:3".parse::<InputId>().is_err());
    }

    #[test]
    fn input_schema_checks_type_and_required_fields() {
        let schema = json!({"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}});
        assert!(check_against_schema(&schema, &json!({"name": "a", "n": 2})).is_ok());
        let missing = check_against_schema(&schema, &json!({"n": 2})).unwrap_err();
        assert!(missing.contains("'name'"), "{missing}");
        let typed = check_against_schema(&schema, &json!({"name": 1})).unwrap_err();
        assert!(typed.contains("value.name"), "{typed}");
        assert!(check_against_schema(&schema, &json!([1])).is_err());
    }
}
