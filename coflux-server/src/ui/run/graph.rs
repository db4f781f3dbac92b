//! The graph tab: the run's steps laid out by [`crate::ui::layout`] and drawn as SVG (positions
//! are SVG attributes, not styles, so the strict CSP holds). Each step shows one attempt (the
//! latest, or the selected one); children of other attempts are hidden. Fan-outs of more than
//! [`GROUP_THRESHOLD`] siblings calling the same target collapse into one group node with
//! per-status counts. Above [`LIST_THRESHOLD`] nodes the tab shows a list unless asked.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use coflux_core::api::{ExecutionView, StepView};
use coflux_core::model::{ExecutionId, StepId};
use maud::{Markup, html};

use super::RunCtx;
use crate::ui::layout::{EdgeKind, LayoutInput, NODE_HEIGHT, NODE_WIDTH, layout};
use crate::ui::page::{badge, elapsed, execution_status};

/// Siblings (same caller, same target) beyond this many are drawn as one group.
pub const GROUP_THRESHOLD: usize = 50;
/// Above this many nodes, the graph tab defaults to the list view.
pub const LIST_THRESHOLD: usize = 2_000;
/// Rows per page of the list view.
const LIST_PAGE: usize = 500;

/// A node of the drawn graph: one item, or a group of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// One item, by index.
    Single(usize),
    /// Several items (indexes in order), drawn as one node at the first one's place.
    Group(Vec<usize>),
}

/// Collapses items sharing a key into groups when more than `threshold` share it; items
/// without a key stay single. Slots keep the order of their first item.
pub fn group_siblings<K: Eq + Hash>(keys: &[Option<K>], threshold: usize) -> Vec<Slot> {
    let mut counts: HashMap<&K, usize> = HashMap::new();
    for key in keys.iter().flatten() {
        *counts.entry(key).or_default() += 1;
    }
    let mut slots = Vec::new();
    let mut group_of: HashMap<&K, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        match key {
            Some(k) if counts[k] > threshold => match group_of.get(k) {
                Some(&slot) => {
                    if let Slot::Group(members) = &mut slots[slot] {
                        members.push(i);
                    }
                }
                None => {
                    group_of.insert(k, slots.len());
                    slots.push(Slot::Group(vec![i]));
                }
            },
            _ => slots.push(Slot::Single(i)),
        }
    }
    slots
}

/// The steps drawn, each with its shown attempt.
pub(crate) fn visible<'a>(ctx: &RunCtx<'a>) -> Vec<(&'a StepView, &'a ExecutionView)> {
    let mut shown: HashMap<StepId, ExecutionId> = HashMap::new();
    let mut out = Vec::new();
    for step in &ctx.view.steps {
        let execution = match ctx.selected {
            Some((s, e)) if s.id == step.id => Some(e),
            _ => step.executions.last(),
        };
        let Some(execution) = execution else { continue };
        let drawn = match step.parent {
            Some(parent) if parent.run() == ctx.view.id && step.id.number != 1 => {
                shown.get(&parent.step) == Some(&parent)
            }
            _ => true,
        };
        if drawn {
            shown.insert(step.id, execution.id);
            out.push((step, execution));
        }
    }
    out
}

/// Renders the tab: the graph, or the list above the threshold (or when asked).
pub(crate) fn render(ctx: &RunCtx) -> Markup {
    let steps = visible(ctx);
    let keys: Vec<Option<(ExecutionId, &str, &str)>> = steps
        .iter()
        .map(|(s, _)| {
            s.parent
                .map(|p| (p, s.target.module.as_str(), s.target.name.as_str()))
        })
        .collect();
    let slots = group_siblings(&keys, GROUP_THRESHOLD);
    let list = match ctx.q.view.as_deref() {
        Some("list") => true,
        Some("graph") => false,
        _ => slots.len() > LIST_THRESHOLD,
    };
    let switch = html! {
        div.toolbar {
            @if list {
                a data-testid="show-graph" href=(ctx.href(&[("view", Some("graph"))])) { "Draw graph" }
                @if slots.len() > LIST_THRESHOLD { span.muted { " (" (slots.len()) " nodes)" } }
            } @else {
                a data-testid="show-list" href=(ctx.href(&[("view", Some("list"))])) { "List view" }
                span.muted.hint { "Drag to pan, scroll to zoom, double-click to fit." }
            }
        }
    };
    html! {
        (switch)
        @if list { (step_list(ctx, &steps)) } @else { (draw(ctx, &steps, &slots)) }
    }
}

