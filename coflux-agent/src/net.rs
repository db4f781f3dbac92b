//! HTTP and WebSocket clients with `TCP_NODELAY`: without it, a request written in two parts
//! waits for the peer's delayed acknowledgement (about 40 ms on Linux) on every round trip.

use std::sync::OnceLock;
use std::time::Duration;

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use futures::future::LocalBoxFuture;

/// A connector that sets `TCP_NODELAY` on every connection it opens.
#[derive(Clone, Default)]
pub struct NoDelayConnector(ConnectorService);

impl Service<ConnectInfo<Uri>> for NoDelayConnector {
    type Response = Connection<Uri, actix_rt::net::TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.0.call(request);
        Box::pin(async move {
            let connection = connecting.await?;
            let _ = connection.io_ref().set_nodelay(true);
            Ok(connection)
        })
    }
}

/// The token every client of this process presents (see [`set_token`]).
static TOKEN: OnceLock<String> = OnceLock::new();

/// Sets the bearer token that every client made afterwards presents to the server (`--token`,
/// `COFLUX_TOKEN`). Only the first call counts.
pub fn set_token(token: Option<String>) {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        let _ = TOKEN.set(token);
    }
}

/// A client builder with `TCP_NODELAY` and the process's token (if any).
pub fn builder() -> awc::ClientBuilder<NoDelayConnector> {
    let builder = awc::Client::builder()
        .connector(awc::Connector::new().connector(NoDelayConnector::default()));
    match TOKEN.get() {
        Some(token) => builder
            .add_default_header((awc::http::header::AUTHORIZATION, format!("Bearer {token}"))),
        None => builder,
    }
}

/// An HTTP/WebSocket client with `TCP_NODELAY`, the process's token and the given request
/// timeout.
pub fn client(timeout: Duration) -> awc::Client {
    builder().timeout(timeout).finish()
}
