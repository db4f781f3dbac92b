//! The catalogue of projects: `<data_dir>/catalogue.sqlite`, next to one database per project
//! at `<data_dir>/projects/<name>/project.sqlite`; or, with PostgreSQL, the `coflux_projects`
//! table of the database's `public` schema.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use super::{StoreError, schema};
use crate::model::{Millis, ProjectName, now_millis};

/// The catalogue's file name within the data directory.
pub const CATALOGUE_FILE: &str = "catalogue.sqlite";

/// Where a project's database lives: `<data_dir>/projects/<name>/project.sqlite`.
pub fn project_db_path(data_dir: &Path, name: &ProjectName) -> PathBuf {
    data_dir
        .join("projects")
        .join(name.as_str())
        .join("project.sqlite")
}

/// The list of projects of a data directory. Safe to share between threads.
#[derive(Debug)]
pub struct Catalogue {
    conn: Mutex<Connection>,
    /// With PostgreSQL: the database (the SQLite catalogue above is then not used).
    postgres: Option<Mutex<PgClient>>,
    data_dir: PathBuf,
}

/// A PostgreSQL client and the URL it connected to (to connect again after the connection
/// broke, e.g. PostgreSQL restarted).
struct PgClient(postgres::Client, String);

impl std::fmt::Debug for PgClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgClient")
    }
}

impl Catalogue {
    /// Opens (creating the data directory and the catalogue if needed) the catalogue of
    /// `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(data_dir)?;
        let mut conn = Connection::open(data_dir.join(CATALOGUE_FILE))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "could not enable WAL mode (journal_mode is {mode})"
            ))));
        }
        // Project creation is rare: make it survive power loss too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::catalogue_migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            conn: Mutex::new(conn),
            postgres: None,
            data_dir: data_dir.to_owned(),
        })
    }

    /// Opens the catalogue of the PostgreSQL database at `url` (creating its table if
    /// needed); `data_dir` still holds what stays local (logs, blobs, tokens).
    pub fn open_postgres(data_dir: &Path, url: &str) -> Result<Self, StoreError> {
        let mut catalogue = Self::open(data_dir)?;
        let client = super::postgres::off_runtime(|| -> Result<_, StoreError> {
            let mut client = postgres::Client::connect(url, postgres::NoTls)?;
            super::postgres::schema::migrate_catalogue(&mut client)?;
            Ok(client)
        })?;
        catalogue.postgres = Some(Mutex::new(PgClient(client, url.to_owned())));
        Ok(catalogue)
    }

    /// Runs `f` on the PostgreSQL client, when the catalogue is there; once more on a new
    /// connection if the connection broke.
    fn pg<T: Send>(
        &self,
        f: impl Fn(&mut postgres::Client) -> Result<T, StoreError> + Send + Sync,
    ) -> Option<Result<T, StoreError>> {
        let mut pg = self
            .postgres
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pg = &mut *pg;
        Some(super::postgres::off_runtime(move || match f(&mut pg.0) {
            Err(e) if super::postgres::is_disconnect(&e) => {
                pg.0 = postgres::Client::connect(&pg.1, postgres::NoTls)?;
                f(&mut pg.0)
            }
            other => other,
        }))
    }

    /// The data directory this catalogue belongs to.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the project `name`'s database lives in this data directory.
    pub fn project_path(&self, name: &ProjectName) -> PathBuf {
        project_db_path(&self.data_dir, name)
    }

    /// Records the project `name`; returns whether it was newly created (`false`: it already
    /// existed, and is left unchanged).
    pub fn create(&self, name: &ProjectName) -> Result<bool, StoreError> {
        if let Some(created) = self.pg(|client| {
            let inserted = client.execute(
                "INSERT INTO public.coflux_projects (name, created_at) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                &[&name.as_str(), &now_millis()],
            )?;
            Ok(inserted == 1)
        }) {
            return created;
        }
        let inserted = self
            .conn()
            .prepare_cached("INSERT OR IGNORE INTO projects (name, created_at) VALUES (?1, ?2)")?
            .execute(rusqlite::params![name.as_str(), now_millis()])?;
        Ok(inserted == 1)
    }

    /// All projects with their creation times, by name.
    pub fn list(&self) -> Result<Vec<(ProjectName, Millis)>, StoreError> {
        if let Some(listed) = self.pg(|client| {
            client
                .query(
                    "SELECT name, created_at FROM public.coflux_projects
                         ORDER BY name COLLATE \"C\"",
                    &[],
                )?
                .iter()
                .map(|row| {
                    let name: String = row.try_get(0)?;
                    let name =
                        ProjectName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok((name, row.try_get(1)?))
                })
                .collect()
        }) {
            return listed;
        }
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT name, created_at FROM projects ORDER BY name")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let name = ProjectName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((name, row.get(1)?));
        }
        Ok(out)
    }

    /// Whether the project `name` exists.
    pub fn exists(&self, name: &ProjectName) -> Result<bool, StoreError> {
        if let Some(exists) = self.pg(|client| {
            Ok(client
                .query_opt(
                    "SELECT 1 FROM public.coflux_projects WHERE name = $1",
                    &[&name.as_str()],
                )?
                .is_some())
        }) {
            return exists;
        }
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM projects WHERE name = ?1")?
            .exists([name.as_str()])?)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-updated (every
        // statement is atomic), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ProjectName {
        ProjectName::new(s).unwrap()
    }

    #[test]
    fn store_catalogue_creates_lists_and_finds_projects() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let catalogue = Catalogue::open(&data_dir).unwrap();
        assert!(catalogue.list().unwrap().is_empty());
        assert!(!catalogue.exists(&name("default")).unwrap());

        assert!(catalogue.create(&name("default")).unwrap());
        assert!(catalogue.create(&name("acme")).unwrap());
        assert!(!catalogue.create(&name("default")).unwrap());
        assert!(catalogue.exists(&name("default")).unwrap());
        assert!(!catalogue.exists(&name("other")).unwrap());

        let listed = catalogue.list().unwrap();
        let names: Vec<_> = listed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["acme", "default"]);
        assert!(listed.iter().all(|(_, at)| *at > 0));

        // Survives reopening.
        drop(catalogue);
        let reopened = Catalogue::open(&data_dir).unwrap();
        assert_eq!(reopened.list().unwrap(), listed);
        assert!(data_dir.join(CATALOGUE_FILE).exists());
    }

    #[test]
    fn store_catalogue_project_paths() {
        let data_dir = Path::new("/srv/coflux");
        assert_eq!(
            project_db_path(data_dir, &name("acme-1")),
            PathBuf::from("/srv/coflux/projects/acme-1/project.sqlite")
        );
    }

    #[test]
    fn store_catalogue_is_shareable_between_threads() {
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<Catalogue>();
        let dir = tempfile::tempdir().unwrap();
        let catalogue = std::sync::Arc::new(Catalogue::open(dir.path()).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let catalogue = std::sync::Arc::clone(&catalogue);
                std::thread::spawn(move || catalogue.create(&name(&format!("p{}", i % 2))).unwrap())
            })
            .collect();
        let created = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|c| *c)
            .count();
        assert_eq!(created, 2);
        assert_eq!(
            catalogue.project_path(&name("p0")),
            dir.path().join("projects/p0/project.sqlite")
        );
    }
}
