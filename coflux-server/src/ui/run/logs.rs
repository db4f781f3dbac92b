//! The logs tab: the run's log records (oldest first, newest at the bottom), filtered by a
//! lowest level (and, with `only=step`, to the selected step), with the step that logged
//! each. Messages are rendered from their template and values, with ANSI escapes stripped;
//! the live stream re-renders the tab while the run runs.

use std::collections::HashMap;

use coflux_core::model::StepId;
use maud::{Markup, html};
use serde_json::Value as Json;

use super::RunCtx;
use crate::logs::{LogFilter, LogStore, MAX_PAGE, StoredLog, display_value};
use crate::ui::UiError;
use crate::ui::page::{format_time, strip_ansi};

/// Records read at most for one rendering.
const MAX_READ: usize = 20_000;
/// Records shown at most (the newest).
pub const MAX_SHOWN: usize = 2_000;
/// Level names, by level.
const LEVELS: [&str; 6] = ["debug", "stdout", "info", "stderr", "warning", "error"];

/// A level's name.
fn level_name(level: u8) -> &'static str {
    LEVELS.get(usize::from(level)).copied().unwrap_or("?")
}

/// Renders a message: `{name}` placeholders replaced by their values (strings as is, others
/// as JSON); values not in the template are appended as `name=value`. ANSI escapes stripped.
pub(crate) fn message(log: &StoredLog) -> String {
    let values: Vec<(&str, Json)> = log
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), display_value(v)))
        .collect();
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = log.template.clone().unwrap_or_default();
    let mut extra = Vec::new();
    for (name, value) in &values {
        let placeholder = format!("{{{name}}}");
        if out.contains(&placeholder) {
            out = out.replace(&placeholder, &text(value));
        } else {
            extra.push(format!("{name}={value}"));
        }
    }
    if !extra.is_empty() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&extra.join(" "));
    }
    strip_ansi(&out)
}

/// Reads the run's logs at or above `min_level`, the newest [`MAX_SHOWN`].
async fn read(
    store: &LogStore,
    project: &str,
    ctx: &RunCtx<'_>,
    min_level: u8,
) -> Result<(Vec<StoredLog>, bool), UiError> {
    let filter = match (ctx.q.only.as_deref(), ctx.selected) {
        (Some("step"), Some((step, _))) => Some(LogFilter::Step(step.id)),
        _ => None,
    };
    let mut logs = Vec::new();
    let mut after = None;
    let mut read = 0;
    loop {
        let page = store
            .query(project, ctx.view.id, filter, after, MAX_PAGE)
            .await?;
        let n = page.logs.len();
        read += n;
        logs.extend(page.logs.into_iter().filter(|l| l.level >= min_level));
        if n < MAX_PAGE || read >= MAX_READ {
            break;
        }
        after = page.cursor;
    }
    let cut = logs.len() > MAX_SHOWN;
    if cut {
        logs.drain(..logs.len() - MAX_SHOWN);
    }
    Ok((logs, cut))
}

/// Renders the tab.
pub(crate) async fn render(ctx: &RunCtx<'_>, store: &LogStore) -> Result<Markup, UiError> {
    let min_level: u8 = ctx
        .q
        .level
        .as_deref()
        .and_then(|l| LEVELS.iter().position(|n| *n == l))
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0);
    let (logs, cut) = read(store, ctx.project, ctx, min_level).await?;
    let targets: HashMap<StepId, &str> = ctx
        .view
        .steps
        .iter()
        .map(|s| (s.id, s.target.name.as_str()))
        .collect();
    Ok(html! {
        div.toolbar data-testid="log-levels" {
            "Level: "
            @for (i, name) in LEVELS.iter().enumerate() {
                a class=[(usize::from(min_level) == i).then_some("active")]
                    href=(ctx.href(&[("level", (i > 0).then_some(*name))])) { (name) "+" }
                " "
            }
            @if let Some((step, _)) = ctx.selected {
                @if ctx.q.only.as_deref() == Some("step") {
                    a data-testid="logs-all" href=(ctx.href(&[("only", None)])) { "all steps" }
                } @else {
                    a data-testid="logs-only-step" href=(ctx.href(&[("only", Some("step"))])) {
                        "only " (step.target.name) }
                }
            }
            label.follow { input type="checkbox" data-follow checked; " follow" }
        }
        @if cut { p.muted { "Older records are not shown." } }
        @if logs.is_empty() {
            p.empty data-testid="logs-empty" { "No log records." }
        } @else {
            div.logs-frame data-testid="logs" {
                table.logs {
                    tbody {
                        @for log in &logs {
                            tr class={ "lv-" (level_name(log.level)) } data-testid="log-row" {
                                td.ts { (format_time(i64::try_from(log.timestamp_ms).unwrap_or(0))[11..]) }
                                td.step {
                                    a href=(ctx.step_href(log.execution.step)) {
                                        (targets.get(&log.execution.step).copied().unwrap_or("?"))
                                        @if log.execution.attempt > 1 { " #" (log.execution.attempt) }
                                    }
                                }
                                td.level { (level_name(log.level)) }
                                td.msg data-testid="log-message" { (message(log)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coflux_core::model::Value;
    use coflux_core::sdk::encode_json;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn log(template: Option<&str>, values: &[(&str, Json)]) -> StoredLog {
        StoredLog {
            cursor: 1,
            execution: "R1:1:1".parse().unwrap(),
            timestamp_ms: 0,
            level: 2,
            template: template.map(String::from),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), Value::raw(encode_json(v.clone()))))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn ui_log_messages_render_values_and_strip_ansi() {
        let l = log(
            Some("\u{1b}[1mhello\u{1b}[0m {name}: {n}"),
            &[
                ("name", json!("<b>x</b>")),
                ("n", json!(3)),
                ("extra", json!([1])),
            ],
        );
        assert_eq!(message(&l), "hello <b>x</b>: 3 extra=[1]");
        assert_eq!(message(&log(None, &[])), "");
    }
}
