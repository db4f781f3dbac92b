//! The log routes: a JSON page of a run's logs, and a server-sent-events stream that follows
//! them. Handlers extract `web::Data<LogStore>`.

use crate::auth::Access;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::Bytes;
use coflux_core::model::{ExecutionId, RunId, StepId};
use coflux_core::protocol::http::{ErrorBody, LogPage};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::time::{Instant, Interval};

use super::record::{LogError, LogFilter, StoredLog};
use super::store::{LogStore, MAX_PAGE};

/// How often an idle stream sends a comment, so proxies and clients keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The page size when the query gives no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// Registers `GET /api/projects/{project}/runs/{run}/logs` and `.../logs/stream`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let scoped = || actix_web::middleware::from_fn(crate::auth::require(Access::PROJECT));
    cfg.service(
        web::resource("/api/projects/{project}/runs/{run}/logs")
            .route(web::get().to(list_logs))
            .wrap(scoped()),
    )
    .service(
        web::resource("/api/projects/{project}/runs/{run}/logs/stream")
            .route(web::get().to(stream_logs))
            .wrap(scoped()),
    );
}

impl ResponseError for LogError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Overloaded { .. } | Self::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            e if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(error_body(self))
    }
}

fn error_body(error: &LogError) -> ErrorBody {
    // Storage failures may carry paths or SQL: log them, answer generically.
    let message = if error.is_client_error() {
        error.to_string()
    } else {
        tracing::error!(code = error.code(), %error, "log request failed");
        "the log store could not complete the request".to_string()
    };
    ErrorBody::new(error.code(), message)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    after: Option<u64>,
    limit: Option<usize>,
    execution: Option<String>,
    step: Option<String>,
}

/// What a request asks for, parsed and checked.
struct Request {
    project: String,
    run: RunId,
    filter: Option<LogFilter>,
    after: Option<u64>,
    limit: usize,
}

