//! `GET /api/health` → `{"status":"ok","version":"<server version>"}`.

use crate::auth::Access;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::resource;

/// Registers the health route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health", Access::PUBLIC).route(web::get().to(health)));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}
