//! Values as they cross the executor protocol: `{type: inline|file, format, value|path,
//! metadata?, references: [[...], ...]}`, and the conversions to and from [`model::Value`].
//!
//! The conversions are pure: the parts that need I/O (storing a file as a blob, fetching a blob
//! into a local file) are closures supplied by the caller, so the agent plugs in its blob host
//! and a Rust executor plugs in plain file reads.
//!
//! [`model::Value`]: crate::model::Value

use std::future::Future;
use std::path::PathBuf;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value as Json, json};

use crate::model::{ExecutionId, Reference, Value};

/// Values whose encoded JSON is larger than this travel as files rather than inline (the
/// Python adapter's threshold, which the Rust executor follows too).
pub const TRANSFER_THRESHOLD: usize = 64 * 1024;

/// A value on the executor wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireValue {
    /// Inline data or a file.
    #[serde(flatten)]
    pub data: WireData,
    /// Serializer metadata (e.g. a pydantic model class); absent for JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Json>,
    /// What `{"type":"ref","index":i}` in the data points at.
    #[serde(default)]
    pub references: Vec<WireReference>,
}

/// Where a wire value's data is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireData {
    /// The data itself, in the message.
    Inline {
        /// `json` (the only format adapters produce), `pickle` or `pydantic`.
        format: String,
        /// The data (for `json`, Coflux's typed JSON encoding).
        #[serde(default)]
        value: Json,
    },
    /// The data in a local file (over [`TRANSFER_THRESHOLD`], or a blob fetched for the
    /// executor).
    File {
        /// `json`, `pickle`, `parquet` or `pydantic`.
        format: String,
        /// The file's absolute path.
        path: PathBuf,
    },
}

/// An entry of a wire value's `references`, encoded as a JSON array.
#[derive(Debug, Clone, PartialEq)]
pub enum WireReference {
    /// `["execution", id, module, target]`.
    Execution {
        /// The execution id (our display form, e.g. `R1:2:1`).
        id: String,
        /// Its target's module.
        module: String,
        /// Its target's name.
        target: String,
    },
    /// `["input", id]`.
    Input {
        /// The input's id.
        id: String,
    },
    /// `["asset", id, name, total_count, total_size]` (the last three may be null).
    Asset {
        /// The asset's id.
        id: String,
        /// Its name, if known.
        name: Option<String>,
        /// How many files it holds, if known.
        count: Option<u64>,
        /// Their total size, if known.
        size: Option<u64>,
    },
    /// `["fragment", serializer, path, size, metadata]`: opaque bytes in a local file.
    Fragment {
        /// `pickle`, `bytes` or `json`.
        serializer: String,
        /// The local file holding the bytes.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// Serializer metadata (e.g. `{"type": "Point"}`).
        metadata: Json,
    },
}

impl Serialize for WireReference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let array = match self {
            Self::Execution { id, module, target } => json!(["execution", id, module, target]),
            Self::Input { id } => json!(["input", id]),
            Self::Asset {
                id,
                name,
                count,
                size,
            } => json!(["asset", id, name, count, size]),
            Self::Fragment {
                serializer,
                path,
                size,
                metadata,
            } => json!(["fragment", serializer, path, size, metadata]),
        };
        array.serialize(s)
    }
}

impl<'de> Deserialize<'de> for WireReference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<Json>::deserialize(d)?;
        let text = |i: usize| -> Result<String, D::Error> {
            items
                .get(i)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| D::Error::custom(format!("reference item {i} is not a string")))
        };
        let kind = text(0)?;
        match kind.as_str() {
            "execution" => Ok(Self::Execution {
                id: text(1)?,
                module: text(2)?,
                target: text(3)?,
            }),
            "input" => Ok(Self::Input { id: text(1)? }),
            "asset" => Ok(Self::Asset {
                id: text(1)?,
                name: items.get(2).and_then(Json::as_str).map(str::to_owned),
                count: items.get(3).and_then(Json::as_u64),
                size: items.get(4).and_then(Json::as_u64),
            }),
            "fragment" => Ok(Self::Fragment {
                serializer: text(1)?,
                path: PathBuf::from(text(2)?),
                size: items.get(3).and_then(Json::as_u64).unwrap_or(0),
                metadata: items.get(4).cloned().unwrap_or_else(|| json!({})),
            }),
            other => Err(D::Error::custom(format!(
                "unknown reference type '{other}'"
            ))),
        }
    }
}

impl WireValue {
    /// Inline JSON data with references.
    pub fn inline(value: Json, references: Vec<WireReference>) -> Self {
        Self {
            data: WireData::Inline {
                format: "json".into(),
                value,
            },
            metadata: None,
            references,
        }
    }

    /// A JSON file with references.
    pub fn file(path: PathBuf, references: Vec<WireReference>) -> Self {
        Self {
            data: WireData::File {
                format: "json".into(),
                path,
            },
            metadata: None,
            references,
        }
    }

