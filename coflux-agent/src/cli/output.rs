//! Text rendering: tables, times, durations, values, run trees and log lines.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use coflux_core::sdk::decode_json;
use serde_json::Value as Json;

use coflux_core::protocol::http::values::RaisedError;
use coflux_core::protocol::http::{Execution, LogEntry, Run, Step};

use super::fanout;

/// The latest point of an execution's progress metric (`cf.progress`, `sdk::progress`), as
/// the CLI adds it to a run's view.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProgressView {
    /// The metric's key.
    pub key: String,
    /// The latest value.
    pub value: f64,
    /// The total, if the metric has one.
    pub upper: Option<f64>,
    /// As shown: `3/10` or `42%`.
    pub text: String,
}

/// Progress by execution id.
pub type Progress = HashMap<String, ProgressView>;

/// Pretty JSON text.
pub fn json_text(value: &Json) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Compact JSON, cut to about `max` characters.
pub fn compact(value: &Json, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// An aligned table with a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a time in ms since the epoch.
pub fn datetime(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the epoch.
pub fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// A duration: `850 ms`, `2.3 s`, `4m 05s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// The current time in ms since the epoch.
pub fn now_ms() -> i64 {
    coflux_core::model::now_millis()
}

/// An error with its type, message and stack.
pub fn error_text(error: &RaisedError) -> String {
    let mut out = format!("{}: {}", error.error_type, error.message);
    for frame in &error.frames {
        let _ = write!(
            out,
            "\n    at {} ({}:{})",
            frame.name, frame.file, frame.line
        );
    }
    out
}

fn outcome(execution: &Execution, progress: &Progress, now: i64) -> String {
    let Some(result) = &execution.result else {
        let progress = progress
            .get(&execution.execution_id)
            .map(|p| format!("  {}", p.text))
            .unwrap_or_default();
        return match execution.state.as_str() {
            "assigned" => match execution.assigned_at {
                Some(at) => format!("◐ running {}{progress}", duration(now - at)),
                None => format!("◐ running{progress}"),
            },
            "queued" => format!("○ queued {}", duration(now - execution.created_at)),
            other => other.to_owned(),
        };
    };
    let kind = result.kind.as_str();
    let retry = result
        .retry
        .as_ref()
        .map(|r| format!(" → retry {r}"))
        .unwrap_or_default();
    let text = match kind {
        "value" => format!(
            "✓ {}",
            compact(result.value.as_ref().unwrap_or(&Json::Null), 60)
        ),
        "error" => {
            let (error_type, message) = result
                .error
                .as_ref()
                .map_or(("", ""), |e| (e.error_type.as_str(), e.message.as_str()));
            format!("✗ {error_type}: {message}{retry}")
        }
        "abandoned" | "crashed" | "timeout" => format!("✗ {kind}{retry}"),
        "cancelled" => "⊘ cancelled".into(),
        other => {
            let successor = result.successor.as_deref().unwrap_or("?");
            format!("↪ {other} → {successor}")
        }
    };
    match execution.duration_ms {
        Some(ms) => format!("{text}  ({})", duration(ms)),
        None => text,
    }
}

fn step_of(execution: &str) -> &str {
    execution.rsplit_once(':').map_or(execution, |(s, _)| s)
}

fn call_text(step: &Step) -> String {
    let args: Vec<String> = step.arguments.iter().map(|a| compact(a, 30)).collect();
    let mut text = format!("{}/{}({})", step.module, step.target, args.join(", "));
    if step.cached {
        text.push_str(" [cached]");
    }
    if let Some(group) = &step.group {
        text.push_str(&format!(" [group: {group}]"));
    }
    text
}

/// The steps of a run under each step id (their parent execution's step), in run order.
type Children<'a> = HashMap<&'a str, Vec<&'a Step>>;

/// What every step of a tree is drawn with.
struct Drawing<'a> {
    run: &'a Run,
    tree: Children<'a>,
    progress: &'a Progress,
    now: i64,
    /// Draw every step of long fan-outs too (`--all`).
    all: bool,
}

fn render_step(out: &mut String, d: &Drawing<'_>, step: &Step, prefix: &str, last: bool) {
    let (run, now) = (d.run, d.now);
    let branch = if last { "└─ " } else { "├─ " };
    let cont = format!("{prefix}{}", if last { "   " } else { "│  " });
    let env_tag = |e: &Execution| {
        if e.environment == run.environment {
            String::new()
        } else {
            format!(" [{}]", e.environment)
        }
    };
    match step.executions.as_slice() {
        [only] => {
            let _ = writeln!(
                out,
                "{prefix}{branch}{} {}  {}{}",
                step.step_id,
                call_text(step),
                outcome(only, d.progress, now),
                env_tag(only)
            );
        }
        many => {
            let _ = writeln!(out, "{prefix}{branch}{} {}", step.step_id, call_text(step));
            for e in many {
                let _ = writeln!(
                    out,
                    "{cont}  #{} {}{}",
                    e.attempt,
                    outcome(e, d.progress, now),
                    env_tag(e)
                );
            }
        }
    }
    for (environment, state) in &step.checkpoints {
        let names: Vec<String> = state.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let env = if *environment == run.environment {
            String::new()
        } else {
            format!(" [{environment}]")
        };
        let _ = writeln!(out, "{cont}  checkpoints{env}: {}", names.join(", "));
    }
    for stream in &step.streams {
        let state = stream.closed.as_deref().unwrap_or("open");
        let _ = writeln!(
            out,
            "{cont}  stream {}: {} item(s), {state}",
            stream.stream_id, stream.items
        );
    }
    for input in &step.inputs {
        let title = input
            .title
            .as_deref()
            .map_or_else(String::new, |t| format!(" \"{t}\""));
        let _ = writeln!(
            out,
            "{cont}  input {}{title}: {}",
            input.input_id, input.state
        );
    }
    let children = d
        .tree
        .get(step.step_id.as_str())
        .map_or(&[][..], Vec::as_slice);
    render_children(out, d, children, &cont);
}

/// Draws `children` under `prefix`, long fan-outs as one line each (see [`fanout`]).
fn render_children(out: &mut String, d: &Drawing<'_>, children: &[&Step], prefix: &str) {
    let entries = fanout::entries(children, d.all);
    for (i, entry) in entries.iter().enumerate() {
        let last = i + 1 == entries.len();
        match entry {
            fanout::Entry::Step(step) => render_step(out, d, step, prefix, last),
            fanout::Entry::Group(steps) => {
                let branch = if last { "└─ " } else { "├─ " };
                let _ = writeln!(out, "{prefix}{branch}{}", fanout::group_line(steps));
            }
        }
    }
}

/// A run as a tree of steps, each with its attempts, states, timings, results and (running
/// ones) progress; long fan-outs collapse into one line each unless `all`.
pub fn run_tree(run: &Run, progress: &Progress, now: i64, all: bool) -> String {
    let mut out = String::new();
    let workflow = run
        .steps
        .first()
        .map(|s| format!("{}/{}", s.module, s.target))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "run {} in {}: {workflow} (submitted {} UTC)",
        run.run_id,
        run.environment,
        datetime(run.created_at)
    );
    let ids: HashSet<&str> = run.steps.iter().map(|s| s.step_id.as_str()).collect();
    let known = |p: &str| ids.contains(step_of(p));
    let mut tree = Children::new();
    for step in &run.steps {
        if let Some(parent) = step.parent.as_deref() {
            tree.entry(step_of(parent)).or_default().push(step);
        }
    }
    let roots: Vec<&Step> = run
        .steps
        .iter()
        .filter(|s| s.parent.as_deref().is_none_or(|p| !known(p)))
        .collect();
    if let Some(parent) = &run.parent {
        let _ = writeln!(out, "started by {parent}");
    }
    let drawing = Drawing {
        run,
        tree,
        progress,
        now,
        all,
    };
    render_children(&mut out, &drawing, &roots, "");
    for spawned in &run.spawned {
        let _ = writeln!(
            out,
            "↳ {} called a workflow: run {}",
            spawned.parent, spawned.run_id
        );
    }
    out
}

