//! The agent WebSocket endpoint (`GET /agent`) and agent sessions.

mod connection;
mod hello;
mod inputs;
mod requests;
mod session_token;
pub(crate) mod sessions;
mod wire;

pub use sessions::{AgentProfile, Ownership, Session, SessionSummary, Sessions};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Access;
use crate::state::AppState;

/// Registers the agent endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/agent")
            .route(web::get().to(agent_socket))
            .wrap(actix_web::middleware::from_fn(crate::auth::require(
                Access::AGENT,
            ))),
    );
}

async fn agent_socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // The token's project and environments are checked against the agent's hello.
    let grant = crate::auth::grant_of(&req);
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    actix_rt::spawn(connection::serve(state, grant, session, stream));
    Ok(response)
}