fn draw(ctx: &RunCtx, steps: &[(&StepView, &ExecutionView)], slots: &[Slot]) -> Markup {
    // Which slot each step is drawn in.
    let mut slot_of: HashMap<StepId, usize> = HashMap::new();
    for (index, slot) in slots.iter().enumerate() {
        match slot {
            Slot::Single(i) => {
                slot_of.insert(steps[*i].0.id, index);
            }
            Slot::Group(members) => {
                for i in members {
                    slot_of.insert(steps[*i].0.id, index);
                }
            }
        }
    }
    let mut input = LayoutInput::default();
    for slot in slots {
        let first = match slot {
            Slot::Single(i) => *i,
            Slot::Group(members) => members[0],
        };
        let from: Vec<(usize, EdgeKind)> = steps[first]
            .0
            .parent
            .and_then(|p| slot_of.get(&p.step))
            .map(|&s| vec![(s, EdgeKind::Child)])
            .unwrap_or_default();
        input.node(&from);
    }
    let placed = layout(&input);
    let selected = ctx.selected.map(|(s, _)| s.id);
    html! {
        div.graph-frame data-testid="graph" {
            svg.graph xmlns="http://www.w3.org/2000/svg" width=(placed.width) height=(placed.height)
                data-width=(placed.width) data-height=(placed.height) {
                g.viewport {
                    @for edge in &placed.edges {
                        path class={ "edge " @if edge.kind == EdgeKind::Child { "child" } @else { "dependency" } }
                            d=(edge.path) {}
                    }
                    @for (index, slot) in slots.iter().enumerate() {
                        @let node = placed.nodes[index];
                        @match slot {
                            Slot::Single(i) => {
                                @let (step, execution) = steps[*i];
                                (step_node(ctx, step, execution, node.x, node.y, selected == Some(step.id)))
                            }
                            Slot::Group(members) => {
                                (group_node(ctx, steps, members, node.x, node.y))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn step_node(
    ctx: &RunCtx,
    step: &StepView,
    execution: &ExecutionView,
    x: u32,
    y: u32,
    selected: bool,
) -> Markup {
    let status = execution_status(execution);
    let attempts = step.executions.len();
    let other_env = execution.environment != ctx.view.environment;
    let root = step.id.number == 1;
    html! {
        a href=(ctx.step_href(step.id)) data-testid="graph-node" data-step=(step.id) data-status=(status) {
            g class={ "node st-" (status) @if selected { " selected" } @if root { " root" } }
                transform={ "translate(" (x) " " (y) ")" } {
                @if attempts > 1 {
                    rect.stack x="4" y="4" width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                }
                rect.box width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                title { (step.target) " · " (step.id) " · " (status) }
                text.module x="10" y="19" { (clip(&step.target.module, 20)) " /" }
                text.target x="10" y="37" { (clip(&step.target.name, 19)) }
                @if attempts > 1 {
                    text.tag x=(NODE_WIDTH - 8) y="15" text-anchor="end" data-testid="attempts-badge" { "×" (attempts) }
                }
                @if status == "cached" {
                    text.tag x=(NODE_WIDTH - 8) y="44" text-anchor="end" data-testid="cached-badge" { "cached" }
                } @else if other_env {
                    text.tag.env x=(NODE_WIDTH - 8) y="44" text-anchor="end" data-testid="env-badge" {
                        (clip(&execution.environment, 10)) }
                }
            }
        }
    }
}

fn group_node(
    ctx: &RunCtx,
    steps: &[(&StepView, &ExecutionView)],
    members: &[usize],
    x: u32,
    y: u32,
) -> Markup {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in members {
        *counts.entry(execution_status(steps[*i].1)).or_default() += 1;
    }
    let target = &steps[members[0]].0.target;
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let worst = ["error", "running", "queued", "value"]
        .into_iter()
        .find(|s| counts.contains_key(s))
        .unwrap_or("group");
    html! {
        a href=(ctx.href(&[("view", Some("list"))])) data-testid="graph-group" data-count=(members.len()) {
            g class={ "node group st-" (worst) } transform={ "translate(" (x) " " (y) ")" } {
                rect.stack x="6" y="6" width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                rect.stack x="3" y="3" width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                rect.box width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                title { (target) " × " (members.len()) ": " (summary.join(", ")) }
                text.target x="10" y="19" { (clip(&target.name, 14)) " ×" (members.len()) }
                text.counts x="10" y="38" {
                    @for (status, n) in &counts {
                        tspan class={ "c-" (status) } { (n) " " (short(status)) " " }
                    }
                }
            }
        }
    }
}

/// The list view: one row per drawn step, paged.
fn step_list(ctx: &RunCtx, steps: &[(&StepView, &ExecutionView)]) -> Markup {
    let from: usize = ctx
        .q
        .from
        .as_deref()
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
        .min(steps.len());
    let end = (from + LIST_PAGE).min(steps.len());
    let next = (end < steps.len()).then(|| end.to_string());
    html! {
        table.steps data-testid="step-list" {
            thead { tr { th { "Step" } th { "Target" } th { "Status" } th { "Attempts" }
                th { "Environment" } th { "Duration" } } }
            tbody {
                @for (step, e) in &steps[from..end] {
                    tr data-testid="step-row" {
                        td { a href=(ctx.step_href(step.id)) { (step.id) } }
                        td.mono { (step.target) }
                        td { (badge(execution_status(e))) }
                        td { (step.executions.len()) }
                        td { (e.environment) }
                        td { @if let Some(a) = e.assigned_at { (elapsed(a, e.finished_at)) } }
                    }
                }
            }
        }
        p.muted { "Steps " (from + 1) "–" (end) " of " (steps.len()) " "
            @if let Some(n) = next { a href=(ctx.href(&[("view", Some("list")), ("from", Some(&n))])) { "Next →" } } }
    }
}

fn short(status: &str) -> &str {
    match status {
        "value" => "ok",
        "error" => "err",
        "running" => "run",
        "queued" => "q",
        other => other,
    }
}

/// Shortens text to `max` characters with an ellipsis.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_graph_fan_outs_above_the_threshold_collapse() {
        // root, then 60 calls of `a` from the root interleaved with 3 calls of `b`.
        let mut keys: Vec<Option<(u32, &str)>> = vec![None];
        for i in 0..60 {
            keys.push(Some((1, "a")));
            if i % 20 == 0 {
                keys.push(Some((1, "b")));
            }
        }
        let slots = group_siblings(&keys, 50);
        assert_eq!(slots.len(), 1 + 1 + 3);
        assert_eq!(slots[0], Slot::Single(0));
        let Slot::Group(members) = &slots[1] else {
            panic!("expected a group, got {:?}", slots[1]);
        };
        assert_eq!(members.len(), 60);
        assert_eq!(members[0], 1);
        assert!(members.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(slots[2], Slot::Single(2));
    }

    #[test]
    fn ui_graph_small_fan_outs_and_other_callers_stay_single() {
        // 50 calls (not more than the threshold) and 60 calls from two different callers.
        let mut keys: Vec<Option<(u32, &str)>> = (0..50).map(|_| Some((1, "a"))).collect();
        keys.extend((0..60).map(|i| Some((2 + i % 2, "a"))));
        let slots = group_siblings(&keys, 50);
        assert_eq!(slots.len(), 110);
        assert!(slots.iter().all(|s| matches!(s, Slot::Single(_))));
        let grouped = group_siblings(&keys, 29);
        assert_eq!(
            grouped
                .iter()
                .filter(|s| matches!(s, Slot::Group(_)))
                .count(),
            3
        );
    }

    #[test]
    fn ui_graph_labels_are_clipped() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a_very_long_target_name", 10), "a_very_lo…");
    }
}
