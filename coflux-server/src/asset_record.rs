//! [`Record`]: an asset as stored (see [`crate::asset_store`]; and as
//! `POST …/assets` receives it), with its content-derived id.

use std::collections::BTreeMap;

use coflux_core::protocol::http::{AssetEntry, AssetSummary};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// An asset as stored (and as `POST` receives it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// An optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Path inside the asset → entry.
    pub entries: BTreeMap<String, AssetEntry>,
}

impl Record {
    /// Canonical JSON (sorted keys at every level, whatever serde_json's map order is).
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or(Json::Null);
        serde_json::to_vec(&coflux_core::model::asset::sorted_json(value)).unwrap_or_default()
    }

    /// The content-derived id.
    pub fn id(&self) -> String {
        let digest = hex::encode(Sha256::digest(self.canonical()));
        format!("A{}", &digest[..16])
    }

    /// `{"id","name","count","size"}`.
    pub(crate) fn summary(&self, id: &str) -> AssetSummary {
        AssetSummary {
            id: id.to_owned(),
            name: self.name.clone(),
            count: self.entries.len(),
            size: self.entries.values().map(|e| e.size).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coflux_core::model::asset::valid_id;

    #[test]
    fn ids_are_content_derived_and_validated() {
        let entry = AssetEntry {
            blob_key: "ab".repeat(32),
            size: 3,
            metadata: serde_json::Map::new(),
        };
        let record = |name: Option<&str>| Record {
            name: name.map(str::to_owned),
            entries: BTreeMap::from([("a.txt".to_owned(), entry.clone())]),
        };
        let id = record(Some("r")).id();
        assert!(valid_id(&id), "{id}");
        assert_eq!(id, record(Some("r")).id());
        assert_ne!(id, record(None).id());
        for bad in [
            "",
            "A",
            "a0123456789abcdef",
            "A0123456789ABCDEF",
            "A..",
            "A0123456789abcdef0",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
