//! `coflux logs RUN [--follow]`.
//!
//! Pages through `GET /api/projects/{p}/runs/{run}/logs?after=CURSOR` (answers
//! `{"logs":[{"execution_id","level","template","values","timestamp"}],"cursor"}`); with
//! `--follow`, reads the server-sent events of `…/logs/stream` (each event's data is one log
//! entry or `{"logs":[…]}`), falling back on polling when the server has no stream endpoint.
//! Following stops at the end of the stream, at an `end` event, or shortly after the run has
//! finished (checked every [`FINISH_CHECK`]).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value as Json, json};

use super::args::LogsArgs;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, output, runs};
use coflux_core::protocol::http::{LogEntry, LogPage};

/// How often `--follow` checks whether the run has finished.
pub const FINISH_CHECK: Duration = Duration::from_secs(2);
/// How long `--follow` keeps reading after the run has finished, for the last messages.
const DRAIN: Duration = Duration::from_secs(1);

/// Runs `logs`.
pub async fn run(ctx: &Context, args: LogsArgs) -> Result<Exit, CliError> {
    let base = format!("{}/runs/{}/logs", ctx.project_path()?, segment(&args.run));
    if !args.follow {
        let (entries, cursor) = fetch_all(ctx, &base, None).await?;
        if ctx.json() {
            ctx.print_json(&json!({ "logs": entries, "cursor": cursor }))?;
        } else {
            for entry in &entries {
                print_entry(ctx, entry)?;
            }
        }
        return Ok(Exit::Success);
    }
    match ctx.client.event_stream(&format!("{base}/stream")).await {
        Ok(response) => follow_stream(ctx, response, &args.run).await,
        Err(CliError::Api {
            status: 404, code, ..
        }) if code == "not_found" => follow_polling(ctx, &base, &args.run).await,
        Err(e) => Err(e),
    }
}

fn cursor_param(cursor: &Json) -> String {
    match cursor {
        Json::String(s) => segment(s),
        other => segment(&other.to_string()),
    }
}

/// Fetches pages from `cursor` until no more messages come.
async fn fetch_all(
    ctx: &Context,
    base: &str,
    mut cursor: Option<Json>,
) -> Result<(Vec<Json>, Option<Json>), CliError> {
    let mut entries = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) if !c.is_null() => format!("{base}?after={}", cursor_param(c)),
            _ => base.to_owned(),
        };
        let answer = ctx.client.get(&path).await?;
        let page: LogPage = typed(&answer)?;
        let logs = answer
            .get("logs")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let next = page.cursor.map(Json::from);
        let advanced = next.is_some() && next != cursor;
        if next.is_some() {
            cursor = next;
        }
        if logs.is_empty() || !advanced {
            entries.extend(logs);
            return Ok((entries, cursor));
        }
        entries.extend(logs);
    }
}

fn print_entry(ctx: &Context, entry: &Json) -> Result<(), CliError> {
    if ctx.json() {
        return ctx.print(&entry.to_string());
    }
    let entry: LogEntry = typed(entry)?;
    ctx.print(&output::log_line(&entry))
}

fn print_event_data(ctx: &Context, data: &str) -> Result<(), CliError> {
    let Ok(json) = serde_json::from_str::<Json>(data) else {
        return Ok(());
    };
    if let Some(logs) = json.get("logs").and_then(Json::as_array) {
        for entry in logs {
            print_entry(ctx, entry)?;
        }
    } else if json.get("template").is_some() {
        print_entry(ctx, &json)?;
    }
    Ok(())
}

/// Server-sent events, parsed line by line.
#[derive(Default)]
struct EventParser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

/// One complete event.
struct Event {
    name: String,
    data: String,
}

impl EventParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    events.push(Event {
                        name: self.event.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

async fn run_finished(ctx: &Context, run: &str) -> Result<bool, CliError> {
    let result = runs::fetch_result(ctx, run, 0).await?;
    Ok(result.get("status").is_some_and(|s| s != "pending"))
}

async fn follow_stream<S>(
    ctx: &Context,
    mut response: awc::ClientResponse<S>,
    run: &str,
) -> Result<Exit, CliError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut parser = EventParser::default();
    let mut check = tokio::time::interval(FINISH_CHECK);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            Some(at) => match tokio::time::timeout_at(at, response.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(Exit::Success),
            },
            None => tokio::select! {
                next = response.next() => next,
                _ = check.tick() => {
                    if run_finished(ctx, run).await? {
                        deadline = Some(tokio::time::Instant::now() + DRAIN);
                    }
                    continue;
                }
            },
        };
        let Some(chunk) = next else {
            return Ok(Exit::Success);
        };
        let chunk = chunk.map_err(|e| CliError::Protocol(format!("log stream failed: {e}")))?;
        for event in parser.push(&chunk) {
            if matches!(event.name.as_str(), "end" | "done" | "close") {
                return Ok(Exit::Success);
            }
            print_event_data(ctx, &event.data)?;
        }
    }
}

async fn follow_polling(ctx: &Context, base: &str, run: &str) -> Result<Exit, CliError> {
    let mut cursor = None;
    loop {
        let finished = run_finished(ctx, run).await?;
        let (entries, next) = fetch_all(ctx, base, cursor.clone()).await?;
        for entry in &entries {
            print_entry(ctx, entry)?;
        }
        cursor = next.or(cursor);
        if finished {
            return Ok(Exit::Success);
        }
        actix_rt::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_are_split_across_chunks() {
        let mut parser = EventParser::default();
        assert!(parser.push(b": comment\r\ndata: {\"a\"").is_empty());
        let events = parser.push(b":1}\n\nevent: end\ndata:\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].name, "message");
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].name, "end");
    }
}
