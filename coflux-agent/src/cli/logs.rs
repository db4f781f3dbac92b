//! `coflux logs RUN [EXECUTION] [--follow] [--from TIME]`.
//!
//! Pages through `GET /api/projects/{p}/runs/{run}/logs?after=CURSOR[&execution=|step=]` (answers
//! `{"logs":[{"execution_id","level","template","values","timestamp"}],"cursor"}`); with
//! `--follow`, reads the server-sent events of `…/logs/stream` (each event's data is one log
//! entry or `{"logs":[…]}`), falling back on polling when the server has no stream endpoint.
//! Following stops at the end of the stream, at an `end` event, or shortly after the run has
//! finished (checked every [`FINISH_CHECK`]). `--from` drops messages logged before that time.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value as Json, json};

use super::args::LogsArgs;
use super::client::{segment, typed};
use super::{CliError, Context, Exit, output, runs, runs_list};
use coflux_core::protocol::http::{LogEntry, LogPage};

/// How often `--follow` checks whether the run has finished.
pub const FINISH_CHECK: Duration = Duration::from_secs(2);
/// How long `--follow` keeps reading after the run has finished, for the last messages.
const DRAIN: Duration = Duration::from_secs(1);

/// What to show: the run's logs, or one execution's or step's; from a time on.
struct Selection<'a> {
    ctx: &'a Context,
    /// `execution=…` or `step=…`, or empty.
    filter: String,
    /// Unix milliseconds: earlier messages are skipped.
    from: Option<u64>,
}

impl Selection<'_> {
    fn path(&self, base: &str, cursor: Option<&Json>) -> String {
        let mut params = Vec::new();
        if let Some(c) = cursor.filter(|c| !c.is_null()) {
            params.push(format!("after={}", cursor_param(c)));
        }
        if !self.filter.is_empty() {
            params.push(self.filter.clone());
        }
        if params.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", params.join("&"))
        }
    }

    fn wanted(&self, entry: &Json) -> bool {
        let at = entry.get("timestamp").and_then(Json::as_u64).unwrap_or(0);
        self.from.is_none_or(|from| at >= from)
    }
}

/// The query filter for `execution`: a full id (`R1:2:1`, `R1:2`) or one within `run`
/// (`2:1`, `2`); three parts name an execution, two a step.
fn filter_of(run: &str, execution: &str) -> Result<String, CliError> {
    let full = if execution.contains(':') && !execution.starts_with(|c: char| c.is_ascii_digit()) {
        execution.to_owned()
    } else {
        format!("{run}:{execution}")
    };
    let parts = full.split(':').count();
    let key = match parts {
        3 => "execution",
        2 => "step",
        _ => {
            return Err(CliError::Usage(format!(
                "expected an execution (R1:2:1 or 2:1) or a step (R1:2 or 2), got '{execution}'"
            )));
        }
    };
    if full.split(':').next() != Some(run) {
        return Err(CliError::Usage(format!(
            "'{execution}' is not part of run {run}"
        )));
    }
    Ok(format!("{key}={}", segment(&full)))
}

/// Runs `logs`.
pub async fn run(ctx: &Context, args: LogsArgs) -> Result<Exit, CliError> {
    let base = format!("{}/runs/{}/logs", ctx.project_path()?, segment(&args.run));
    let filter = match &args.execution {
        Some(execution) => filter_of(&args.run, execution)?,
        None => String::new(),
    };
    let from = match &args.from {
        Some(text) => {
            let ms = runs_list::time_arg("--from", text, coflux_core::model::now_millis())?;
            Some(ms.parse::<u64>().unwrap_or(0))
        }
        None => None,
    };
    let selection = Selection { ctx, filter, from };
    if !args.follow {
        let (mut entries, cursor) = fetch_all(&selection, &base, None).await?;
        entries.retain(|e| selection.wanted(e));
        if ctx.json() {
            ctx.print_json(&json!({ "logs": entries, "cursor": cursor }))?;
        } else {
            for entry in &entries {
                print_entry(ctx, entry)?;
            }
        }
        return Ok(Exit::Success);
    }
    let stream = selection.path(&format!("{base}/stream"), None);
    match ctx.client.event_stream(&stream).await {
        Ok(response) => follow_stream(&selection, response, &args.run).await,
        Err(CliError::Api {
            status: 404, code, ..
        }) if code == "not_found" => follow_polling(&selection, &base, &args.run).await,
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
    selection: &Selection<'_>,
    base: &str,
    mut cursor: Option<Json>,
) -> Result<(Vec<Json>, Option<Json>), CliError> {
    let mut entries = Vec::new();
    loop {
        let path = selection.path(base, cursor.as_ref());
        let answer = selection.ctx.client.get(&path).await?;
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

fn print_event_data(selection: &Selection<'_>, data: &str) -> Result<(), CliError> {
    let Ok(json) = serde_json::from_str::<Json>(data) else {
        return Ok(());
    };
    let entries = match json.get("logs").and_then(Json::as_array) {
        Some(logs) => logs.clone(),
        None if json.get("template").is_some() => vec![json],
        None => Vec::new(),
    };
    for entry in entries.iter().filter(|e| selection.wanted(e)) {
        print_entry(selection.ctx, entry)?;
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
    selection: &Selection<'_>,
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
                    if run_finished(selection.ctx, run).await? {
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
            print_event_data(selection, &event.data)?;
        }
    }
}

async fn follow_polling(
    selection: &Selection<'_>,
    base: &str,
    run: &str,
) -> Result<Exit, CliError> {
    let mut cursor = None;
    loop {
        let finished = run_finished(selection.ctx, run).await?;
        let (entries, next) = fetch_all(selection, base, cursor.clone()).await?;
        for entry in entries.iter().filter(|e| selection.wanted(e)) {
            print_entry(selection.ctx, entry)?;
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
    fn executions_and_steps_are_named_within_the_run() {
        assert_eq!(filter_of("R1", "R1:2:1").unwrap(), "execution=R1%3A2%3A1");
        assert_eq!(filter_of("R1", "2:1").unwrap(), "execution=R1%3A2%3A1");
        assert_eq!(filter_of("R1", "R1:2").unwrap(), "step=R1%3A2");
        assert_eq!(filter_of("R1", "2").unwrap(), "step=R1%3A2");
        assert!(
            filter_of("R1", "R2:1:1")
                .unwrap_err()
                .to_string()
                .contains("not part of run R1")
        );
        assert!(filter_of("R1", "1:2:3").is_err());
    }

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
