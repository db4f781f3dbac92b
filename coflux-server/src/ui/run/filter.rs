//! The graph tab's status filter (`show=`): `active` hides completed steps, a status name
//! keeps the steps with that status; the graph keeps their callers too, so every kept step
//! stays attached to the run's root.

use std::collections::HashMap;

use coflux_core::api::{ExecutionView, StepView};
use coflux_core::model::StepId;
use maud::{Markup, html};

use super::RunCtx;
use crate::ui::page::execution_status;

/// Keeps the steps matching `show` (`active`: not ended; else a status name) and, in the
/// graph, their callers (so each kept step stays attached to the root).
pub(crate) fn filtered<'a>(
    steps: Vec<(&'a StepView, &'a ExecutionView)>,
    show: &str,
    with_callers: bool,
) -> Vec<(&'a StepView, &'a ExecutionView)> {
    let matches = |e: &ExecutionView| match show {
        "active" => e.result.is_none(),
        status => execution_status(e) == status,
    };
    let index: HashMap<StepId, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.id, i))
        .collect();
    let mut keep = vec![false; steps.len()];
    for (i, (_, e)) in steps.iter().enumerate() {
        if !matches(e) || keep[i] {
            continue;
        }
        keep[i] = true;
        let mut at = i;
        let caller = |at: usize| steps[at].0.parent.and_then(|p| index.get(&p.step)).copied();
        while let Some(p) = caller(at).filter(|p| with_callers && !keep[*p]) {
            keep[p] = true;
            at = p;
        }
    }
    steps
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(s, _)| s)
        .collect()
}

/// The status filters offered: (value, label).
pub(crate) const SHOWS: [(&str, &str); 4] = [
    ("active", "hide completed"),
    ("error", "errors"),
    ("cached", "cache hits"),
    ("running", "running"),
];

/// The filter's links, and how many steps it keeps.
pub(crate) fn toolbar(ctx: &RunCtx, show: Option<&str>, kept: usize, total: usize) -> Markup {
    html! {
        div.toolbar data-testid="graph-filter" {
            span.muted { "Show: " }
            @if show.is_none() { strong { "all" } } @else { a href=(ctx.href(&[("show", None)])) { "all" } }
            @for (value, label) in SHOWS {
                " · "
                @if show == Some(value) { strong { (label) } }
                @else { a href=(ctx.href(&[("show", Some(value))])) data-testid={ "show-" (value) } { (label) } }
            }
            @if show.is_some() { span.muted data-testid="shown-count" { " (" (kept) " of " (total) " steps)" } }
        }
    }
}
