//! The page shell (head, header, breadcrumbs), the error page, and small rendering helpers
//! shared by every page: times, durations, status badges and JSON values.

use actix_web::http::StatusCode;
use coflux_core::api::{ExecutionView, RunView};
use coflux_core::model::{ExecutionState, Millis, StepId, now_millis};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value as Json;

use super::assets;
use crate::http::views::status_name;

/// One breadcrumb: a label and an optional link.
pub(crate) type Crumb = (String, Option<String>);

/// The whole page: head with the embedded assets, header with breadcrumbs, then `body`.
pub(crate) fn shell(title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Coflux" }
                link rel="stylesheet" href=(assets::url(assets::CSS));
                link rel="icon" href="data:,";
                script type="module" src=(assets::url(assets::JS)) {}
            }
            body {
                header.top {
                    a.brand href="/" data-testid="home-link" { "Coflux" }
                    nav.crumbs data-testid="breadcrumbs" {
                        @for (label, href) in crumbs {
                            span.sep { "/" }
                            @if let Some(href) = href {
                                a href=(href) { (label) }
                            } @else {
                                span { (label) }
                            }
                        }
                    }
                }
                (body)
            }
        }
    }
}

/// The page asking for a token (a server started with `--auth tokens`): `ui.js` keeps it in
/// the browser (local storage for actions, a same-site cookie for page loads).
pub(crate) fn sign_in() -> Markup {
    shell(
        "Sign in",
        &[],
        html! {
            main.error-page data-testid="sign-in" {
                h1 { "Sign in" }
                p { "This server needs an access token (created with " code { "coflux tokens create" } ")." }
                form data-action="sign-in" {
                    input type="password" name="token" autocomplete="off" required placeholder="Token";
                    button type="submit" { "Sign in" }
                    p.form-error {}
                }
            }
        },
    )
}

/// The page shown for an error (404 for unknown projects, runs and steps).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = if status == StatusCode::NOT_FOUND {
        "Not found"
    } else {
        status.canonical_reason().unwrap_or("Error")
    };
    shell(
        title,
        &[],
        html! {
            main.error-page data-testid="error-page" data-status=(status.as_u16()) {
                h1 { (status.as_u16()) " · " (title) }
                p data-testid="error-message" { (message) }
                p { a href="/" { "Back to projects" } }
            }
        },
    )
}

/// The status of an execution: `queued`, `running`, or the kind of its result.
pub(crate) fn execution_status(e: &ExecutionView) -> &'static str {
    match (&e.result, e.state) {
        (Some(result), _) => status_name(result),
        (None, ExecutionState::Queued) => "queued",
        (None, _) => "running",
    }
}

/// Whether an execution has not ended.
pub(crate) fn is_active(e: &ExecutionView) -> bool {
    e.result.is_none()
}

/// A run's status: that of its initial step's latest attempt, `running` while anything in it
/// is still active.
pub(crate) fn run_status(view: &RunView) -> &'static str {
    let root = view
        .step(StepId {
            run: view.id,
            number: 1,
        })
        .or_else(|| view.steps.first())
        .and_then(|s| s.executions.last());
    let Some(root) = root else {
        return "queued";
    };
    let status = execution_status(root);
    if status != "queued" && !is_active(root) && run_active(view) {
        return "running";
    }
    status
}

/// Whether any execution of the run has not ended.
pub(crate) fn run_active(view: &RunView) -> bool {
    view.steps.iter().flat_map(|s| &s.executions).any(is_active)
}

/// When the run ended (its last result), if nothing in it is active.
pub(crate) fn run_finished_at(view: &RunView) -> Option<Millis> {
    if run_active(view) {
        return None;
    }
    view.steps
        .iter()
        .flat_map(|s| &s.executions)
        .filter_map(|e| e.finished_at)
        .max()
}

/// A status badge.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge st-" (status) } data-testid="status" { (status) } }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC, in a `<time>` element.
pub(crate) fn time(ms: Millis) -> Markup {
    let text = format_time(ms);
    html! { time datetime={ (text.replace(' ', "T")) "Z" } title="UTC" { (text) } }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn format_time(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A duration: `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`.
pub(crate) fn format_duration(ms: Millis) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// The time from `start` to `end`, or to now while it has not ended.
pub(crate) fn elapsed(start: Millis, end: Option<Millis>) -> String {
    format_duration(end.unwrap_or_else(now_millis) - start)
}

/// Plain JSON, pretty-printed in a `<pre>` (escaped like all text).
pub(crate) fn json_block(value: &Json) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { (strip_ansi(&text)) } }
}

/// Removes ANSI escape sequences and other control characters (keeping newlines and tabs),
/// so terminal output is shown inert.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else if chars.peek() == Some(&']') {
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_times_and_durations_format() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_796_544_759_000), "2026-12-06 08:12:39");
        assert_eq!(format_duration(850), "850 ms");
        assert_eq!(format_duration(12_340), "12.3 s");
        assert_eq!(format_duration(245_000), "4m 05s");
        assert_eq!(format_duration(7_380_000), "2h 03m");
    }

    #[test]
    fn ui_ansi_escapes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[31mred\u{1b}[0m ok\u{7}\n\u{1b}]0;title\u{7}x"),
            "red ok\nx"
        );
    }
}
