//! [`TokenStore`]: access tokens, kept hashed in `<data-dir>/auth.sqlite` (or, with
//! `--database-url`, in PostgreSQL's `coflux_tokens`, shared by every node) and cached in
//! memory.
//!
//! A token reads `cfx_<id>_<secret>`: the id finds its record, the secret is compared (as its
//! SHA-256, in constant time) with the stored hash. The secret itself is never stored or
//! logged; it is shown once, when the token is created.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Grant, Role};

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token database failed.
    #[error("token store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The token tables in PostgreSQL failed.
    #[error("token store: {0}")]
    Postgres(#[from] postgres::Error),
    /// Its schema could not be brought up to date.
    #[error("token store migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The PostgreSQL tables could not be brought up to date.
    #[error("token store migration: {0}")]
    PostgresMigration(String),
    /// No token with this id.
    #[error("no token {0}")]
    NotFound(String),
}

impl TokenError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(_)
            | Self::Postgres(_)
            | Self::Migration(_)
            | Self::PostgresMigration(_) => "token_store",
            Self::NotFound(_) => "token_not_found",
        }
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenInfo {
    /// Its id (the part after `cfx_`).
    pub id: String,
    /// The project it is for.
    pub project: String,
    /// The environments it may act in (a pattern with `*`); `None` for all.
    pub environments: Option<String>,
    /// What it may do.
    pub role: Role,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; `None` for never.
    pub expires_at: Option<i64>,
    /// Unix ms, once revoked.
    pub revoked_at: Option<i64>,
}

struct Record {
    info: TokenInfo,
    hash: [u8; 32],
}

/// Tokens, cached in memory (checking one costs no read of the database).
pub struct TokenStore {
    db: Mutex<Db>,
    cache: Mutex<HashMap<String, Record>>,
}

/// Where tokens are kept.
enum Db {
    Sqlite(Connection),
    Postgres(postgres::Client),
    /// Being dropped.
    Closed,
}