fn placeholder_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Object(map)
            if map.get("type").and_then(Json::as_str) == Some("raw")
                && map.contains_key("data") =>
        {
            placeholder_text(&decode_json(map["data"].clone()))
        }
        other => other.to_string(),
    }
}

/// Fills `{name}` placeholders of a log template from `values` (unknown names stay as is).
/// Values are plain JSON (strings are inserted without quotes); a Coflux value
/// (`{"type":"raw","data":…}`) is decoded first.
pub fn fill_template(template: &str, values: &Json) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_') =>
            {
                let name = &after[..close];
                match values.get(name) {
                    Some(v) if !name.is_empty() => out.push_str(&placeholder_text(v)),
                    _ => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A level's name (numbers follow Coflux: 0 debug, 1 stdout, 2 info, 3 stderr, 4 warning,
/// 5 error).
pub fn level_name(level: u8) -> &'static str {
    match level {
        0 => "debug",
        1 => "stdout",
        2 => "info",
        3 => "stderr",
        4 => "warning",
        5 => "error",
        _ => "?",
    }
}

/// One log line: `HH:MM:SS.mmm LEVEL    EXECUTION  message`.
pub fn log_line(entry: &LogEntry) -> String {
    format!(
        "{} {:<7} {}  {}",
        clock(i64::try_from(entry.timestamp).unwrap_or(i64::MAX)),
        level_name(entry.level),
        entry.execution_id,
        fill_template(
            entry.template.as_deref().unwrap_or(""),
            &Json::Object(entry.values.clone())
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_are_filled_from_values() {
        let values = json!({"name": "world", "n": 3, "v": {"type": "raw", "data": [1, 2]}});
        assert_eq!(
            fill_template(
                "hello {name}, {n} times {v} {missing} {not a name}",
                &values
            ),
            "hello world, 3 times [1,2] {missing} {not a name}"
        );
        assert_eq!(fill_template("{", &values), "{");
    }

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00");
        assert_eq!(datetime(1_709_210_096_789), "2024-02-29 12:34:56");
        assert_eq!(clock(1_709_210_096_789), "12:34:56.789");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(2_340), "2.3 s");
        assert_eq!(duration(245_000), "4m 05s");
    }

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["NAME", "STATE"],
            &[
                vec!["a".into(), "active".into()],
                vec!["long-name".into(), "paused".into()],
            ],
        );
        assert_eq!(
            text,
            "NAME       STATE\na          active\nlong-name  paused\n"
        );
    }

    #[test]
    fn run_trees_nest_children_under_their_step() {
        let run: Run = serde_json::from_value(json!({
            "run_id": "R1", "environment": "prod", "created_at": 0,
            "steps": [
                {"step_id": "R1:1", "module": "m", "target": "main", "kind": "workflow",
                 "parent": null, "arguments": ["x"], "cached": false,
                 "executions": [{"execution_id": "R1:1:1", "attempt": 1, "environment": "prod",
                   "state": "value", "created_at": 0, "assigned_at": 1, "finished_at": 11,
                   "duration_ms": 10, "result": {"type": "value", "value": "done"}}]},
                {"step_id": "R1:2", "module": "m", "target": "child", "kind": "task",
                 "parent": "R1:1:1", "arguments": [], "cached": false,
                 "executions": [
                   {"execution_id": "R1:2:1", "attempt": 1, "environment": "prod",
                    "state": "error", "created_at": 0, "assigned_at": 1, "finished_at": 2,
                    "duration_ms": 1, "result": {"type": "error",
                      "error": {"type": "E", "message": "boom", "frames": []}, "retry": "R1:2:2"}},
                   {"execution_id": "R1:2:2", "attempt": 2, "environment": "dev",
                    "state": "queued", "created_at": 0, "assigned_at": null, "finished_at": null,
                    "duration_ms": null, "result": null}]}
            ]
        }))
        .unwrap();
        let text = run_tree(&run, &Progress::new(), 1000, false);
        assert_eq!(
            text,
            "run R1 in prod: m/main (submitted 1970-01-01 00:00:00 UTC)\n\
             └─ R1:1 m/main(\"x\")  ✓ \"done\"  (10 ms)\n   \
                └─ R1:2 m/child()\n        \
                     #1 ✗ E: boom → retry R1:2:2  (1 ms)\n        \
                     #2 ○ queued 1.0 s [dev]\n"
        );
    }

    #[test]
    fn running_executions_show_their_progress() {
        let run: Run = serde_json::from_value(json!({
            "run_id": "R1", "environment": "prod", "created_at": 0,
            "steps": [{"step_id": "R1:1", "module": "m", "target": "main", "kind": "workflow",
                "parent": null, "arguments": [], "cached": false,
                "executions": [{"execution_id": "R1:1:1", "attempt": 1, "environment": "prod",
                  "state": "assigned", "created_at": 0, "assigned_at": 0, "finished_at": null,
                  "duration_ms": null, "result": null}]}]
        }))
        .unwrap();
        let progress = Progress::from([(
            "R1:1:1".to_owned(),
            ProgressView {
                key: "progress".into(),
                value: 3.0,
                upper: Some(10.0),
                text: "3/10".into(),
            },
        )]);
        let text = run_tree(&run, &progress, 1000, false);
        assert!(
            text.contains("R1:1 m/main()  ◐ running 1.0 s  3/10"),
            "{text}"
        );
    }
    #[test]
    fn long_fan_outs_collapse_into_one_line_unless_all() {
        let execution = |step: u32, kind: &str| {
            let result = match kind {
                "value" => json!({"type": "value", "value": step}),
                "queued" => Json::Null,
                _ => json!({"type": "error", "error": {"type": "E", "message": "x", "frames": []}}),
            };
            let state = if kind == "queued" { "queued" } else { kind };
            json!({"execution_id": format!("R1:{step}:1"), "attempt": 1, "environment": "prod",
                   "state": state, "created_at": 0, "assigned_at": null, "finished_at": null,
                   "duration_ms": null, "result": result})
        };
        let mut steps = vec![json!({"step_id": "R1:1", "module": "m", "target": "main",
            "kind": "workflow", "parent": null, "arguments": [], "cached": false,
            "executions": [execution(1, "queued")]})];
        for i in 2..=13 {
            let kind = match i {
                3 => "error",
                13 => "queued",
                _ => "value",
            };
            steps.push(
                json!({"step_id": format!("R1:{i}"), "module": "m", "target": "square",
                "kind": "task", "parent": "R1:1:1", "arguments": [i], "cached": false,
                "executions": [execution(i, kind)]}),
            );
        }
        steps.push(
            json!({"step_id": "R1:14", "module": "m", "target": "total", "kind": "task",
            "parent": "R1:1:1", "arguments": [], "cached": false,
            "executions": [execution(14, "value")]}),
        );
        let run: Run = serde_json::from_value(json!({
            "run_id": "R1", "environment": "prod", "created_at": 0, "steps": steps
        }))
        .unwrap();
        let text = run_tree(&run, &Progress::new(), 1000, false);
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "   ├─ R1:2..R1:13 m/square ×12: 10 ✓, 1 ✗, 1 ○",
                "   └─ R1:14 m/total()  ✓ 14",
            ]
        );
        let all = run_tree(&run, &Progress::new(), 1000, true);
        assert_eq!(all.lines().count(), 2 + 13, "{all}");
        assert!(all.contains("R1:3 m/square(3)  ✗ E: x"));
    }
}
