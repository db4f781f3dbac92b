//! Project ownership by lease, for several nodes over one PostgreSQL database.
//!
//! Two tables in `public`, migrated on their own track (`coflux_cluster_version`):
//!
//! - `coflux_nodes`: each node (its id is the URL other nodes reach it at), what blob store
//!   it uses, and its last heartbeat;
//! - `coflux_leases`: one row per loaded project: the node owning it, an **epoch** bumped on
//!   every acquisition, and when the lease expires unless renewed.
//!
//! Times are the database's clock (`clock_timestamp()`), so nodes' clocks do not matter. A
//! node takes a project only if nobody holds an unexpired lease on it (or it held it itself,
//! e.g. before a restart); taking it always bumps the epoch. Every write transaction of the
//! project checks, with a share lock on the lease row, that the lease is still this node's,
//! with the same epoch, and unexpired ([`FenceCheck`]): a node that lost its lease (paused,
//! partitioned) cannot commit, and a taker's bump waits for a write in flight to finish.

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::off_runtime;
use crate::store::StoreError;

/// The current time in ms on the database's clock, as SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Version 1 of the cluster tables.
const CLUSTER_V1: &str = "
CREATE TABLE coflux_nodes (
    id TEXT PRIMARY KEY,
    blobs TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
CREATE TABLE coflux_leases (
    project TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
";

/// The migrations of the cluster tables, oldest first.
const CLUSTER: &[&str] = &[CLUSTER_V1];

/// What a node of a cluster needs to own projects by lease.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id: the URL other nodes reach it at.
    pub node: String,
    /// How long a lease lasts unless renewed (renewed every fifth of it).
    pub lease_duration: Duration,
    /// Its blob store, recorded with its heartbeat (`local` or `s3`).
    pub blobs: String,
}

/// A node of the cluster as the nodes table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Its id: the URL other nodes reach it at.
    pub id: String,
    /// Its blob store (`local` or `s3`).
    pub blobs: String,
    /// Its last heartbeat (ms, database clock).
    pub heartbeat_at: i64,
    /// Whether it beat within the liveness window.
    pub live: bool,
}

/// A project's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The project.
    pub project: String,
    /// The node owning it.
    pub node: String,
    /// Bumped on every acquisition.
    pub epoch: i64,
    /// When it expires unless renewed (ms, database clock).
    pub expires_at: i64,
    /// Whether it has expired.
    pub expired: bool,
}

/// What [`Leases::acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This node owns the project now, with this epoch.
    Owned(i64),
    /// Another node holds an unexpired lease.
    Elsewhere {
        /// The owner's id (its URL).
        node: String,
    },
}

/// What each write transaction of a lease-owned project checks (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceCheck {
    /// The project's name.
    pub project: String,
    /// This node.
    pub node: String,
    /// The epoch this node acquired.
    pub epoch: i64,
    /// The longest a write transaction may stay idle (its node paused, cut off): PostgreSQL
    /// then ends the session, so its locks (the lease row's included) do not hold up the
    /// node taking over. Half a lease.
    pub idle_limit: Duration,
    /// How long a lease lasts: what a replay after a reconnection extends it by
    /// ([`RENEWING_FENCE_SQL`]).
    pub lease: Duration,
}

/// The statement of the fence check (run in the write transaction).
pub(super) const FENCE_SQL: &str = "SELECT EXISTS (SELECT 1 FROM public.coflux_leases \
     WHERE project = $1 AND node = $2 AND epoch = $3 AND expires_at > \
     (extract(epoch from clock_timestamp()) * 1000)::bigint FOR SHARE)";

/// The fence check of a replay (the batches PostgreSQL lost, committed again after a
/// reconnection): the lease must still be this node's with the same epoch, as in
/// [`FENCE_SQL`], but it may have expired meanwhile, since PostgreSQL was down: nobody else
/// has taken the project (the epoch would have moved), so no other node has written, and the
/// lease is extended by `$4` ms in the same transaction. (Nodes hold back takeovers for a lease
/// after their own lease connection came back, [`Leases::takeovers_paused`], which leaves the
/// owner that time to replay.)
pub(super) const RENEWING_FENCE_SQL: &str = "WITH renewed AS (UPDATE public.coflux_leases \
     SET expires_at = GREATEST(expires_at, (extract(epoch from clock_timestamp()) * 1000)::bigint + $4) \
     WHERE project = $1 AND node = $2 AND epoch = $3 RETURNING 1) \
     SELECT EXISTS (SELECT 1 FROM renewed)";

