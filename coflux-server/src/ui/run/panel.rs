//! The step panel (`step=` in the query): the step's attempts, arguments, result or error with
//! its frames, timings and environment, with Re-run (in the step's environment or one that
//! inherits from it) and Cancel.

use coflux_core::api::{ExecutionView, StepView};
use coflux_core::model::{Environment, EnvironmentState, ExecutionResult, ParamSelection};
use maud::{Markup, html};

use super::RunCtx;
use crate::http::views::{error_json, value_json};
use crate::ui::enc;
use crate::ui::page::{badge, execution_status, format_duration, json_block, strip_ansi, time};

/// The environments a step can be re-run in: `base` and its non-archived descendants, in
/// tree order.
pub(crate) fn rerun_environments<'a>(all: &'a [Environment], base: &str) -> Vec<&'a Environment> {
    let mut out = Vec::new();
    let Some(root) = all
        .iter()
        .find(|e| e.name.as_str() == base && e.state != EnvironmentState::Archived)
    else {
        return out;
    };
    let mut stack = vec![root];
    while let Some(env) = stack.pop() {
        out.push(env);
        let mut children: Vec<&Environment> = all
            .iter()
            .filter(|c| c.parent == Some(env.id) && c.state != EnvironmentState::Archived)
            .collect();
        children.reverse();
        stack.extend(children);
    }
    out
}

/// The environment a step's attempts start from: its caller's, or the run's.
fn base_environment<'a>(ctx: &RunCtx<'a>, step: &StepView) -> &'a str {
    step.parent
        .and_then(|p| ctx.view.step(p.step))
        .and_then(|s| s.executions.iter().find(|e| Some(e.id) == step.parent))
        .map_or(ctx.view.environment.as_str(), |e| e.environment.as_str())
}

