//! Coflux-rs server: an HTTP JSON API, a WebSocket endpoint for agents and a web UI, over the
//! embeddable orchestrator in `coflux-core`.
//!
//! [`create_app`] builds the whole application; `main` and the integration tests both use it.

pub mod agents;
pub mod asset_record;
pub mod asset_store;
pub mod auth;
pub mod blobs;
pub mod cluster;
pub mod config;
pub mod error;
pub mod gc;
pub mod http;
pub mod logs;
pub mod run_retention;
pub mod state;
pub mod ui;

use actix_web::{App, HttpServer, web};

pub use config::ServerConfig;
pub use state::AppState;

/// Registers every route of the server on an actix-web service config.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Logs and the agent endpoint first: the API scope answers 404 for anything it does not
    // know under /api.
    logs::configure(cfg);
    agents::configure(cfg);
    http::configure(cfg);
    // The web UI last: its routes are outside /api and /agent.
    ui::configure(cfg);
}

/// Builds the application over shared state (used by `main` and by the tests).
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let logs = web::Data::from(std::sync::Arc::clone(&state.logs));
    let auth = web::Data::from(std::sync::Arc::clone(&state.auth));
    let cluster = web::Data::new(state.cluster.clone());
    App::new()
        .app_data(state)
        .app_data(cluster)
        .app_data(logs)
        .app_data(auth)
        .app_data(web::JsonConfig::default().error_handler(error::json_error_handler))
        .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
        .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
        .wrap(actix_web::middleware::from_fn(auth::audit))
        // Outside the audit: a forwarded request is checked by the node that serves it.
        .wrap(actix_web::middleware::from_fn(cluster::forward::forward))
        .wrap(actix_web::middleware::Logger::new("%r %s %Dms").log_target("coflux_server::http"))
        .configure(configure)
}

/// Opens the data directory, starts the orchestrator (before accepting connections), then
/// serves HTTP until a shutdown signal. Returns once the server has stopped.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let state = web::Data::new(AppState::open(&config).await?);
    let address = (config.host.clone(), config.port);
    let server = {
        let state = state.clone();
        HttpServer::new(move || create_app(state.clone()))
            .workers(config.http_workers)
            .tcp_nodelay(true)
            .shutdown_timeout(10)
            .bind(address)?
    };
    for addr in server.addrs() {
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "coflux-server listening");
        println!("coflux-server listening on http://{addr}");
    }
    server.run().await?;
    tracing::info!("coflux-server stopped");
    Ok(())
}