/// One node's access to the cluster tables (its own connection).
pub struct Leases {
    /// `None` only while dropped.
    client: Mutex<Option<Client>>,
    /// To connect again after the connection broke (e.g. PostgreSQL restarted).
    url: String,
    /// When the connection last came back after breaking.
    reconnected_at: Mutex<Option<std::time::Instant>>,
    node: String,
    duration: Duration,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("node", &self.node).finish()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Leases {
    /// Connects as node `node` (its URL), creating the cluster tables if needed; leases last
    /// `duration` unless renewed.
    pub fn connect(url: &str, node: &str, duration: Duration) -> Result<Self, StoreError> {
        off_runtime(|| {
            let mut client = Self::session(url, duration)?;
            super::schema::migrate_public(&mut client, "coflux_cluster_version", CLUSTER)?;
            Ok(Self {
                client: Mutex::new(Some(client)),
                url: url.to_owned(),
                reconnected_at: Mutex::new(None),
                node: node.to_owned(),
                duration,
            })
        })
    }

    /// A connection with the session settings of lease work.
    fn session(url: &str, duration: Duration) -> Result<Client, postgres::Error> {
        let mut client = Client::connect(url, NoTls)?;
        // Taking a lease waits at most this long for a paused owner's transaction (ended by
        // its idle limit meanwhile); the next round tries again.
        client.batch_execute(&format!(
            "SET application_name TO 'coflux-cluster'; SET lock_timeout = {}",
            ms(duration / 4).max(100)
        ))?;
        Ok(client)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a lease lasts unless renewed.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Runs `f` on the connection; once more on a new one if the connection broke.
    fn with<T: Send>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error> + Send + Sync,
    ) -> Result<T, StoreError> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let Some(client) = client.as_mut() else {
            return Err(StoreError::WriterStopped);
        };
        off_runtime(move || match f(client).map_err(StoreError::from) {
            Err(e) if super::is_disconnect(&e) => {
                *client = Self::session(&self.url, self.duration)?;
                *self
                    .reconnected_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
                Ok(f(client)?)
            }
            other => other,
        })
    }