    /// The inline JSON `null` (what the adapter's `None` result stands for).
    pub fn null() -> Self {
        Self::inline(Json::Null, Vec::new())
    }

    /// The local files this value points at (a `file` value's data, fragments).
    pub fn local_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .references
            .iter()
            .filter_map(|r| match r {
                WireReference::Fragment { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        if let WireData::File { path, .. } = &self.data {
            files.push(path.clone());
        }
        files
    }
}

/// Why a wire value could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ValueError<E> {
    /// Only the JSON format can be stored (`pickle` or `pydantic` data outside a fragment is
    /// not something adapters produce).
    #[error("unsupported value format '{0}' (only json is accepted)")]
    UnsupportedFormat(String),
    /// An execution reference whose id is not in our form.
    #[error("invalid execution id in a reference: {0}")]
    InvalidExecutionId(String),
    /// The caller's I/O (storing or fetching a blob) failed.
    #[error(transparent)]
    Io(E),
}

impl<E> ValueError<E> {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::InvalidExecutionId(_) => "invalid_reference",
            Self::Io(_) => "value_io",
        }
    }
}

/// What a file (a value's data or a fragment) became once stored: its blob key and size.
pub type Stored = (String, u64);

/// Converts a wire value into a model value. `store` is called for each local file (a `file`
/// value's JSON data, each fragment) and gives the key and size it was stored under.
pub async fn value_from_wire<E, F, Fut>(
    wire: WireValue,
    mut store: F,
) -> Result<Value, ValueError<E>>
where
    F: FnMut(PathBuf) -> Fut,
    Fut: Future<Output = Result<Stored, E>>,
{
    let mut references = Vec::with_capacity(wire.references.len());
    for reference in wire.references {
        let converted = match reference {
            WireReference::Fragment {
                serializer,
                path,
                metadata,
                ..
            } => {
                let (blob_key, size) = store(path).await.map_err(ValueError::Io)?;
                Reference::Fragment {
                    format: serializer,
                    blob_key,
                    size,
                    metadata,
                }
            }
            other => reference_from_wire(other)?,
        };
        references.push(converted);
    }
    match wire.data {
        WireData::Inline { format, value } if format == "json" => Ok(Value::Raw {
            data: value,
            references,
        }),
        WireData::File { format, path } if format == "json" => {
            let (key, size) = store(path).await.map_err(ValueError::Io)?;
            Ok(Value::Blob {
                key,
                size,
                references,
            })
        }
        WireData::Inline { format, .. } | WireData::File { format, .. } => {
            Err(ValueError::UnsupportedFormat(format))
        }
    }
}

/// Converts a model value into a wire value. `fetch(blob_key, size)` is called for a blob
/// value's data and for each fragment, and gives the local file it was written to.
pub async fn value_to_wire<E, F, Fut>(value: &Value, mut fetch: F) -> Result<WireValue, E>
where
    F: FnMut(String, u64) -> Fut,
    Fut: Future<Output = Result<PathBuf, E>>,
{
    let mut references = Vec::with_capacity(value.references().len());
    for reference in value.references() {
        let converted = match reference {
            Reference::Fragment {
                format,
                blob_key,
                size,
                metadata,
            } => WireReference::Fragment {
                serializer: format.clone(),
                path: fetch(blob_key.clone(), *size).await?,
                size: *size,
                metadata: metadata.clone(),
            },
            other => reference_to_wire(other),
        };
        references.push(converted);
    }
    Ok(match value {
        Value::Raw { data, .. } => WireValue::inline(data.clone(), references),
        Value::Blob { key, size, .. } => {
            WireValue::file(fetch(key.clone(), *size).await?, references)
        }
    })
}

/// Converts a reference other than a fragment (fragments need their file stored first, see
/// [`value_from_wire`]).
pub fn reference_from_wire<E>(reference: WireReference) -> Result<Reference, ValueError<E>> {
    Ok(match reference {
        WireReference::Execution { id, module, target } => Reference::Execution {
            execution: id
                .parse::<ExecutionId>()
                .map_err(|_| ValueError::InvalidExecutionId(id))?,
            module,
            target,
        },
        WireReference::Input { id } => Reference::Input { id },
        WireReference::Asset {
            id,
            name,
            count,
            size,
        } => Reference::Asset {
            id,
            name,
            count,
            size,
        },
        WireReference::Fragment {
            serializer,
            path,
            size,
            metadata,
        } => Reference::Fragment {
            format: serializer,
            blob_key: path.to_string_lossy().into_owned(),
            size,
            metadata,
        },
    })
}

