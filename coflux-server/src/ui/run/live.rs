//! `GET /projects/{p}/runs/{r}/events?…` (the run page's query): server-sent events that keep
//! a run page current with one connection per tab. The handler polls the project's commit
//! counter every [`POLL`], re-reads the run only when it moved (and, on the logs tab, every
//! [`LOGS_EVERY`] while the run is active), re-renders the main fragment and sends it as an
//! `event: fragment` whose id is the fragment's hash, only when that hash changed. Renderings
//! are spaced by [`gap`] (twice the last rendering's time, within [`MIN_GAP`]..[`MAX_GAP`]):
//! a small run's change reaches the page within a poll and a rendering, while a big run's
//! stream spends at most a third of its time rendering. The page passes the version it was
//! rendered at as `?version=`; a reconnect sends `Last-Event-ID`.
//! Once the run has finished (after a short grace for late logs) it sends `event: done` and
//! ends the stream.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::SinkExt;
use maud::Markup;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{RunQuery, load, render_main, selection};
use crate::logs::KEEP_ALIVE;
use crate::state::AppState;
use crate::ui::page::run_active;
use crate::ui::{Page, secure};

/// How often the commit counter is checked (an atomic read: cheap).
pub const POLL: Duration = Duration::from_millis(20);
/// How often the logs tab is re-read while the run is active.
pub const LOGS_EVERY: Duration = Duration::from_millis(500);
/// The shortest time between two renderings.
pub const MIN_GAP: Duration = Duration::from_millis(40);
/// The longest time between two renderings of a changing run.
pub const MAX_GAP: Duration = Duration::from_secs(1);

/// The time to wait after a rendering that took `took` before the next one.
pub fn gap(took: Duration) -> Duration {
    (took * 2).clamp(MIN_GAP, MAX_GAP)
}
/// How long the stream stays after the run finished (late logs and results).
pub const GRACE: Duration = Duration::from_secs(2);

/// The version of a rendered fragment: 16 hex digits of its hash.
pub(crate) fn version(markup: &Markup) -> String {
    hex::encode(&Sha256::digest(markup.0.as_bytes())[..8])
}

/// One server-sent event.
pub(crate) fn event(name: &str, id: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// `GET /projects/{project}/runs/{run}/events`.
pub(crate) async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<RunQuery>,
) -> Page {
    let (name, run) = path.into_inner();
    let q = q.into_inner();
    // An unknown run answers the 404 page, before any stream starts.
    let (project, view, _) = load(&state, &name, &run, &q).await?;
    // So does an unknown step or attempt.
    selection(&view, &q)?;
    let mut last = resumed_version(&req, q.version.as_deref());
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(4);
    actix_rt::spawn(async move {
        // Logs and metrics live in the log database: re-read them on a clock.
        let logs_tab = matches!(q.tab.as_deref(), Some("logs" | "metrics"));
        let run_id = match run.parse() {
            Ok(id) => id,
            Err(_) => return,
        };
        let environment = q.environment.clone().filter(|e| !e.is_empty());
        let mut seen_commits = None;
        let mut last_render = Instant::now();
        let mut last_sent = Instant::now();
        let mut was_active = false;
        let mut finished_at: Option<Instant> = None;
        let mut spacing = Duration::ZERO;
        loop {
            let commits = project.writer_stats().commits;
            let logs_due = logs_tab && finished_at.is_none() && last_render.elapsed() >= LOGS_EVERY;
            let final_due = finished_at.is_some_and(|f| f.elapsed() >= GRACE);
            let changed = seen_commits != Some(commits) && last_render.elapsed() >= spacing;
            if changed || logs_due || final_due {
                seen_commits = Some(commits);
                let started = Instant::now();
                let Ok(view) = super::view_from(&project, run_id, environment.as_deref()).await
                else {
                    break;
                };
                let Ok(environments) = project.environments().await else {
                    break;
                };
                let active = run_active(&view);
                let rendered = render_main(&state, &name, &view, &environments, &q).await;
                last_render = Instant::now();
                spacing = gap(last_render - started);
                if let Ok(main) = rendered {
                    let v = version(&main);
                    if v != last {
                        let frame = event("fragment", Some(&v), &crate::ui::sendable(main));
                        if tx.send(Ok(frame)).await.is_err() {
                            break;
                        }
                        last = v;
                        last_sent = Instant::now();
                    }
                }
                if final_due || (!active && !was_active && finished_at.is_none()) {
                    let _ = tx.send(Ok(event("done", None, ""))).await;
                    break;
                }
                if active {
                    was_active = true;
                    finished_at = None;
                } else if finished_at.is_none() {
                    finished_at = Some(Instant::now());
                }
            }
            if last_sent.elapsed() >= KEEP_ALIVE {
                if tx
                    .send(Ok(Bytes::from_static(b": keep-alive\n\n")))
                    .await
                    .is_err()
                {
                    break;
                }
                last_sent = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    });
    Ok(stream_response(rx))
}

/// The version a client already has: `Last-Event-ID` when reconnecting, else `?version=`.
pub(crate) fn resumed_version(req: &HttpRequest, version: Option<&str>) -> String {
    req.headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(version)
        .unwrap_or_default()
        .to_owned()
}

/// The response carrying a stream of events.
pub(crate) fn stream_response(
    rx: futures::channel::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> HttpResponse {
    let mut response = HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(rx);
    secure(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_live_renderings_are_spaced_by_twice_their_time_within_bounds() {
        assert_eq!(gap(Duration::from_millis(1)), MIN_GAP);
        assert_eq!(gap(Duration::from_millis(50)), Duration::from_millis(100));
        assert_eq!(gap(Duration::from_secs(3)), MAX_GAP);
    }

    #[test]
    fn ui_events_prefix_every_data_line() {
        let bytes = event("fragment", Some("ab"), "<p>\na</p>");
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "id: ab\nevent: fragment\ndata: <p>\ndata: a</p>\n\n"
        );
    }
}