/// Version 1 of the PostgreSQL token table (= the SQLite one).
const PG_SCHEMA_V1: &str = "
CREATE TABLE coflux_tokens (
    id TEXT PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    project TEXT NOT NULL,
    environments TEXT,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
";

/// A token row: id, hash, project, environments, role, created, expires, revoked.
type Row = (
    String,
    Vec<u8>,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

const SELECT_ALL: &str = "SELECT id, secret_hash, project, environments, role, created_at, \
    expires_at, revoked_at FROM ";

const SCHEMA_V1: &str = "
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    project TEXT NOT NULL,
    environments TEXT,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) WITHOUT ROWID;
";

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenStore {
    /// Opens (creating if missing) `<data_dir>/auth.sqlite`.
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        let conn = Connection::open(data_dir.join("auth.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::with(conn)
    }

    /// A store kept in memory only (for tests and servers without authentication).
    pub fn in_memory() -> Result<Self, TokenError> {
        Self::with(Connection::open_in_memory()?)
    }

    /// Opens the token table of the PostgreSQL database at `url` (created or brought up to
    /// date here); tokens are shared by every node using that database.
    pub fn open_postgres(url: &str) -> Result<Self, TokenError> {
        use coflux_core::store::postgres::{off_runtime, schema};
        off_runtime(|| {
            let mut client = postgres::Client::connect(url, postgres::NoTls)?;
            schema::migrate(
                &mut client,
                "public",
                "coflux_tokens_version",
                &[PG_SCHEMA_V1],
            )
            .map_err(|e| TokenError::PostgresMigration(e.to_string()))?;
            let store = Self {
                db: Mutex::new(Db::Postgres(client)),
                cache: Mutex::new(HashMap::new()),
            };
            store.reload_blocking()?;
            Ok(store)
        })
    }

    fn with(mut conn: Connection) -> Result<Self, TokenError> {
        Migrations::new(vec![M::up(SCHEMA_V1)]).to_latest(&mut conn)?;
        let store = Self {
            db: Mutex::new(Db::Sqlite(conn)),
            cache: Mutex::new(HashMap::new()),
        };
        store.reload_blocking()?;
        Ok(store)
    }

    /// Reads every token again (with PostgreSQL, picks up the tokens other nodes created or
    /// revoked). Call it off the async workers.
    pub fn reload(&self) -> Result<(), TokenError> {
        coflux_core::store::postgres::off_runtime(|| self.reload_blocking())
    }

    fn reload_blocking(&self) -> Result<(), TokenError> {
        // Held until the cache is replaced, so a token created meanwhile is not lost.
        let mut db = lock(&self.db);
        let rows: Vec<Row> = match &mut *db {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare(&format!("{SELECT_ALL}tokens"))?;
                let rows = stmt.query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                    ))
                })?;
                rows.collect::<Result<_, _>>()?
            }
            Db::Postgres(client) => client
                .query(&format!("{SELECT_ALL}coflux_tokens"), &[])?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                        row.try_get(7)?,
                    ))
                })
                .collect::<Result<_, postgres::Error>>()?,
            Db::Closed => Vec::new(),
        };
        let mut cache = HashMap::new();
        for (id, hash, project, environments, role, created_at, expires_at, revoked_at) in rows {
            let (Ok(hash), Some(role)) = (<[u8; 32]>::try_from(hash), Role::parse(&role)) else {
                continue;
            };
            let info = TokenInfo {
                id,
                project,
                environments,
                role,
                created_at,
                expires_at,
                revoked_at,
            };
            cache.insert(info.id.clone(), Record { info, hash });
        }
        *lock(&self.cache) = cache;
        drop(db);
        Ok(())
    }

    /// Creates a token; returns it (shown once) with its record.
    pub fn create(
        &self,
        project: &str,
        environments: Option<&str>,
        role: Role,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(String, TokenInfo), TokenError> {
        let mut bytes = [0u8; 38];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(&bytes[..6]);
        let secret = hex::encode(&bytes[6..]);
        let info = TokenInfo {
            id: id.clone(),
            project: project.to_owned(),
            environments: environments.map(str::to_owned),
            role,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        let digest = hash(&secret);
        let hash = digest.to_vec();
        let role_name = role.as_str();
        coflux_core::store::postgres::off_runtime(|| -> Result<(), TokenError> {
            match &mut *lock(&self.db) {
                Db::Sqlite(conn) => {
                    conn.execute(
                        "INSERT INTO tokens (id, secret_hash, project, environments, role, \
                         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![id, hash, project, environments, role_name, now, expires_at],
                    )?;
                }
                Db::Postgres(client) => {
                    client.execute(
                        "INSERT INTO coflux_tokens (id, secret_hash, project, environments, \
                         role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        &[
                            &id,
                            &hash,
                            &project,
                            &environments,
                            &role_name,
                            &now,
                            &expires_at,
                        ],
                    )?;
                }
                Db::Closed => {}
            }
            Ok(())
        })?;
        lock(&self.cache).insert(
            id.clone(),
            Record {
                info: info.clone(),
                hash: digest,
            },
        );
        Ok((format!("cfx_{id}_{secret}"), info))
    }

    /// The tokens of a project (`None`: of every project), oldest first.
    pub fn list(&self, project: Option<&str>) -> Vec<TokenInfo> {
        let mut tokens: Vec<TokenInfo> = lock(&self.cache)
            .values()
            .filter(|r| project.is_none_or(|p| r.info.project == p))
            .map(|r| r.info.clone())
            .collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        tokens
    }

    /// The record of a token id.
    pub fn get(&self, id: &str) -> Option<TokenInfo> {
        lock(&self.cache).get(id).map(|r| r.info.clone())
    }

    /// Revokes a token (it stops working at once).
    pub fn revoke(&self, id: &str, now: i64) -> Result<TokenInfo, TokenError> {
        let changed = coflux_core::store::postgres::off_runtime(|| -> Result<u64, TokenError> {
            Ok(match &mut *lock(&self.db) {
                Db::Sqlite(conn) => conn
                    .execute(
                        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                        params![id, now],
                    )
                    .optional()?
                    .unwrap_or(0) as u64,
                Db::Postgres(client) => client.execute(
                    "UPDATE coflux_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &now],
                )?,
                Db::Closed => 0,
            })
        })?;
        let mut cache = lock(&self.cache);
        let record = cache
            .get_mut(id)
            .ok_or_else(|| TokenError::NotFound(id.to_owned()))?;
        if changed > 0 {
            record.info.revoked_at = Some(now);
        }
        Ok(record.info.clone())
    }

    /// What a presented `cfx_…` token grants, if it is valid now.
    pub fn verify(&self, token: &str, now: i64) -> Option<Grant> {
        let (id, secret) = token.strip_prefix("cfx_")?.split_once('_')?;
        let cache = lock(&self.cache);
        let record = cache.get(id)?;
        let valid = same_hash(&record.hash, &hash(secret))
            && record.info.revoked_at.is_none()
            && record.info.expires_at.is_none_or(|at| now < at);
        valid.then(|| Grant {
            project: Some(record.info.project.clone()),
            environments: record.info.environments.clone(),
            role: record.info.role,
            token: Some(record.info.id.clone()),
        })
    }
}

