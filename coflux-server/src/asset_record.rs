//! [`Record`]: an asset as stored (see [`crate::asset_store`]; and as
//! `POST …/assets` receives it), with its content-derived id.

use coflux_core::protocol::http::AssetSummary;

/// An asset as stored and as `POST` receives it (defined once, in the core's model).
pub use coflux_core::model::asset::AssetRecord as Record;

/// `{"id","name","count","size"}` of `record`, whose id is `id`.
pub(crate) fn summary(record: &Record, id: &str) -> AssetSummary {
    AssetSummary {
        id: id.to_owned(),
        name: record.name.clone(),
        count: record.entries.len(),
        size: record.size(),
    }
}
