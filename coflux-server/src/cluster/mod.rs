//! Several server nodes over one PostgreSQL database (`--database-url`): each project is
//! owned by one node at a time, by lease (`coflux_core::store::postgres::lease`; the core's
//! supervisor takes, renews and gives up leases, fences writes and takes over the projects of
//! nodes that stopped renewing). This module lets any node serve any request:
//!
//! - [`forward`]: an HTTP request naming a project owned elsewhere is forwarded to its owner
//!   (once: a forwarded request is always served where it lands);
//! - agents asking for such a project are told to connect to the owner (a `moved` close,
//!   followed by the agent; see `agents::connection`);
//! - `GET /api/cluster` ([`http`]) lists the nodes and the projects each owns.

pub mod forward;
mod relay_body;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coflux_core::store::postgres::lease::{LeaseRow, Leases, NodeRow, preferred_node};

/// How long a routing decision is reused before the leases are read again.
const ROUTE_TTL: Duration = Duration::from_millis(500);

/// Where a project's requests are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here (this node owns the project, or should take it).
    Local,
    /// At the node with this URL.
    Remote(String),
}

/// This node's view of the cluster.
pub struct Cluster {
    leases: Arc<Leases>,
    /// Recent routing decisions, by project.
    routes: Mutex<HashMap<String, (Route, Instant)>>,
    /// Forwards requests to other nodes.
    pub(crate) client: forward::Forwarder,
}

impl Cluster {
    /// Connects to the cluster tables as node `node`, refusing local blobs when another node
    /// is alive (blobs must then be in a shared S3 bucket).
    pub fn open(url: &str, node: &str, lease: Duration, blobs: &str) -> anyhow::Result<Self> {
        let leases = Arc::new(Leases::connect(url, node, lease)?);
        check_blobs(&leases.nodes()?, node, blobs)?;
        Ok(Self {
            leases,
            routes: Mutex::new(HashMap::new()),
            client: forward::Forwarder::new(node),
        })
    }

    /// This node's id (its advertise URL).
    pub fn node(&self) -> &str {
        self.leases.node()
    }

    /// Where `project`'s requests go: the owner of its unexpired lease, or (unowned) the node
    /// rendezvous hashing picks among the live ones. Errors reading the leases route here.
    pub async fn route(&self, project: &str) -> Route {
        if let Some((route, at)) = lock(&self.routes).get(project)
            && at.elapsed() < ROUTE_TTL
        {
            return route.clone();
        }
        let leases = Arc::clone(&self.leases);
        let name = project.to_owned();
        let read = actix_rt::task::spawn_blocking(move || {
            Ok::<_, coflux_core::store::StoreError>((leases.lease(&name)?, leases.nodes()?))
        })
        .await;
        let route = match read {
            Ok(Ok((lease, nodes))) => decide(self.node(), project, lease.as_ref(), &nodes),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the project's lease; serving here");
                Route::Local
            }
            Err(_) => Route::Local,
        };
        lock(&self.routes).insert(project.to_owned(), (route.clone(), Instant::now()));
        route
    }

    /// Forgets the routing decision for `project` (its node could not be reached).
    pub fn forget(&self, project: &str) {
        lock(&self.routes).remove(project);
    }

    /// The live nodes' URLs (told to agents as fallbacks); empty if they cannot be read.
    pub async fn live_nodes(&self) -> Vec<String> {
        let leases = Arc::clone(&self.leases);
        let read = actix_rt::task::spawn_blocking(move || leases.nodes()).await;
        let mut live: Vec<String> = match read {
            Ok(Ok(nodes)) => nodes.into_iter().filter(|n| n.live).map(|n| n.id).collect(),
            _ => Vec::new(),
        };
        if !live.iter().any(|n| n == self.node()) {
            live.insert(0, self.node().to_owned());
        }
        live
    }

    /// Every node and every lease.
    pub async fn overview(
        &self,
    ) -> Result<(Vec<NodeRow>, Vec<LeaseRow>), coflux_core::store::StoreError> {
        let leases = Arc::clone(&self.leases);
        actix_rt::task::spawn_blocking(move || Ok((leases.nodes()?, leases.leases()?)))
            .await
            .unwrap_or_else(|_| Err(coflux_core::store::StoreError::WriterStopped))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The routing rule (see [`Cluster::route`]).
fn decide(me: &str, project: &str, lease: Option<&LeaseRow>, nodes: &[NodeRow]) -> Route {
    if let Some(lease) = lease.filter(|l| !l.expired) {
        return if lease.node == me {
            Route::Local
        } else {
            Route::Remote(lease.node.clone())
        };
    }
    let mut live: Vec<String> = nodes
        .iter()
        .filter(|n| n.live)
        .map(|n| n.id.clone())
        .collect();
    if !live.iter().any(|n| n == me) {
        live.push(me.to_owned());
    }
    match preferred_node(&live, project) {
        Some(node) if node != me => Route::Remote(node.to_owned()),
        _ => Route::Local,
    }
}

/// Refuses local blobs when another node is alive over the same database (each node would
/// keep its own blobs, which the others could not read), and joining nodes that do.
fn check_blobs(nodes: &[NodeRow], me: &str, blobs: &str) -> anyhow::Result<()> {
    let others: Vec<&NodeRow> = nodes.iter().filter(|n| n.live && n.id != me).collect();
    if others.is_empty() {
        return Ok(());
    }
    if blobs == "local" {
        anyhow::bail!(
            "refusing local blobs: {} other node(s) share this database ({}); with several \
             nodes, blobs must be in a shared bucket (--blob-store s3 --s3-bucket …)",
            others.len(),
            others
                .iter()
                .map(|n| n.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(local) = others.iter().find(|n| n.blobs == "local") {
        anyhow::bail!(
            "refusing to join: node {} shares this database with local blobs; stop it or move \
             it to the shared bucket (--blob-store s3)",
            local.id
        );
    }
    Ok(())
}

#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod tests;