/// Renders the panel for `step`, showing `execution`.
pub(crate) fn render(ctx: &RunCtx, step: &StepView, execution: &ExecutionView) -> Markup {
    let status = execution_status(execution);
    let base = base_environment(ctx, step);
    let options = rerun_environments(ctx.environments, base);
    let rerun_url = format!("/api/projects/{}/steps/{}/rerun", enc(ctx.project), step.id);
    let cancel_url = format!(
        "/api/projects/{}/executions/{}/cancel",
        enc(ctx.project),
        execution.id
    );
    let reused_by = ctx.reused_by(execution.id);
    let reuses = ctx.reuses(execution.id);
    let index = step
        .executions
        .iter()
        .position(|e| e.id == execution.id)
        .unwrap_or(0);
    html! {
        aside.panel data-testid="step-panel" data-step=(step.id) data-attempt=(execution.id.attempt) {
            div.panel-head {
                h2.mono { span.muted { (step.target.module) " / " } (step.target.name) }
                a.close href=(ctx.href(&[("step", None), ("attempt", None)])) data-testid="close-panel"
                    title="Close" { "×" }
            }
            div.facts {
                (badge(status))
                span.mono { (execution.id) }
                span { "in " strong data-testid="step-environment" { (execution.environment) } }
                @if step.cached { span.tag { "cache key" } }
                @if !reused_by.is_empty() { span.tag data-testid="memo-badge" { "memoised" } }
            }
            nav.attempts data-testid="attempts" {
                @if index > 0 {
                    a href=(ctx.href(&[("attempt", Some(&step.executions[index - 1].id.attempt.to_string()))])) { "‹" }
                }
                @for e in &step.executions {
                    a class={ "attempt st-" (execution_status(e)) @if e.id == execution.id { " active" } }
                        data-testid="attempt"
                        href=(ctx.href(&[("attempt", Some(&e.id.attempt.to_string()))])) {
                        "#" (e.id.attempt) " " (execution_status(e))
                    }
                }
                @if index + 1 < step.executions.len() {
                    a href=(ctx.href(&[("attempt", Some(&step.executions[index + 1].id.attempt.to_string()))])) { "›" }
                }
            }
            div.actions {
                @if !options.is_empty() {
                    form.inline data-action="rerun" data-url=(rerun_url) data-testid="rerun-form"
                        data-project=(ctx.project) data-run=(ctx.view.id) data-step=(step.id) {
                        select name="environment" data-testid="rerun-environment" {
                            @for e in &options {
                                option value=(e.name.as_str()) selected[e.name.as_str() == execution.environment] {
                                    (e.name.as_str()) }
                            }
                        }
                        button type="submit" data-testid="rerun" { "Re-run" }
                        p.form-error data-testid="form-error" {}
                    }
                }
                @if execution.result.is_none() {
                    button.danger data-post=(cancel_url) data-testid="cancel-step"
                        data-confirm={ "Cancel " (step.target) " (" (execution.id) ")?" } { "Cancel" }
                }
            }
            section {
                h3 { "Arguments" }
                @if step.arguments.is_empty() { p.muted { "None." } }
                ol.arguments data-testid="arguments" {
                    @for a in &step.arguments { li { (json_block(&value_json(a))) } }
                }
            }
            (step_options(step))
            section data-testid="result" {
                h3 { "Result" }
                (result(ctx, execution))
            }
            @if !reused_by.is_empty() || !reuses.is_empty() {
                section data-testid="memo" {
                    h3 { "Memoised" }
                    @if !reused_by.is_empty() {
                        p data-testid="memo-callers" { "Its result was reused by "
                            @for (i, c) in reused_by.iter().enumerate() { @if i > 0 { ", " } (ctx.execution_link(*c)) } "." }
                    }
                    @if !reuses.is_empty() {
                        p data-testid="memo-reuses" { "Calls answered from earlier executions: "
                            @for (i, c) in reuses.iter().enumerate() { @if i > 0 { ", " } (ctx.execution_link(*c)) } "." }
                    }
                }
            }
            (super::compare::panel(ctx, step, execution))
            p.muted {
                a href=(ctx.href(&[("tab", Some("logs")), ("only", Some("step"))])) data-testid="panel-logs" { "This step's logs" }
                " · "
                a href=(ctx.href(&[("tab", Some("assets"))])) data-testid="panel-assets" { "The run's assets" }
            }
            section {
                h3 { "Timing" }
                dl.timings data-testid="timings" {
                    dt { "Created" } dd { (time(execution.created_at)) }
                    @if let Some(a) = execution.assigned_at {
                        dt { "Assigned" } dd { (time(a)) " (queued " (format_duration(a - execution.created_at)) ")" }
                    }
                    @if let Some(f) = execution.finished_at {
                        dt { "Finished" } dd { (time(f)) }
                        @if let Some(a) = execution.assigned_at { dt { "Ran for" } dd { (format_duration(f - a)) } }
                    }
                }
            }
        }
    }
}

