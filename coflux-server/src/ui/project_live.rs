//! `GET /projects/{p}/events?…` (the project page's query): server-sent events keeping the
//! project page's sidebar (targets' running counts, agents) and runs table current, with one
//! connection per tab. Every [`POLL`] the handler checks the project's commit counter and its
//! agents; when either moved (at most every [`GAP`]), or every [`REFRESH`] for durations, it
//! re-reads the page's data and sends `event: fragment` holding `#project-sidebar` and
//! `#project-runs`, only when their hash changed. The stream does not end by itself.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::{HttpRequest, web};
use bytes::Bytes;
use futures::SinkExt;
use maud::html;
use tokio::time::Instant;

use super::Page;
use super::projects::{ProjectQuery, load, runs_table, sidebar};
use super::run::live::{event, resumed_version, stream_response, version};
use crate::http::existing_project;
use crate::logs::KEEP_ALIVE;
use crate::state::AppState;

/// How often the commit counter and the agents are checked.
pub const POLL: Duration = Duration::from_millis(50);
/// The shortest time between two renderings.
pub const GAP: Duration = Duration::from_millis(150);
/// Re-rendered at least this often (running durations move).
pub const REFRESH: Duration = Duration::from_secs(5);

/// `GET /projects/{project}/events`.
pub(crate) async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<ProjectQuery>,
) -> Page {
    let name = path.into_inner();
    let q = q.into_inner();
    // An unknown project or environment answers the 404 page before any stream starts.
    load(&state, &name, &q).await?;
    let project = existing_project(&state, &name).await?;
    let mut last = resumed_version(&req, q.version.as_deref());
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(4);
    actix_rt::spawn(async move {
        let mut seen = None;
        let mut last_render = Instant::now();
        let mut last_sent = Instant::now();
        loop {
            let commits = project.writer_stats().commits;
            let agents = format!("{:?}", state.sessions.summaries(&name));
            let moved = seen.as_ref() != Some(&(commits, agents.clone()));
            let due = last_render.elapsed() >= REFRESH;
            if (moved && last_render.elapsed() >= GAP) || due {
                seen = Some((commits, agents));
                last_render = Instant::now();
                let Ok(data) = load(&state, &name, &q).await else {
                    break;
                };
                let markup = html! { (sidebar(&name, &data)) (runs_table(&name, &data)) };
                let v = version(&markup);
                if v != last {
                    if tx
                        .send(Ok(event("fragment", Some(&v), &super::sendable(markup))))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    last = v;
                    last_sent = Instant::now();
                }
            }
            if last_sent.elapsed() >= KEEP_ALIVE {
                let ping = Bytes::from_static(b": keep-alive\n\n");
                if tx.send(Ok(ping)).await.is_err() {
                    break;
                }
                last_sent = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    });
    Ok(stream_response(rx))
}
