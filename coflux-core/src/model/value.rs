//! Values in the Coflux 0.12 model: JSON data plus references to executions, assets, inputs and
//! blob fragments. The data uses Coflux's typed encoding (`{"type":"dict","items":[k,v,...]}`,
//! `{"type":"ref","index":i}`, ...), so Python values round-trip unchanged.

use serde::{Deserialize, Serialize};

use super::ExecutionId;

/// Something a value points at, outside its JSON data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reference {
    /// A handle to an execution (its result can be awaited).
    Execution {
        /// The execution.
        execution: ExecutionId,
        /// Its target's module.
        module: String,
        /// Its target's name.
        target: String,
    },
    /// A persisted set of files.
    Asset {
        /// The asset's id.
        id: String,
        /// Its name, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// How many files it holds, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        /// Their total size in bytes, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A human input request.
    Input {
        /// The input's id.
        id: String,
    },
    /// Opaque bytes in a format only the SDK decodes (pickle, parquet, bytes).
    Fragment {
        /// The serializer (`pickle`, `bytes`, `json`, ...).
        format: String,
        /// The blob holding the bytes.
        blob_key: String,
        /// Its size in bytes.
        size: u64,
        /// Serializer metadata.
        metadata: serde_json::Value,
    },
}

/// A value passed as an argument or returned as a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Value {
    /// Inline JSON data.
    Raw {
        /// The encoded data.
        data: serde_json::Value,
        /// What `{"type":"ref","index":i}` in the data points at.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<Reference>,
    },
    /// Data stored as a blob (content-addressed), too large to pass inline.
    Blob {
        /// The blob's key.
        key: String,
        /// The data's size in bytes.
        size: u64,
        /// What `{"type":"ref","index":i}` in the data points at.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<Reference>,
    },
}

impl Value {
    /// Inline data without references.
    pub fn raw(data: serde_json::Value) -> Self {
        Self::Raw {
            data,
            references: Vec::new(),
        }
    }

    /// The JSON null value.
    pub fn null() -> Self {
        Self::raw(serde_json::Value::Null)
    }

    /// Whether this is an inline null (the result that makes a recurrent target recur).
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Raw { data: serde_json::Value::Null, references } if references.is_empty())
    }

    /// The references this value holds.
    pub fn references(&self) -> &[Reference] {
        match self {
            Self::Raw { references, .. } | Self::Blob { references, .. } => references,
        }
    }

    /// The part of a cache, memo or defer key that this value contributes: its data (or blob key)
    /// and its references, in a canonical text form.
    pub fn key_part(&self) -> String {
        let refs = serde_json::to_string(self.references()).unwrap_or_default();
        match self {
            Self::Raw { data, .. } => format!("raw\0{}\0{refs}", canonical_json(data)),
            Self::Blob { key, .. } => format!("blob\0{key}\0{refs}"),
        }
    }
}

/// JSON text with object keys sorted, so equal data gives equal text.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sort(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sort(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sort).collect())
            }
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_part_ignores_object_key_order() {
        let a = Value::raw(json!({"a": 1, "b": [1, {"y": 2, "x": 1}]}));
        let b = Value::raw(json!({"b": [1, {"x": 1, "y": 2}], "a": 1}));
        assert_eq!(a.key_part(), b.key_part());
        assert_ne!(a.key_part(), Value::raw(json!({"a": 2})).key_part());
    }

    #[test]
    fn values_round_trip_as_json() {
        let v = Value::Raw {
            data: json!({"type": "ref", "index": 0}),
            references: vec![Reference::Fragment {
                format: "pickle".into(),
                blob_key: "ab".repeat(32),
                size: 52,
                metadata: json!({"type": "Point"}),
            }],
        };
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }
}
