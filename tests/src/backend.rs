//! The store the servers started by these tests use: SQLite in their data directory (the
//! default), or PostgreSQL with `COFLUX_TEST_BACKEND=postgres` and `COFLUX_TEST_DATABASE_URL`
//! (see `scripts/setup-postgres.sh`; the role needs `CREATEDB`). Each data directory gets a
//! database of its own, `cx_e2e_<pid>_<hash>`, so tests stay isolated while a server restarted
//! on the same directory finds its state again. Databases of test processes that have exited
//! are dropped when the next process starts its first server.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::OnceLock;

/// Whether servers use PostgreSQL (`COFLUX_TEST_BACKEND=postgres`).
pub fn is_postgres() -> bool {
    match std::env::var("COFLUX_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("COFLUX_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

/// Skips (returns `true`, after saying why) a test that only applies to SQLite when servers
/// use PostgreSQL.
pub fn skip_on_postgres(reason: &str) -> bool {
    if is_postgres() {
        eprintln!("skipped on PostgreSQL: {reason}");
    }
    is_postgres()
}

/// The `--database-url` flags for a server on `data_dir` (none with SQLite).
pub fn server_flags(data_dir: &Path) -> Vec<String> {
    if !is_postgres() {
        return Vec::new();
    }
    vec![
        "--database-url".into(),
        database_of(&admin_url(), &database_name(data_dir)),
    ]
}

/// A database of its own for one test, on the server of `admin` (a PostgreSQL URL whose role
/// has `CREATEDB`): created empty, named after this process and `key`, so that what one test
/// leaves behind (projects, expired leases) is not seen by another. Dropped once this process
/// has exited, when the next test process creates its first database. Gives its URL.
pub fn fresh_database(admin: &str, key: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let name = format!("cx_e2e_{}_{:016x}", std::process::id(), hasher.finish());
    database_of(admin, &name)
}

/// Creates database `name` on the server of `admin` unless it exists; gives its URL.
fn database_of(admin: &str, name: &str) -> String {
    let url = with_database(admin, name);
    let (admin, name) = (admin.to_owned(), name.to_owned());
    // The blocking client must not run on the test's async runtime.
    std::thread::spawn(move || {
        static CLEANED: OnceLock<()> = OnceLock::new();
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .expect("connect to COFLUX_TEST_DATABASE_URL");
        CLEANED.get_or_init(|| drop_stale(&mut client));
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .expect("list databases")
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .expect("create a test database (does the role have CREATEDB?)");
        }
    })
    .join()
    .expect("preparing the test database panicked");
    url
}

fn admin_url() -> String {
    std::env::var("COFLUX_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("COFLUX_TEST_BACKEND=postgres needs COFLUX_TEST_DATABASE_URL")
}

fn database_name(data_dir: &Path) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    format!("cx_e2e_{}_{:016x}", std::process::id(), hasher.finish())
}

/// The database of the server on `data_dir` (`None` with SQLite).
pub fn database_url(data_dir: &Path) -> Option<String> {
    is_postgres().then(|| with_database(&admin_url(), &database_name(data_dir)))
}

/// `url` with its database replaced by `name` (its query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Drops the databases of test processes that are no longer running.
fn drop_stale(client: &mut postgres::Client) {
    let Ok(rows) = client.query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'cx\\_e2e\\_%'",
        &[],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ =
                client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backend_database_url_replaces_only_the_database() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/db?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