impl Drop for TokenStore {
    fn drop(&mut self) {
        // A PostgreSQL client owns a runtime, which must not be dropped on an async worker.
        let db = std::mem::replace(&mut *lock(&self.db), Db::Closed);
        if let Db::Postgres(client) = db {
            coflux_core::store::postgres::off_runtime(move || drop(client));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_tokens_verify_expire_revoke_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (token, info) = store
            .create("acme", Some("dev-*"), Role::Agent, Some(2_000), 1_000)
            .unwrap();
        let grant = store.verify(&token, 1_500).unwrap();
        assert_eq!(grant.project.as_deref(), Some("acme"));
        assert_eq!(grant.role, Role::Agent);
        assert!(store.verify(&token, 2_000).is_none(), "expired");
        let last = if token.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &token[..token.len() - 1]);
        assert!(store.verify(&forged, 1_500).is_none(), "wrong secret");
        assert!(store.verify("cfx_nope_x", 1_500).is_none());
        assert!(store.verify("garbage", 1_500).is_none());
        // Stored hashed: the secret is nowhere in the database file.
        let secret = token.rsplit('_').next().unwrap();
        let raw = std::fs::read(dir.path().join("auth.sqlite")).unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        drop(store);
        let store = TokenStore::open(dir.path()).unwrap();
        assert!(
            store.verify(&token, 1_500).is_some(),
            "kept across a reopen"
        );
        store.revoke(&info.id, 1_600).unwrap();
        assert!(store.verify(&token, 1_700).is_none(), "revoked");
        assert_eq!(store.list(Some("acme"))[0].revoked_at, Some(1_600));
        assert!(store.list(Some("other")).is_empty());
        assert!(matches!(
            store.revoke("missing", 1),
            Err(TokenError::NotFound(_))
        ));
    }

    /// Over PostgreSQL (`COFLUX_TEST_DATABASE_URL`; skipped without it unless
    /// `COFLUX_PG_TESTS=require`), tokens are shared: one node's token works on another after
    /// a reload, and a revocation on either is seen by the other.
    #[test]
    fn auth_tokens_in_postgres_are_shared_by_nodes() {
        let url = match std::env::var("COFLUX_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("COFLUX_PG_TESTS").as_deref() == Ok("require") => {
                panic!("COFLUX_PG_TESTS=require but COFLUX_TEST_DATABASE_URL is not set")
            }
            _ => return eprintln!("skipped: PostgreSQL token test"),
        };
        let a = TokenStore::open_postgres(&url).unwrap();
        let b = TokenStore::open_postgres(&url).unwrap();
        let project = format!("tokens-{}", std::process::id());
        let (token, info) = a.create(&project, None, Role::User, None, 1_000).unwrap();
        assert!(a.verify(&token, 1_500).is_some());
        assert!(b.verify(&token, 1_500).is_none(), "not read yet");
        b.reload().unwrap();
        let grant = b.verify(&token, 1_500).unwrap();
        assert_eq!(grant.project.as_deref(), Some(project.as_str()));
        assert_eq!(b.get(&info.id).unwrap(), info);
        b.revoke(&info.id, 1_600).unwrap();
        assert!(b.verify(&token, 1_700).is_none());
        a.reload().unwrap();
        assert!(
            a.verify(&token, 1_700).is_none(),
            "revoked on the other node"
        );
        assert_eq!(
            TokenStore::open_postgres(&url)
                .unwrap()
                .list(Some(&project))
                .len(),
            1
        );
    }
}