fn selection(p: &ParamSelection) -> String {
    match p {
        ParamSelection::All(true) => "all parameters".into(),
        ParamSelection::All(false) => "no parameters".into(),
        ParamSelection::Indexes(i) => format!(
            "parameters {}",
            i.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The step's options that are set: requires, cache (with its key), memo, defer, retries,
/// delay and timeout.
fn step_options(step: &StepView) -> Markup {
    let o = &step.options;
    let any = !o.requires.is_empty()
        || o.cache.is_some()
        || step.cache_key.is_some()
        || o.memo.is_some()
        || o.defer.is_some()
        || o.retries.is_some()
        || o.delay_ms.is_some()
        || o.timeout_ms.is_some();
    html! {
        @if any {
            section {
                h3 { "Options" }
                dl.timings data-testid="options" {
                    @if !o.requires.is_empty() {
                        dt { "Requires" }
                        dd data-testid="requires" { @for (k, v) in &o.requires { span.tag { (k) ":" (v.join(",")) } " " } }
                    }
                    @if let Some(c) = &o.cache {
                        dt { "Cache" }
                        dd { (selection(&c.params))
                            @if let Some(a) = c.max_age_ms { ", max age " (format_duration(a as i64)) }
                            @if let Some(n) = &c.namespace { ", namespace " span.mono { (n) } }
                            @if let Some(v) = &c.version { ", version " span.mono { (v) } } }
                    }
                    @if let Some(key) = &step.cache_key {
                        dt { "Cache key" } dd.mono data-testid="cache-key" { (key) }
                    }
                    @if let Some(m) = &o.memo { dt { "Memo" } dd { (selection(m)) } }
                    @if let Some(d) = &o.defer { dt { "Defer" } dd { (selection(&d.params)) } }
                    @if let Some(r) = &o.retries {
                        dt { "Retries" }
                        dd { @match r.limit { Some(n) => { (n) }, None => { "unlimited" } }
                            @if r.backoff_max_ms > 0 { ", backoff " (format_duration(r.backoff_min_ms as i64)) "–" (format_duration(r.backoff_max_ms as i64)) } }
                    }
                    @if let Some(d) = o.delay_ms { dt { "Delay" } dd { (format_duration(d as i64)) } }
                    @if let Some(t) = o.timeout_ms { dt { "Timeout" } dd { (format_duration(t as i64)) } }
                }
            }
        }
    }
}

fn result(ctx: &RunCtx, execution: &ExecutionView) -> Markup {
    let Some(result) = &execution.result else {
        return html! { p.muted { @if execution.assigned_at.is_some() { "Running…" } @else { "Queued." } } };
    };
    html! {
        @match result {
            ExecutionResult::Value { value } => { div data-testid="result-value" { (json_block(&value_json(value))) } }
            ExecutionResult::Error { error, retry } => {
                @let shown = error_json(error);
                div.error data-testid="result-error" {
                    p { strong.mono { (strip_ansi(shown["type"].as_str().unwrap_or(""))) } }
                    pre.message { (strip_ansi(shown["message"].as_str().unwrap_or(""))) }
                    @if !error.frames.is_empty() {
                        ol.frames data-testid="frames" {
                            @for f in &error.frames {
                                li { span.mono { (f.file) ":" (f.line) } " in " strong.mono { (f.name) }
                                    @if let Some(code) = &f.code { pre.code { (strip_ansi(code)) } } }
                            }
                        }
                    }
                    @if let Some(r) = retry { p { "Retried as " (ctx.execution_link(*r)) } }
                }
            }
            ExecutionResult::Abandoned { retry } | ExecutionResult::Crashed { retry } | ExecutionResult::Timeout { retry } => {
                p { (execution_status(execution)) @if let Some(r) = retry { " · retried as " (ctx.execution_link(*r)) } }
            }
            ExecutionResult::Cancelled => { p { "Cancelled." } }
            ExecutionResult::Cached { successor } => {
                p data-testid="cache-source" { "Cache hit: the result of " (ctx.execution_link(*successor)) }
            }
            ExecutionResult::Deferred { successor }
            | ExecutionResult::Suspended { successor } | ExecutionResult::Spawned { successor }
            | ExecutionResult::Recurred { successor } => {
                p { (execution_status(execution)) " → " (ctx.execution_link(*successor)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coflux_core::model::{EnvironmentId, EnvironmentName};

    #[test]
    fn ui_rerun_environments_are_the_base_and_its_live_descendants() {
        let env = |id, name: &str, parent: Option<u32>, state| Environment {
            id: EnvironmentId(id),
            name: EnvironmentName::new(name).unwrap(),
            parent: parent.map(EnvironmentId),
            state,
            created_at: 0,
        };
        let all = vec![
            env(1, "production", None, EnvironmentState::Active),
            env(2, "staging", Some(1), EnvironmentState::Active),
            env(3, "dev", Some(2), EnvironmentState::Paused),
            env(4, "gone", Some(1), EnvironmentState::Archived),
            env(5, "other", None, EnvironmentState::Active),
        ];
        let names = |base| -> Vec<String> {
            rerun_environments(&all, base)
                .iter()
                .map(|e| e.name.to_string())
                .collect()
        };
        assert_eq!(names("production"), ["production", "staging", "dev"]);
        assert_eq!(names("staging"), ["staging", "dev"]);
        assert!(names("gone").is_empty());
    }
}
