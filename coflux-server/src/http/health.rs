//! `GET /api/health` → `{"status":"ok","version":"<server version>"}`.

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use coflux_core::protocol::http::Health;

use super::resource;

/// Registers the health route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health", Access::PUBLIC).route(web::get().to(health)));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
