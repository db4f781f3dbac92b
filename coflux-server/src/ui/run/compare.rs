//! Compare (`compare=ENV` in the query): the run as seen from the page's environment beside
//! the run as seen from `ENV`. Steps whose shown results differ are marked in the graph and
//! the list; the step panel puts both executions side by side with a structural diff of their
//! results, the point of re-running a production step in a child environment with new code.

use std::collections::HashMap;

use coflux_core::api::{ExecutionView, RunView, StepView};
use coflux_core::model::{ExecutionResult, StepId};
use maud::{Markup, html};
use serde_json::Value as Json;

use super::RunCtx;
use crate::http::views::value_json;
use crate::ui::page::{badge, execution_status, format_duration, json_block, strip_ansi};

/// At most this many changes are listed for one pair of results.
const MAX_CHANGES: usize = 50;

/// The other side of a comparison.
pub(crate) struct Comparison {
    /// The environment compared with.
    pub environment: String,
    /// The run as seen from it.
    pub view: RunView,
    /// How each step of the page's view differs from it (absent: the same).
    pub differences: HashMap<StepId, Difference>,
}

/// How a step's shown execution differs between the two views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Difference {
    /// Both ended with a value, and the values differ.
    Value,
    /// They ended differently (or one has not ended).
    Outcome,
    /// The step is not seen from the other environment.
    Missing,
}

impl Difference {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Value => "different value",
            Self::Outcome => "different outcome",
            Self::Missing => "only here",
        }
    }
}

impl Comparison {
    /// Compares `here` (the page's view) with `there`, seen from `environment`.
    pub fn new(environment: String, here: &RunView, there: RunView) -> Self {
        let differences = differences(here, &there);
        Self {
            environment,
            view: there,
            differences,
        }
    }
}

/// The steps of `here` whose latest execution differs from that in `there`.
pub(crate) fn differences(here: &RunView, there: &RunView) -> HashMap<StepId, Difference> {
    let mut out = HashMap::new();
    for step in &here.steps {
        let Some(mine) = step.executions.last() else {
            continue;
        };
        let theirs = there.step(step.id).and_then(|s| s.executions.last());
        let difference = match theirs {
            None => Some(Difference::Missing),
            Some(theirs) if theirs.id == mine.id => None,
            Some(theirs) => outcome_difference(mine, theirs),
        };
        if let Some(d) = difference {
            out.insert(step.id, d);
        }
    }
    out
}

fn outcome_difference(a: &ExecutionView, b: &ExecutionView) -> Option<Difference> {
    match (&a.result, &b.result) {
        (Some(ExecutionResult::Value { value: x }), Some(ExecutionResult::Value { value: y })) => {
            (value_json(x) != value_json(y)).then_some(Difference::Value)
        }
        _ => (execution_status(a) != execution_status(b)).then_some(Difference::Outcome),
    }
}

/// One change between two JSON values, at a path like `$.items[2].name`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The value at `path` changed.
    Changed { path: String, from: Json, to: Json },
    /// `path` exists only in the second value.
    Added { path: String, value: Json },
    /// `path` exists only in the first value.
    Removed { path: String, value: Json },
}

/// The structural differences from `a` to `b`: objects by key, arrays by index, anything else
/// as a whole; at most `limit` changes (the second value says whether some were left out).
pub(crate) fn diff(a: &Json, b: &Json, limit: usize) -> (Vec<Change>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    walk("$".to_string(), a, b, limit, &mut out, &mut truncated);
    (out, truncated)
}

fn walk(path: String, a: &Json, b: &Json, limit: usize, out: &mut Vec<Change>, cut: &mut bool) {
    if a == b {
        return;
    }
    if out.len() >= limit {
        *cut = true;
        return;
    }
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for (key, value) in x {
                let p = member(&path, key);
                match y.get(key) {
                    Some(other) => walk(p, value, other, limit, out, cut),
                    None => push(
                        out,
                        limit,
                        cut,
                        Change::Removed {
                            path: p,
                            value: value.clone(),
                        },
                    ),
                }
            }
            for (key, value) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                let p = member(&path, key);
                push(
                    out,
                    limit,
                    cut,
                    Change::Added {
                        path: p,
                        value: value.clone(),
                    },
                );
            }
        }
        (Json::Array(x), Json::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(u), Some(v)) => walk(p, u, v, limit, out, cut),
                    (Some(u), None) => push(
                        out,
                        limit,
                        cut,
                        Change::Removed {
                            path: p,
                            value: u.clone(),
                        },
                    ),
                    (None, Some(v)) => push(
                        out,
                        limit,
                        cut,
                        Change::Added {
                            path: p,
                            value: v.clone(),
                        },
                    ),
                    (None, None) => {}
                }
            }
        }
        _ => push(
            out,
            limit,
            cut,
            Change::Changed {
                path,
                from: a.clone(),
                to: b.clone(),
            },
        ),
    }
}

fn push(out: &mut Vec<Change>, limit: usize, cut: &mut bool, change: Change) {
    if out.len() < limit {
        out.push(change);
    } else {
        *cut = true;
    }
}

/// `path.key`, or `path["key"]` when the key is not a plain identifier.
fn member(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Json::String(key.to_string()))
    }
}

