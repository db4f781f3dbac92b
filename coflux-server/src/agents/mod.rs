//! The agent WebSocket endpoint (`GET /agent`) and agent sessions.

mod connection;
mod sessions;

pub use sessions::{Ownership, Session, SessionSummary, Sessions};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// Registers the agent endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/agent", web::get().to(agent_socket));
}

async fn agent_socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    actix_rt::spawn(connection::serve(state, session, stream));
    Ok(response)
}
