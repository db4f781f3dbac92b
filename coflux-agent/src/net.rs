//! HTTP and WebSocket clients with `TCP_NODELAY`: without it, a request written in two parts
//! waits for the peer's delayed acknowledgement (about 40 ms on Linux) on every round trip.
//! `https://` (and `wss://`) use rustls with the system's certificate authorities
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` point at others, e.g. a private CA of a TLS proxy).

use std::sync::{Arc, OnceLock};
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

/// The TLS settings of every client: the system's (or `SSL_CERT_FILE`'s) authorities, and
/// HTTP/1.1 only (the agent's WebSocket needs it).
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "a certificate authority could not be loaded");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                ignored,
                "no certificate authority found: https:// servers cannot be verified"
            );
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default protocol versions are supported")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }))
}

/// A client builder with `TCP_NODELAY`, TLS for `https://` and the process's token (if any).
pub fn builder() -> awc::ClientBuilder<NoDelayConnector> {
    let connector = awc::Connector::new()
        .connector(NoDelayConnector::default())
        .rustls_0_23(tls_config());
    let builder = awc::Client::builder().connector(connector);
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
