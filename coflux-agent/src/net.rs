//! HTTP and WebSocket clients with `TCP_NODELAY`: without it, a request written in two parts
//! waits for the peer's delayed acknowledgement (about 40 ms on Linux) on every round trip.

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

/// An HTTP/WebSocket client with `TCP_NODELAY` and the given request timeout.
pub fn client(timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().connector(NoDelayConnector::default()))
        .timeout(timeout)
        .finish()
}
