//! Forwarding: an HTTP request for a project owned by another node is sent there and its
//! answer streamed back (server-sent events included). Bodies pass chunk by chunk both ways,
//! never buffered whole; the owner is given 3 s to accept the connection, then must keep
//! making progress (see [`answer_timeout`]), so a long transfer is never cut while it moves.
//! The forwarded request carries [`FORWARDED_HEADER`], so it is served where it lands, never forwarded again (nodes that
//! briefly disagree about an owner cannot bounce a request between them). A node that cannot
//! be reached is forgotten and the request is served here (taking the project if its lease
//! expired; if not, the answer is `503 project_owned_elsewhere`).

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use std::rc::Rc;

use actix_web::body::{BodyStream, SizedStream};

use super::Cluster;
use super::Route;
use super::relay_body::{Download, Meter, Upload, UploadStream};

/// Marks a request forwarded by another node (its value: that node).
pub const FORWARDED_HEADER: &str = "x-coflux-forwarded-by";

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
    req: ServiceRequest,
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
    match relay(req, &node, &cluster.client.node).await {
        Relayed::Answered(response) => Ok(response),
        // Not sent: served here (taking the project if its lease expired).
        Relayed::NotSent(req, error) => {
            tracing::warn!(%project, %node, %error, "cannot reach the project's node; serving here");
            cluster.forget(&project);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Relayed::NoAnswer(response, error) => {
            tracing::warn!(%project, %node, %error, "the project's node did not answer");
            cluster.forget(&project);
            Ok(response)
        }
    }
}

/// What became of a request sent to another node.
pub(crate) enum Relayed {
    /// The owner's answer, its body streaming through.
    Answered(ServiceResponse<BoxBody>),
    /// The owner could not be connected to; the request (its body untouched) can be served
    /// here.
    NotSent(ServiceRequest, awc::error::ConnectError),
    /// Sent (perhaps in part), but not answered: `502 node_unreachable`, and why.
    NoAnswer(ServiceResponse<BoxBody>, String),
}

/// Sends `req` to `node` (as node `me`), its body streaming out as the client sends it and the
/// answer's body streaming back as the owner sends it.
pub(crate) async fn relay(mut req: ServiceRequest, node: &str, me: &str) -> Relayed {
    let meter = req
        .app_data::<web::Data<Meter>>()
        .map(|m| m.clone().into_inner());
    let upload = Upload::new(req.take_payload(), meter.clone());
    let request = outgoing(&req, node, me);
    let length = body_length(&req);
    let sending = match length {
        Some(0) => request.send(),
        Some(n) => request.send_body(SizedStream::new(n, UploadStream(Rc::clone(&upload)))),
        None => request.send_body(BodyStream::new(UploadStream(Rc::clone(&upload)))),
    };
    let error = match upload.guard(sending, answer_timeout(&req)).await {
        Some(Ok(response)) => {
            let answer = answer(&req, node, response, meter);
            return Relayed::Answered(req.into_response(answer));
        }
        Some(Err(awc::error::SendRequestError::Connect(error))) => match upload.take_back() {
            Some(payload) => {
                req.set_payload(payload);
                return Relayed::NotSent(req, error);
            }
            None => error.to_string(),
        },
        Some(Err(error)) => error.to_string(),
        None => "no progress before the idle timeout".to_owned(),
    };
    // Sent, but no answer: the owner may have acted on it, so it is not served again here.
    let response = req.error_response(crate::error::ApiError::new(
        actix_web::http::StatusCode::BAD_GATEWAY,
        "node_unreachable",
        "the node serving this project did not answer; the request may or may not \
         have been done (retry with an idempotency key)",
    ));
    Relayed::NoAnswer(response, error)
}

/// The request's body length: `Some(n)` when declared (0 when an HTTP/1 request declares
/// none), `None` when chunked (or HTTP/2 without a length).
fn body_length(req: &ServiceRequest) -> Option<u64> {
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return None;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    match declared {
        Some(n) => Some(n),
        None if req.version() >= actix_web::http::Version::HTTP_2 => None,
        None => Some(0),
    }
}

/// How long the owner may go without progress: without asking for more of the request body
/// or, once it has all of it, without answering (long polls, `?wait=N`, their wait and more),
/// and without sending more of its answer (event streams an hour: they may be quiet that
/// long; the browser reconnects after). Anything else 30 s.
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

/// The request to `node`: the client's method, path, query and headers (hop-by-hop ones
/// left out), marked as forwarded by `me`.
fn outgoing(req: &ServiceRequest, node: &str, me: &str) -> awc::ClientRequest {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let url = format!("{node}{path}");
    let mut request = CLIENT
        .with(|c| c.request(req.method().clone(), url))
        .no_decompress();
    for (name, value) in req.headers().iter().filter(|(n, _)| passed(n)) {
        request = request.append_header((name.clone(), value.clone()));
    }
    request.insert_header((FORWARDED_HEADER, me))
}

/// The owner's answer, passed on: its status and headers, and its body as a stream (of the
/// same declared length, if it had one).
fn answer<S>(
    req: &ServiceRequest,
    node: &str,
    response: awc::ClientResponse<S>,
    meter: Option<std::sync::Arc<Meter>>,
) -> HttpResponse
where
    S: futures::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin + 'static,
{
    let status = response.status();
    let mut answer = HttpResponse::build(status);
    for (name, value) in response.headers().iter().filter(|(n, _)| passed(n)) {
        answer.append_header((name.clone(), value.clone()));
    }
    answer.insert_header((header::HeaderName::from_static("x-coflux-served-by"), node));
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = Download::new(response, answer_timeout(req), meter);
    let bodiless = req.method() == actix_web::http::Method::HEAD
        || status.is_informational()
        || status == actix_web::http::StatusCode::NO_CONTENT
        || status == actix_web::http::StatusCode::NOT_MODIFIED;
    match length {
        Some(n) if !bodiless => answer.body(SizedStream::new(n, body)),
        _ => answer.streaming(body),
    }
}