    /// Whether this node holds back from taking other nodes' projects: for one lease after its
    /// connection came back (PostgreSQL restarted, say). Every owner lost its connection too,
    /// and its lease may have expired while PostgreSQL was down; this leaves it the time to
    /// reconnect, commit again what PostgreSQL lost ([`RENEWING_FENCE_SQL`]) and renew.
    pub fn takeovers_paused(&self) -> bool {
        self.reconnected_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < self.duration)
    }

    /// Records that this node is alive (and which blob store it uses).
    pub fn heartbeat(&self, blobs: &str) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO public.coflux_nodes (id, blobs, started_at, heartbeat_at)
             VALUES ($1, $2, {NOW_MS}, {NOW_MS})
             ON CONFLICT (id) DO UPDATE SET blobs = EXCLUDED.blobs, heartbeat_at = {NOW_MS}"
        );
        self.with(|c| c.execute(&sql, &[&self.node, &blobs]).map(drop))
    }

    /// Every node recorded; `live` when it beat within half a lease.
    pub fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let sql = format!(
            "SELECT id, blobs, heartbeat_at, heartbeat_at > {NOW_MS} - $1 FROM public.coflux_nodes
             ORDER BY id"
        );
        let window = ms(self.duration / 2);
        self.with(|c| {
            Ok(c.query(&sql, &[&window])?
                .iter()
                .map(|r| NodeRow {
                    id: r.get(0),
                    blobs: r.get(1),
                    heartbeat_at: r.get(2),
                    live: r.get(3),
                })
                .collect())
        })
    }

    /// Takes project `project` unless another node holds an unexpired lease on it. Taking it
    /// (also back from an earlier life of this node) bumps the epoch.
    pub fn acquire(&self, project: &str) -> Result<Acquired, StoreError> {
        let take = format!(
            "INSERT INTO public.coflux_leases AS l (project, node, epoch, expires_at)
             VALUES ($1, $2, 1, {NOW_MS} + $3)
             ON CONFLICT (project) DO UPDATE
                SET node = EXCLUDED.node, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
                WHERE l.expires_at <= {NOW_MS} OR l.node = EXCLUDED.node
             RETURNING epoch"
        );
        let duration = ms(self.duration);
        self.with(|c| {
            if let Some(row) = c.query_opt(&take, &[&project, &self.node, &duration])? {
                return Ok(Acquired::Owned(row.get(0)));
            }
            let owner = c.query_opt(
                "SELECT node FROM public.coflux_leases WHERE project = $1",
                &[&project],
            )?;
            Ok(match owner {
                Some(row) => Acquired::Elsewhere { node: row.get(0) },
                // Released meanwhile: the caller may try again.
                None => Acquired::Elsewhere {
                    node: String::new(),
                },
            })
        })
    }

    /// Extends the leases of `loaded` (project, epoch: the projects loaded on this node) that
    /// are still this node's with the same epoch; returns those (project, epoch). A lease that
    /// expired but that nobody took (PostgreSQL was down, say) is extended too: no other node
    /// has written since. One another node took is lost.
    pub fn renew(&self, loaded: &[(String, i64)]) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = format!(
            "UPDATE public.coflux_leases AS l SET expires_at = {NOW_MS} + $2
             FROM unnest($3::text[], $4::bigint[]) AS h(project, epoch)
             WHERE l.node = $1 AND l.project = h.project AND l.epoch = h.epoch
             RETURNING l.project, l.epoch"
        );
        let duration = ms(self.duration);
        let (projects, epochs): (Vec<&str>, Vec<i64>) =
            loaded.iter().map(|(p, e)| (p.as_str(), *e)).unzip();
        self.with(|c| {
            Ok(c.query(&sql, &[&self.node, &duration, &projects, &epochs])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    /// Deletes the lease of `project` if it has expired: for a project that no longer exists
    /// (a lease left behind would otherwise be offered for takeover on every round).
    pub fn forget_expired(&self, project: &str) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM public.coflux_leases WHERE project = $1 AND expires_at <= {NOW_MS}"
        );
        self.with(|c| c.execute(&sql, &[&project]).map(drop))
    }

    /// Gives up a lease (the project was unloaded): another node may take it at once.
    pub fn release(&self, project: &str, epoch: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM public.coflux_leases WHERE project = $1 AND node = $2 AND epoch = $3",
                &[&project, &self.node, &epoch],
            )
            .map(drop)
        })
    }

    /// The database's clock (ms since the epoch).
    pub fn now_ms(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT {NOW_MS}");
        self.with(|c| Ok(c.query_one(&sql, &[])?.get(0)))
    }

    /// Every lease.
    pub fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let sql = format!(
            "SELECT project, node, epoch, expires_at, expires_at <= {NOW_MS}
             FROM public.coflux_leases ORDER BY project"
        );
        self.with(|c| {
            Ok(c.query(&sql, &[])?
                .iter()
                .map(|r| LeaseRow {
                    project: r.get(0),
                    node: r.get(1),
                    epoch: r.get(2),
                    expires_at: r.get(3),
                    expired: r.get(4),
                })
                .collect())
        })
    }

    /// One project's lease, if any.
    pub fn lease(&self, project: &str) -> Result<Option<LeaseRow>, StoreError> {
        let sql = format!(
            "SELECT project, node, epoch, expires_at, expires_at <= {NOW_MS}
             FROM public.coflux_leases WHERE project = $1"
        );
        self.with(|c| {
            Ok(c.query_opt(&sql, &[&project])?.map(|r| LeaseRow {
                project: r.get(0),
                node: r.get(1),
                epoch: r.get(2),
                expires_at: r.get(3),
                expired: r.get(4),
            }))
        })
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        // The client must not be dropped on an async runtime's thread.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(client) = client {
            off_runtime(move || drop(client));
        }
    }
}

/// The node that should own `project` among `nodes` (rendezvous hashing: the highest hash of
/// node and project), so each node agrees without talking to the others and a node's loss
/// moves only its own projects.
pub fn preferred_node<'a>(nodes: &'a [String], project: &str) -> Option<&'a str> {
    use sha2::Digest;
    nodes
        .iter()
        .max_by_key(|node| {
            let mut h = sha2::Sha256::new();
            h.update(node.as_bytes());
            h.update([0]);
            h.update(project.as_bytes());
            let digest = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            (u64::from_be_bytes(first), (*node).clone())
        })
        .map(String::as_str)
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