/// Converts a reference other than a fragment; a fragment's blob key is taken as its path
/// (what an executor that shares the agent's files, like the Rust one, uses).
pub fn reference_to_wire(reference: &Reference) -> WireReference {
    match reference {
        Reference::Execution {
            execution,
            module,
            target,
        } => WireReference::Execution {
            id: execution.to_string(),
            module: module.clone(),
            target: target.clone(),
        },
        Reference::Input { id } => WireReference::Input { id: id.clone() },
        Reference::Asset {
            id,
            name,
            count,
            size,
        } => WireReference::Asset {
            id: id.clone(),
            name: name.clone(),
            count: *count,
            size: *size,
        },
        Reference::Fragment {
            format,
            blob_key,
            size,
            metadata,
        } => WireReference::Fragment {
            serializer: format.clone(),
            path: PathBuf::from(blob_key),
            size: *size,
            metadata: metadata.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn parses_the_adapters_values() {
        let line = r#"{"type":"inline","format":"json","value":{"type":"ref","index":0},"references":[["fragment","pickle","/tmp/coflux_fiae1raq",52,{"type":"Point"}],["execution","R1:2:1","m","t"],["asset","A9","report",1,11],["input","I1"]]}"#;
        let value: WireValue = serde_json::from_str(line).unwrap();
        assert_eq!(
            value.references[0],
            WireReference::Fragment {
                serializer: "pickle".into(),
                path: "/tmp/coflux_fiae1raq".into(),
                size: 52,
                metadata: json!({"type": "Point"}),
            }
        );
        assert_eq!(
            value.local_files(),
            vec![PathBuf::from("/tmp/coflux_fiae1raq")]
        );
        // Round trip through text.
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<WireValue>(&text).unwrap(), value);

        let file: WireValue = serde_json::from_str(
            r#"{"type":"file","format":"json","path":"/tmp/coflux_x","references":[]}"#,
        )
        .unwrap();
        assert_eq!(file, WireValue::file("/tmp/coflux_x".into(), vec![]));
        // A missing value is null.
        let null: WireValue =
            serde_json::from_str(r#"{"type":"inline","format":"json","references":[]}"#).unwrap();
        assert_eq!(null, WireValue::null());
        assert!(
            serde_json::from_str::<WireValue>(
                r#"{"type":"inline","format":"json","value":1,"references":[["weird"]]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn converts_to_the_model_and_back_storing_files() {
        let wire: WireValue = serde_json::from_str(
            r#"{"type":"file","format":"json","path":"/tmp/big","references":[["fragment","bytes","/tmp/frag",3,{}],["execution","R1:2:1","m","t"],["asset","A9",null,null,null]]}"#,
        )
        .unwrap();
        let mut stored = Vec::new();
        let value = block_on(value_from_wire::<(), _, _>(wire, |path| {
            stored.push(path.clone());
            let key = format!("key-of-{}", path.display());
            async move { Ok((key, 7)) }
        }))
        .unwrap();
        assert_eq!(
            stored,
            vec![PathBuf::from("/tmp/frag"), PathBuf::from("/tmp/big")]
        );
        let Value::Blob {
            key,
            size,
            references,
        } = &value
        else {
            panic!("expected a blob, got {value:?}");
        };
        assert_eq!((key.as_str(), *size), ("key-of-/tmp/big", 7));
        assert!(
            matches!(&references[0], Reference::Fragment { blob_key, format, .. } if blob_key == "key-of-/tmp/frag" && format == "bytes")
        );
        assert!(
            matches!(&references[1], Reference::Execution { execution, .. } if execution.to_string() == "R1:2:1")
        );
        assert_eq!(
            references[2],
            Reference::Asset {
                id: "A9".into(),
                name: None,
                count: None,
                size: None
            }
        );

        let back = block_on(value_to_wire::<(), _, _>(&value, |key, _| async move {
            Ok(PathBuf::from(format!("/fetched/{key}")))
        }))
        .unwrap();
        assert_eq!(
            back.data,
            WireData::File {
                format: "json".into(),
                path: "/fetched/key-of-/tmp/big".into()
            }
        );
        assert!(
            matches!(&back.references[0], WireReference::Fragment { path, .. } if path == &PathBuf::from("/fetched/key-of-/tmp/frag"))
        );
        assert!(
            matches!(&back.references[1], WireReference::Execution { id, .. } if id == "R1:2:1")
        );
    }

    #[test]
    fn rejects_foreign_formats_and_ids() {
        let pickled = WireValue {
            data: WireData::Inline {
                format: "pickle".into(),
                value: json!("gAR="),
            },
            metadata: None,
            references: vec![],
        };
        let store = |_: PathBuf| async { Ok::<_, ()>((String::new(), 0)) };
        assert!(matches!(
            block_on(value_from_wire(pickled, store)),
            Err(ValueError::UnsupportedFormat(f)) if f == "pickle"
        ));
        let bad = WireValue::inline(
            json!(null),
            vec![WireReference::Execution {
                id: "E1".into(),
                module: "m".into(),
                target: "t".into(),
            }],
        );
        assert!(matches!(
            block_on(value_from_wire(bad, store)),
            Err(ValueError::InvalidExecutionId(id)) if id == "E1"
        ));
    }
}
