//! The blobs a project's recorded values reference, for garbage collection of blob storage.

use std::collections::HashSet;

use super::Coflux;
use super::error::Error;
use super::project::Project;
use crate::model::ProjectName;
use crate::store::location::StoreLocation;
use crate::store::postgres::{PgLocation, schema_name};

impl Coflux {
    /// The blob keys the project `name` references (as [`Project::referenced_blob_keys`]),
    /// read without taking the project over: over PostgreSQL any node reads the project's
    /// schema, whichever node owns it; with SQLite the project is opened.
    pub async fn referenced_blob_keys(&self, name: &str) -> Result<HashSet<String>, Error> {
        let Some(url) = &self.database_url else {
            return self
                .existing_project(name)
                .await?
                .referenced_blob_keys()
                .await;
        };
        let name = ProjectName::new(name).map_err(|e| Error::Invalid(e.to_string()))?;
        let location = StoreLocation::Postgres(PgLocation {
            url: url.clone(),
            schema: schema_name(&name),
        });
        actix_rt::task::spawn_blocking(move || {
            Ok(location.open_reader()?.referenced_blob_keys()?)
        })
        .await
        .map_err(|_| Error::Unavailable("blob reference task failed".into()))?
    }
}

impl Project {
    /// The keys of every blob referenced by the project's recorded step arguments, execution
    /// results and schedule arguments (see [`crate::store::location::ProjectReader::referenced_blob_keys`]). Read on a
    /// blocking thread through a read-only connection, so the project's writer is not held
    /// up. An undecodable row is an error: callers must then treat every blob as referenced.
    pub async fn referenced_blob_keys(&self) -> Result<HashSet<String>, Error> {
        let location = self.handle().store.clone();
        actix_rt::task::spawn_blocking(move || {
            Ok(location.open_reader()?.referenced_blob_keys()?)
        })
        .await
        .map_err(|_| Error::Unavailable("blob reference task failed".into()))?
    }
}

#[cfg(test)]
mod tests {
    use crate::Coflux;
    use crate::model::{Reference, TargetRef, Value};
    use serde_json::json;

    #[actix_rt::test]
    async fn blob_refs_come_from_arguments_and_fail_on_corrupt_rows() {
        let dir = tempfile::tempdir().unwrap();
        let coflux = Coflux::open(dir.path()).await.unwrap();
        let project = coflux.project("gc").await.unwrap();
        project
            .create_environment("production", None)
            .await
            .unwrap();
        assert!(project.referenced_blob_keys().await.unwrap().is_empty());

        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let fragment = |key: &str| Reference::Fragment {
            format: "pickle".into(),
            blob_key: key.to_owned(),
            size: 3,
            metadata: json!({}),
        };
        let arguments = vec![
            Value::Blob {
                key: a.clone(),
                size: 10,
                references: vec![fragment(&b)],
            },
            Value::Raw {
                data: json!({"type": "ref", "index": 0}),
                references: vec![fragment(&c)],
            },
            Value::raw(json!(1)),
        ];
        // No worker hosts `m/w`: its run only has to hold the arguments.
        let submission = crate::api::SubmitOptions {
            allow_unregistered: true,
            ..Default::default()
        };
        project
            .submit_with(
                "production",
                TargetRef::new("m", "w"),
                arguments,
                submission,
            )
            .await
            .unwrap();
        let keys = project.referenced_blob_keys().await.unwrap();
        assert_eq!(keys, [a, b, c].into_iter().collect());

        // A row that cannot be decoded fails the whole listing instead of being skipped.
        let conn = crate::store::sqlite::open_connection(
            &project.handle().db_path,
            rusqlite::OpenFlags::default(),
        )
        .unwrap();
        conn.execute(
            "UPDATE steps SET arguments = '[{\"type\":\"mystery\"}]'",
            [],
        )
        .unwrap();
        assert!(project.referenced_blob_keys().await.is_err());
    }
}