fn parse_request(req: &HttpRequest) -> Result<Request, LogError> {
    let project = req
        .match_info()
        .get("project")
        .unwrap_or_default()
        .to_owned();
    let run_text = req.match_info().get("run").unwrap_or_default();
    let run: RunId = run_text
        .parse()
        .map_err(|e: coflux_core::model::IdParseError| LogError::InvalidQuery(e.to_string()))?;
    let query = web::Query::<LogsQuery>::from_query(req.query_string())
        .map_err(|e| LogError::InvalidQuery(format!("invalid query string: {e}")))?
        .into_inner();
    let filter = match (&query.execution, &query.step) {
        (Some(_), Some(_)) => {
            return Err(LogError::InvalidQuery(
                "give either 'execution' or 'step', not both".into(),
            ));
        }
        (Some(execution), None) => Some(LogFilter::Execution(
            execution
                .parse::<ExecutionId>()
                .map_err(|e| LogError::InvalidQuery(e.to_string()))?,
        )),
        (None, Some(step)) => Some(LogFilter::Step(
            step.parse::<StepId>()
                .map_err(|e| LogError::InvalidQuery(e.to_string()))?,
        )),
        (None, None) => None,
    };
    if let Some(filter) = filter
        && filter.run() != run
    {
        return Err(LogError::FilterOutsideRun {
            filter: query.execution.or(query.step).unwrap_or_default(),
            run,
        });
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_PAGE {
        return Err(LogError::InvalidQuery(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(Request {
        project,
        run,
        filter,
        after: query.after,
        limit,
    })
}

/// How long a page request waits for the records queued before it to be committed.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// `GET /api/projects/{project}/runs/{run}/logs?after=&limit=&execution=|step=`:
/// `{"logs": [...], "cursor": <last cursor, or the one given>}`. Records that agents sent
/// before the request are committed first (up to [`FLUSH_WAIT`]): an agent sends an
/// execution's logs before its result, so once a result is seen its logs are complete.
async fn list_logs(store: web::Data<LogStore>, req: HttpRequest) -> Result<HttpResponse, LogError> {
    let request = parse_request(&req)?;
    if tokio::time::timeout(FLUSH_WAIT, store.flush())
        .await
        .is_err()
    {
        tracing::debug!(project = %request.project, run = %request.run, "log flush still pending; answering with what is committed");
    }
    let page = store
        .query(
            &request.project,
            request.run,
            request.filter,
            request.after,
            request.limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(LogPage {
        logs: page.logs.iter().map(StoredLog::to_entry).collect(),
        cursor: page.cursor,
    }))
}

/// `GET /api/projects/{project}/runs/{run}/logs/stream?after=&execution=|step=`: server-sent
/// events, one `data:` event (with `id:` the cursor) per log: first those after the cursor
/// (`after`, or the `Last-Event-ID` header), then live ones as they are committed.
async fn stream_logs(
    store: web::Data<LogStore>,
    req: HttpRequest,
) -> Result<HttpResponse, LogError> {
    let mut request = parse_request(&req)?;
    if request.after.is_none()
        && let Some(last) = req.headers().get("Last-Event-ID")
    {
        let text = last.to_str().unwrap_or_default();
        request.after = Some(text.trim().parse().map_err(|_| {
            LogError::InvalidQuery(format!("invalid Last-Event-ID '{}'", text.trim()))
        })?);
    }
    tracing::debug!(project = %request.project, run = %request.run, after = ?request.after, "log stream opened");
    let follow = Follow::start(store.into_inner(), request, KEEP_ALIVE)?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(follow.into_stream()))
}

/// A follower of a run's logs: reads the backlog from the database, then forwards live records,
/// re-reading from the database whenever it falls behind the live channel.
struct Follow {
    store: Arc<LogStore>,
    project: String,
    run: RunId,
    filter: Option<LogFilter>,
    /// The last cursor sent (or the one to start after).
    last: Option<u64>,
    live: broadcast::Receiver<Arc<StoredLog>>,
    /// Read from the database before waiting for live records.
    catching_up: bool,
    pending: VecDeque<StoredLog>,
    keep_alive: Interval,
    finished: bool,
}

impl Follow {
    /// Subscribes first, so nothing committed after the backlog read is missed.
    fn start(
        store: Arc<LogStore>,
        request: Request,
        keep_alive: Duration,
    ) -> Result<Self, LogError> {
        let live = store.subscribe(&request.project, request.run)?;
        Ok(Self {
            store,
            project: request.project,
            run: request.run,
            filter: request.filter,
            last: request.after,
            live,
            catching_up: true,
            pending: VecDeque::new(),
            keep_alive: tokio::time::interval_at(Instant::now() + keep_alive, keep_alive),
            finished: false,
        })
    }

    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
        futures::stream::unfold(self, |mut follow| async move {
            let event = follow.next_event().await?;
            Some((Ok(event), follow))
        })
    }

    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(log) = self.pending.pop_front() {
                self.last = Some(log.cursor);
                return Some(data_event(&log));
            }
            if self.catching_up {
                match self
                    .store
                    .query(&self.project, self.run, self.filter, self.last, MAX_PAGE)
                    .await
                {
                    Ok(page) => {
                        self.catching_up = page.logs.len() == MAX_PAGE;
                        self.pending.extend(page.logs);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(project = %self.project, run = %self.run, %error, "log stream failed");
                        self.finished = true;
                        return Some(error_event(&error));
                    }
                }
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(log) => {
                        let seen = self.last.is_some_and(|last| log.cursor <= last);
                        let wanted = self.filter.is_none_or(|f| f.matches(log.execution));
                        if !seen && wanted {
                            self.pending.push_back(StoredLog::clone(&log));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(project = %self.project, run = %self.run, missed, "log follower lagged; re-reading");
                        self.catching_up = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }
}

fn data_event(log: &StoredLog) -> Bytes {
    let data = serde_json::to_string(&log.to_entry()).unwrap_or_default();
    Bytes::from(format!("id: {}\ndata: {data}\n\n", log.cursor))
}

fn error_event(error: &LogError) -> Bytes {
    let data = serde_json::to_string(&error_body(error)).unwrap_or_default();
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogRecord;
    use futures::StreamExt;

    #[actix_web::test]
    async fn an_idle_stream_sends_keep_alive_comments() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        let request = Request {
            project: "p".into(),
            run: RunId(1),
            filter: None,
            after: None,
            limit: MAX_PAGE,
        };
        let follow = Follow::start(Arc::clone(&store), request, Duration::from_millis(50)).unwrap();
        let mut stream = Box::pin(follow.into_stream());
        let first = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&first[..], b": keep-alive\n\n");
        store
            .append(
                "p",
                vec![LogRecord {
                    execution: "R1:1:1".parse().unwrap(),
                    timestamp_ms: 5,
                    level: 2,
                    template: Some("hi".into()),
                    values: Default::default(),
                }],
            )
            .unwrap();
        // Skip keep-alives until the record arrives.
        loop {
            let event = tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let text = String::from_utf8(event.to_vec()).unwrap();
            if text.starts_with(':') {
                continue;
            }
            assert!(text.starts_with("id: 1\ndata: {"), "{text}");
            assert!(text.contains("\"template\":\"hi\""), "{text}");
            break;
        }
    }
}