/// The links choosing an environment to compare with (all but the one viewed from).
pub(crate) fn chooser(ctx: &RunCtx) -> Markup {
    let viewed = ctx
        .q
        .environment
        .as_deref()
        .filter(|e| !e.is_empty())
        .unwrap_or(&ctx.view.environment);
    let current = ctx.compare.map(|c| c.environment.as_str());
    let others: Vec<&str> = ctx
        .environments
        .iter()
        .filter(|e| e.state != coflux_core::model::EnvironmentState::Archived)
        .map(|e| e.name.as_str())
        .filter(|n| *n != viewed)
        .collect();
    if others.is_empty() {
        return html! {};
    }
    html! {
        span.compare data-testid="compare-chooser" { "compare with "
            @for name in &others {
                @if Some(*name) == current {
                    strong data-testid="compare-current" { (name) } " "
                } @else {
                    a href=(ctx.href(&[("compare", Some(name))])) data-testid="compare-with" { (name) } " "
                }
            }
            @if current.is_some() {
                a href=(ctx.href(&[("compare", None)])) data-testid="compare-off" { "(stop)" }
            }
        }
    }
}

/// The header's summary of a comparison.
pub(crate) fn summary(ctx: &RunCtx) -> Markup {
    let Some(c) = ctx.compare else {
        return html! {};
    };
    let n = c.differences.len();
    html! {
        p.compare-summary data-testid="compare-summary" data-differences=(n) {
            @if n == 0 { "Every step shows the same result from " strong { (c.environment) } "." }
            @else { (n) " step" @if n != 1 { "s" } " differ from " strong { (c.environment) }
                " (outlined)." }
        }
    }
}

/// The step panel's comparison section for `step`, shown as `mine`.
pub(crate) fn panel(ctx: &RunCtx, step: &StepView, mine: &ExecutionView) -> Markup {
    let Some(c) = ctx.compare else {
        return html! {};
    };
    let theirs = c.view.step(step.id).and_then(|s| s.executions.last());
    html! {
        section.compare data-testid="compare" {
            h3 { "Compared with " (c.environment) }
            @match theirs {
                None => { p.muted data-testid="compare-missing" { "Not seen from " (c.environment) "." } }
                Some(theirs) => {
                    table.compare-table {
                        thead { tr { th {} th { "Shown here" } th { (c.environment) } } }
                        tbody {
                            tr { th { "Execution" } td.mono { (mine.id) " in " (mine.environment) }
                                td.mono { (theirs.id) " in " (theirs.environment) } }
                            tr { th { "Outcome" } td { (badge(execution_status(mine))) }
                                td { (badge(execution_status(theirs))) } }
                            tr data-testid="compare-durations" { th { "Ran for" } td { (ran_for(mine)) } td { (ran_for(theirs)) } }
                        }
                    }
                    (changes(mine, theirs))
                }
            }
        }
    }
}

fn ran_for(e: &ExecutionView) -> String {
    match (e.assigned_at, e.finished_at) {
        (Some(a), Some(f)) => format_duration(f - a),
        _ => "–".into(),
    }
}

/// The structural diff of two values (or why there is none).
fn changes(mine: &ExecutionView, theirs: &ExecutionView) -> Markup {
    if mine.id == theirs.id {
        return html! { p.muted data-testid="compare-same" { "The same execution." } };
    }
    let (Some(ExecutionResult::Value { value: a }), Some(ExecutionResult::Value { value: b })) =
        (&mine.result, &theirs.result)
    else {
        return html! { p.muted { "Values are compared once both executions end with one." } };
    };
    let (a, b) = (value_json(a), value_json(b));
    let (list, truncated) = diff(&b, &a, MAX_CHANGES);
    html! {
        @if list.is_empty() {
            p data-testid="compare-same" { "Same value." }
        } @else {
            ul.diff data-testid="compare-diff" {
                @for change in &list { (change_row(change)) }
            }
            @if truncated { p.muted { "Only the first " (MAX_CHANGES) " changes are listed." } }
            details { summary { "Both values" } (json_block(&b)) (json_block(&a)) }
        }
    }
}

fn change_row(change: &Change) -> Markup {
    let short = |v: &Json| strip_ansi(&v.to_string());
    match change {
        Change::Changed { path, from, to } => html! {
            li.changed data-testid="diff-change" { code { (path) } " " del { (short(from)) } " → " ins { (short(to)) } }
        },
        Change::Added { path, value } => html! {
            li.added data-testid="diff-change" { code { (path) } " added " ins { (short(value)) } }
        },
        Change::Removed { path, value } => html! {
            li.removed data-testid="diff-change" { code { (path) } " removed " del { (short(value)) } }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ui_compare_diff_walks_objects_and_arrays() {
        let a = json!({"n": 1, "items": [1, 2, 3], "keep": "x", "old": true, "odd key": 1});
        let b = json!({"n": 2, "items": [1, 5], "keep": "x", "new": null, "odd key": 2});
        let (changes, truncated) = diff(&a, &b, 10);
        assert!(!truncated);
        assert_eq!(
            changes,
            vec![
                Change::Changed {
                    path: "$.items[1]".into(),
                    from: json!(2),
                    to: json!(5)
                },
                Change::Removed {
                    path: "$.items[2]".into(),
                    value: json!(3)
                },
                Change::Changed {
                    path: "$.n".into(),
                    from: json!(1),
                    to: json!(2)
                },
                Change::Changed {
                    path: "$[\"odd key\"]".into(),
                    from: json!(1),
                    to: json!(2)
                },
                Change::Removed {
                    path: "$.old".into(),
                    value: json!(true)
                },
                Change::Added {
                    path: "$.new".into(),
                    value: json!(null)
                },
            ],
            "keys in order, then the added ones"
        );
        assert_eq!(diff(&a, &a, 10), (vec![], false));
        let (whole, _) = diff(&json!(1), &json!("1"), 10);
        assert_eq!(whole.len(), 1, "different types change as a whole");
    }

    #[test]
    fn ui_compare_diff_is_bounded() {
        let a = Json::Array((0..100).map(|i| json!(i)).collect());
        let b = Json::Array((0..100).map(|i| json!(i + 1)).collect());
        let (changes, truncated) = diff(&a, &b, 5);
        assert_eq!(changes.len(), 5);
        assert!(truncated);
    }
}
