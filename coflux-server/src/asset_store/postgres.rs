//! Asset records in PostgreSQL: the table `coflux_assets` in the `public` schema, shared by
//! every node, keyed by project and id (versioned in `coflux_assets_version`).

use std::collections::HashSet;

use coflux_core::model::ProjectName;
use coflux_core::store::postgres::schema;

use super::AssetStoreError;
use super::pg_pool::PgPool;

/// Version 1: the records, with the time each was first written.
const V1: &str = "
CREATE TABLE coflux_assets (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (project, id)
);
";

/// The records of one database.
pub struct PgAssets {
    pool: PgPool,
}

impl PgAssets {
    pub(super) fn open(url: &str) -> Result<Self, AssetStoreError> {
        let pool = PgPool::new(url, "coflux-assets", "");
        pool.with(|client| {
            Ok(schema::migrate(
                client,
                "public",
                "coflux_assets_version",
                &[V1],
            ))
        })?
        .map_err(|e| AssetStoreError::Migration(e.to_string()))?;
        Ok(Self { pool })
    }

    pub(super) fn put(
        &self,
        project: &ProjectName,
        id: &str,
        content: &[u8],
        now_ms: i64,
    ) -> Result<(), AssetStoreError> {
        let content = std::str::from_utf8(content)
            .map_err(|e| AssetStoreError::Io(std::io::Error::other(e)))?;
        let existing: Option<String> = self.pool.with(|client| {
            let inserted = client.execute(
                "INSERT INTO coflux_assets (project, id, record, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, id) DO NOTHING",
                &[&project.as_str(), &id, &content, &now_ms],
            )?;
            if inserted == 1 {
                return Ok(None);
            }
            let row = client.query_one(
                "SELECT record FROM coflux_assets WHERE project = $1 AND id = $2",
                &[&project.as_str(), &id],
            )?;
            Ok(Some(row.get(0)))
        })?;
        match existing {
            Some(existing) if existing != content => Err(AssetStoreError::Conflict),
            _ => Ok(()),
        }
    }

    pub(super) fn get(
        &self,
        project: &ProjectName,
        id: &str,
    ) -> Result<Option<Vec<u8>>, AssetStoreError> {
        let row = self.pool.with(|client| {
            client.query_opt(
                "SELECT record FROM coflux_assets WHERE project = $1 AND id = $2",
                &[&project.as_str(), &id],
            )
        })?;
        Ok(row.map(|row| row.get::<_, String>(0).into_bytes()))
    }

    pub(super) fn for_each(
        &self,
        project: &ProjectName,
        f: &mut super::EachRecord<'_>,
    ) -> Result<(), AssetStoreError> {
        let rows = self.pool.with(|client| {
            client.query(
                "SELECT id, record FROM coflux_assets WHERE project = $1",
                &[&project.as_str()],
            )
        })?;
        for row in rows {
            f(row.get(0), row.get::<_, &str>(1).as_bytes())?;
        }
        Ok(())
    }

    pub(super) fn delete_unreferenced(
        &self,
        project: &ProjectName,
        referenced: &HashSet<String>,
        cutoff_ms: i64,
    ) -> Result<usize, AssetStoreError> {
        let project = project.as_str();
        let old: Vec<String> = self.pool.with(|client| {
            let rows = client.query(
                "SELECT id FROM coflux_assets WHERE project = $1 AND created_ms < $2",
                &[&project, &cutoff_ms],
            )?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })?;
        let doomed: Vec<String> = old
            .into_iter()
            .filter(|id| !referenced.contains(id))
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let deleted = self.pool.with(|client| {
            client.execute(
                "DELETE FROM coflux_assets WHERE project = $1 AND id = ANY($2) AND created_ms < $3",
                &[&project, &doomed, &cutoff_ms],
            )
        })?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}
