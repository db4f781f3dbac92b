//! `GET /api/cluster` → [`ClusterView`]: the nodes over this database, whether each is alive,
//! and the projects each owns (the server's admin only: it names every project). Without
//! `--database-url` (one node, no leases) it answers 404 `not_clustered`.

use actix_web::{HttpResponse, web};
use coflux_core::protocol::http::{ClusterNode, ClusterView};

use super::resource;
use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/cluster", Access::CLUSTER).route(web::get().to(overview)));
}

async fn overview(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::not_found(
            "not_clustered",
            "this server is a single node (no --database-url)",
        ));
    };
    let (nodes, leases) = cluster.overview().await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read the cluster tables");
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the cluster's database cannot be read; try again",
        )
    })?;
    let nodes = nodes
        .into_iter()
        .map(|n| ClusterNode {
            projects: leases
                .iter()
                .filter(|l| l.node == n.id && !l.expired)
                .map(|l| l.project.clone())
                .collect(),
            id: n.id,
            live: n.live,
            blobs: n.blobs,
            heartbeat_at: n.heartbeat_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ClusterView {
        node: cluster.node().to_owned(),
        nodes,
    }))
}
