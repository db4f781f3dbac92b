//! [`Client`]: a small JSON client for the server's HTTP API, over `awc`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use coflux_core::protocol::http::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::error::CliError;

/// The timeout of ordinary requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body accepted.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Talks to a server, or to the first reachable one of several nodes of a cluster (any node
/// serves any request). Must be used inside an actix system.
pub struct Client {
    /// The configured addresses, in order (at least one).
    servers: Vec<String>,
    /// The one that answered last (tried first).
    current: AtomicUsize,
    http: awc::Client,
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for the server at `servers` (e.g. `http://127.0.0.1:7777`), or for the nodes of
    /// a cluster separated by commas (`http://a:7777,http://b:7777`): a request goes to the node
    /// that answered last, and to the next one while a node cannot be reached.
    pub fn new(servers: &str) -> Self {
        let mut list: Vec<String> = servers
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        list.dedup();
        if list.is_empty() {
            list.push(servers.trim().to_owned());
        }
        Self {
            servers: list,
            current: AtomicUsize::new(0),
            http: crate::net::builder().disable_timeout().finish(),
        }
    }

    /// The URL of the server in use (the one that answered last).
    pub fn server(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()]
    }

    /// Sends the request `make` builds for a server URL: to the server in use, then to the
    /// next ones while a connection cannot be made (the request never reached that server,
    /// so another may take it, even a submission). Any other failure is final.
    async fn send<R, F, Fut>(&self, make: F) -> Result<R, CliError>
    where
        F: Fn(&str) -> Fut,
        Fut: std::future::Future<Output = Result<R, SendRequestError>>,
    {
        let first = self.current.load(Ordering::Relaxed);
        let mut unreachable = Vec::new();
        for offset in 0..self.servers.len() {
            let index = (first + offset) % self.servers.len();
            let server = &self.servers[index];
            match make(server).await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(SendRequestError::Connect(e)) => {
                    unreachable.push((server.clone(), e.to_string()));
                }
                Err(e) => return Err(send_error(server, e)),
            }
        }
        let servers: Vec<&str> = unreachable.iter().map(|(s, _)| s.as_str()).collect();
        Err(CliError::Connect {
            server: servers.join(", "),
            detail: unreachable
                .last()
                .map(|(_, d)| d.clone())
                .unwrap_or_default(),
        })
    }

    /// Turns a response into JSON, or into [`CliError::Api`] for an error status.
    async fn finish<S>(&self, mut response: awc::ClientResponse<S>) -> Result<Json, CliError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let status = response.status();
        let body = response
            .body()
            .limit(BODY_LIMIT)
            .await
            .map_err(|e| CliError::Protocol(format!("reading the response failed: {e}")))?;
        if status.is_success() {
            if body.is_empty() {
                return Ok(Json::Null);
            }
            return serde_json::from_slice(&body)
                .map_err(|e| CliError::Protocol(format!("invalid JSON: {e}")));
        }
        Err(api_error(status.as_u16(), &body))
    }

    /// `GET path` with the default timeout.
    pub async fn get(&self, path: &str) -> Result<Json, CliError> {
        self.get_with_timeout(path, REQUEST_TIMEOUT).await
    }

    /// `GET path`, waiting up to `timeout` for the answer.
    pub async fn get_with_timeout(&self, path: &str, timeout: Duration) -> Result<Json, CliError> {
        let response = self
            .send(|server| {
                self.http
                    .get(format!("{server}{path}"))
                    .insert_header(("Accept", "application/json"))
                    .timeout(timeout)
                    .send()
            })
            .await?;
        self.finish(response).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> Result<Json, CliError> {
        self.send_json(awc::http::Method::POST, path, body).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Json, CliError> {
        let response = self
            .send(|server| {
                self.http
                    .delete(format!("{server}{path}"))
                    .timeout(REQUEST_TIMEOUT)
                    .send()
            })
            .await?;
        self.finish(response).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &impl Serialize) -> Result<Json, CliError> {
        self.send_json(awc::http::Method::PATCH, path, body).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &impl Serialize) -> Result<Json, CliError> {
        self.send_json(awc::http::Method::PUT, path, body).await
    }

    /// `method path` with a JSON body and the default timeout.
    async fn send_json(
        &self,
        method: awc::http::Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Json, CliError> {
        let response = self
            .send(|server| {
                self.http
                    .request(method.clone(), format!("{server}{path}"))
                    .timeout(REQUEST_TIMEOUT)
                    .send_json(body)
            })
            .await?;
        self.finish(response).await
    }

    /// Opens a server-sent event stream at `path`; the body is read by the caller.
    pub async fn event_stream(
        &self,
        path: &str,
    ) -> Result<
        awc::ClientResponse<
            impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
        >,
        CliError,
    > {
        let response = self
            .send(|server| {
                self.http
                    .get(format!("{server}{path}"))
                    .insert_header(("Accept", "text/event-stream"))
                    .timeout(REQUEST_TIMEOUT)
                    .send()
            })
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        Err(match self.finish(response).await {
            Err(e) => e,
            Ok(_) => api_error(status, b""),
        })
    }
}

/// The error of a request to `server` that failed.
fn send_error(server: &str, err: SendRequestError) -> CliError {
    let server = server.to_owned();
    match err {
        SendRequestError::Connect(ConnectError::Timeout) | SendRequestError::Timeout => {
            CliError::Timeout { server }
        }
        SendRequestError::Connect(e) => CliError::Connect {
            server,
            detail: e.to_string(),
        },
        SendRequestError::Url(e) => CliError::Usage(format!("invalid server URL '{server}': {e}")),
        other => CliError::Connect {
            server,
            detail: other.to_string(),
        },
    }
}

/// Decodes an [`ErrorBody`], falling back on the status.
fn api_error(status: u16, body: &[u8]) -> CliError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => CliError::Api {
            status,
            code: error.code,
            message: error.message,
        },
        Err(_) => CliError::Api {
            status,
            code: format!("http_{status}"),
            message: format!("the server answered HTTP {status}"),
        },
    }
}

/// Decodes a JSON answer into a typed view.
pub fn typed<T: DeserializeOwned>(json: &Json) -> Result<T, CliError> {
    T::deserialize(json).map_err(|e| CliError::Protocol(e.to_string()))
}
