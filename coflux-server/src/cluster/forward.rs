//! Forwarding: an HTTP request for a project owned by another node is sent there and its
//! answer streamed back (server-sent events included). The forwarded request carries
//! [`FORWARDED_HEADER`], so it is served where it lands, never forwarded again (nodes that
//! briefly disagree about an owner cannot bounce a request between them). A node that cannot
//! be reached is forgotten and the request is served here (taking the project if its lease
//! expired; if not, the answer is `503 project_owned_elsewhere`).

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use futures::StreamExt;

use super::Cluster;
use super::Route;

/// Marks a request forwarded by another node (its value: that node).
pub const FORWARDED_HEADER: &str = "x-coflux-forwarded-by";

/// The largest body forwarded (blob uploads are the largest requests).
const MAX_BODY: usize = 1 << 30;

/// How long connecting to another node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What forwarding needs: this node's id, for the header.
pub struct Forwarder {
    node: String,
}

impl Forwarder {
    /// A forwarder for node `node`.
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
        }
    }
}

thread_local! {
    /// One client per thread (awc clients are not `Send`); it keeps connections to the other
    /// nodes open.
    static CLIENT: awc::Client = awc::Client::builder()
        .disable_timeout()
        .connector(awc::Connector::new().timeout(CONNECT_TIMEOUT))
        .finish();
}

/// The project a path names: `/api/projects/{project}/…` or the web UI's
/// `/projects/{project}…`.
pub fn project_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/projects/")
        .or_else(|| path.strip_prefix("/projects/"))?;
    let project = rest.split('/').next()?;
    (!project.is_empty()).then_some(project)
}

/// App-wide middleware: forwards requests for projects owned elsewhere.
pub async fn forward(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // The app's data holds the node's cluster, if it has one (see `create_app`).
    let cluster = req
        .app_data::<web::Data<Option<std::sync::Arc<Cluster>>>>()
        .and_then(|c| c.as_ref().as_ref().map(std::sync::Arc::clone));
    let target = match (&cluster, project_of(req.path())) {
        (Some(cluster), Some(project)) if !req.headers().contains_key(FORWARDED_HEADER) => {
            match cluster.route(project).await {
                Route::Remote(node) => Some((project.to_owned(), node)),
                Route::Local => None,
            }
        }
        _ => None,
    };
    let (Some(cluster), Some((project, node))) = (cluster, target) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let mut payload = req.take_payload();
    let mut buffer = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk: web::Bytes = chunk?;
        buffer.extend_from_slice(&chunk);
        if buffer.len() > MAX_BODY {
            return Err(actix_web::error::ErrorPayloadTooLarge(
                "request body too large",
            ));
        }
    }
    let body = buffer.freeze();
    match send(&req, &node, &cluster.client.node, body.clone()).await {
        Ok(response) => Ok(req.into_response(response)),
        // Not sent: served here (taking the project if its lease expired).
        Err(awc::error::SendRequestError::Connect(error)) => {
            tracing::warn!(%project, %node, %error, "cannot reach the project's node; serving here");
            cluster.forget(&project);
            req.set_payload(actix_web::dev::Payload::from(body));
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        // Sent, but no answer: the owner may have acted on it, so it is not served again here.
        Err(error) => {
            tracing::warn!(%project, %node, %error, "the project's node did not answer");
            cluster.forget(&project);
            let error = crate::error::ApiError::new(
                actix_web::http::StatusCode::BAD_GATEWAY,
                "node_unreachable",
                "the node serving this project did not answer; the request may or may not \
                 have been done (retry with an idempotency key)",
            );
            Ok(req.error_response(error))
        }
    }
}

/// How long the owner may take to answer: long polls (`?wait=N`) their wait and more, event
/// streams an hour (the browser reconnects after), anything else 30 s.
fn answer_timeout(req: &ServiceRequest) -> Duration {
    let streaming = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if streaming {
        return Duration::from_secs(3600);
    }
    let wait = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("wait="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(30 + wait.min(3600))
}

/// Headers not passed on (hop-by-hop, or set by the client again).
fn passed(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}

/// Sends the request to `node` and streams its answer back.
async fn send(
    req: &ServiceRequest,
    node: &str,
    me: &str,
    body: web::Bytes,
) -> Result<HttpResponse, awc::error::SendRequestError> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let url = format!("{node}{path}");
    let mut request = CLIENT
        .with(|c| c.request(req.method().clone(), url))
        .timeout(answer_timeout(req))
        .no_decompress();
    for (name, value) in req.headers().iter().filter(|(n, _)| passed(n)) {
        request = request.append_header((name.clone(), value.clone()));
    }
    request = request.insert_header((FORWARDED_HEADER, me));
    let response = request.send_body(body).await?;
    let mut answer = HttpResponse::build(response.status());
    for (name, value) in response.headers().iter().filter(|(n, _)| passed(n)) {
        answer.append_header((name.clone(), value.clone()));
    }
    answer.insert_header((header::HeaderName::from_static("x-coflux-served-by"), node));
    Ok(answer.streaming(response.map(|chunk| chunk.map_err(std::io::Error::other))))
}
