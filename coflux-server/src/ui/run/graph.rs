//! The graph tab: the run's steps laid out by [`crate::ui::layout`] and drawn as SVG (positions
//! are SVG attributes, not styles, so the strict CSP holds). Each step shows one attempt (the
//! latest, or the selected one); children of other attempts are hidden. Fan-outs of more than
//! [`GROUP_THRESHOLD`] siblings calling the same target collapse into one group node with
//! per-status counts. Above [`LIST_THRESHOLD`] nodes the tab shows a list unless asked.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use coflux_core::api::{ExecutionView, StepView};
use coflux_core::model::{ExecutionId, ExecutionResult, StepId};
use maud::{Markup, html};

use super::RunCtx;
use crate::ui::layout::{EdgeKind, LayoutInput, NODE_WIDTH, layout};
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
    let show = ctx.q.show.as_deref().filter(|s| !s.is_empty());
    let all = visible(ctx);
    let total = all.len();
    let list_asked = ctx.q.view.as_deref() == Some("list");
    let steps = match show {
        Some(show) => super::filter::filtered(all, show, !list_asked),
        None => all,
    };
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
        (super::filter::toolbar(ctx, show, steps.len(), total))
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
        let mut from: Vec<(usize, EdgeKind)> = steps[first]
            .0
            .parent
            .and_then(|p| slot_of.get(&p.step))
            .map(|&s| vec![(s, EdgeKind::Child)])
            .unwrap_or_default();
        // What its shown execution waited for (within this run's drawn steps).
        for dependency in &steps[first].1.dependencies {
            if let Some(&s) = slot_of.get(&dependency.step)
                && !from.contains(&(s, EdgeKind::Dependency))
            {
                from.push((s, EdgeKind::Dependency));
            }
        }
        input.node(&from);
    }
    let placed = layout(&input);
    let selected = ctx.selected.map(|(s, _)| s.id);
    html! {
        div.graph-frame data-testid="graph" {
            svg.graph xmlns="http://www.w3.org/2000/svg" width=(placed.width) height=(placed.height)
                data-width=(placed.width) data-height=(placed.height) {
                g.viewport {
                    // One path per edge kind keeps big graphs small.
                    @for (kind, class) in [(EdgeKind::Child, "edge child"), (EdgeKind::Dependency, "edge dependency")] {
                        @let d: String = placed.edges.iter().filter(|e| e.kind == kind).map(|e| e.path.as_str()).collect();
                        @if !d.is_empty() { path class=(class) data-testid="edges" d=(d) {} }
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
    let differs = ctx.differs(step.id);
    let memoised = !ctx.reused_by(execution.id).is_empty();
    let source = cache_source(execution);
    html! {
        // The link is the node: an SVG `a` takes a class and a transform.
        a class={ "node st-" (status) @if selected { " selected" } @if root { " root" } @if differs.is_some() { " differs" } }
            transform={ "translate(" (x) " " (y) ")" }
            href=(ctx.step_query(step.id)) data-testid="graph-node" data-step=(step.id)
            data-differs=[differs.map(|d| d.label())] data-source=[source] {
            @if differs.is_some() || source.is_some() || memoised {
                title {
                    @if let Some(s) = source { "cache hit: the result of " (s) " " }
                    @if memoised { "memoised: its result was reused " }
                    @if let Some(d) = differs { (d.label()) }
                }
            }
            @if attempts > 1 {
                rect.stack x="4" y="4" {}
            }
            rect {}
            text.module { (clip(&step.target.module, 20)) " /" }
            text.target { (clip(&step.target.name, 19)) }
            @if attempts > 1 {
                text.tag x=(NODE_WIDTH - 8) y="15" text-anchor="end" data-testid="attempts-badge" { "×" (attempts) }
            }
            @if status == "cached" {
                text.tag x=(NODE_WIDTH - 8) y="44" text-anchor="end" data-testid="cached-badge" { "cached" }
            } @else if memoised {
                text.tag x=(NODE_WIDTH - 8) y="44" text-anchor="end" data-testid="memo-badge" { "memo" }
            } @else if other_env {
                text.tag.env x=(NODE_WIDTH - 8) y="44" text-anchor="end" data-testid="env-badge" {
                    (clip(&execution.environment, 10)) }
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
    let differing = members
        .iter()
        .filter(|i| ctx.differs(steps[**i].0.id).is_some())
        .count();
    html! {
        a class={ "node group st-" (worst) @if differing > 0 { " differs" } }
            data-differs=[(differing > 0).then_some(differing)] transform={ "translate(" (x) " " (y) ")" }
            href=(ctx.href(&[("view", Some("list")), ("target", Some(&target.to_string())), ("from", None)]))
            data-testid="graph-group" data-count=(members.len()) {
            rect.stack x="6" y="6" {}
            rect.stack x="3" y="3" {}
            rect {}
            title { (target) " × " (members.len()) ": " (summary.join(", "))
                @if differing > 0 { " · " (differing) " differ" } }
            text.gname { (clip(&target.name, 14)) " ×" (members.len()) }
            text.counts {
                @for (status, n) in &counts {
                    tspan class={ "c-" (status) } { (n) " " (short(status)) " " }
                }
            }
        }
    }
}

/// The list view: one row per drawn step (of one target with `target=module/name`), paged.
fn step_list(ctx: &RunCtx, all: &[(&StepView, &ExecutionView)]) -> Markup {
    let target = ctx.q.target.as_deref().filter(|t| !t.is_empty());
    let steps: Vec<(&StepView, &ExecutionView)> = all
        .iter()
        .filter(|(s, _)| target.is_none_or(|t| s.target.to_string() == t))
        .copied()
        .collect();
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
        @if let Some(t) = target {
            p { "Steps calling " strong.mono { (t) } " · "
                a href=(ctx.href(&[("target", None), ("from", None)])) data-testid="all-steps" { "all steps" } }
        }
        table.steps data-testid="step-list" {
            thead { tr { th { "Step" } th { "Target" } th { "Status" } th { "Attempts" }
                th { "Environment" } th { "Duration" } th { "Reuse" } } }
            tbody {
                @for (step, e) in &steps[from..end] {
                    tr data-testid="step-row" class=[ctx.differs(step.id).map(|_| "differs")]
                        data-differs=[ctx.differs(step.id).map(|d| d.label())] {
                        td { a href=(ctx.step_href(step.id)) { (step.id) } }
                        td.mono { (step.target) }
                        td { (badge(execution_status(e))) }
                        td { (step.executions.len()) }
                        td { (e.environment) }
                        td { @if let Some(a) = e.assigned_at { (elapsed(a, e.finished_at)) } }
                        td {
                            @if let Some(s) = cache_source(e) {
                                span.tag data-testid="cached-badge" { "cached" } " " (ctx.execution_link(s))
                            }
                            @if !ctx.reused_by(e.id).is_empty() {
                                span.tag data-testid="memo-badge" { "memoised" }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "Steps " (from + 1) "–" (end) " of " (steps.len()) " "
            @if let Some(n) = next { a href=(ctx.href(&[("view", Some("list")), ("from", Some(&n))])) { "Next →" } } }
    }
}

/// The execution whose result a cache hit took.
fn cache_source(execution: &ExecutionView) -> Option<ExecutionId> {
    match execution.result {
        Some(ExecutionResult::Cached { successor }) => Some(successor),
        _ => None,
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
    use crate::ui::run::RunQuery;
    use coflux_core::api::RunView;
    use coflux_core::model::{
        ExecutionResult, ExecutionState, ResultKind, RunId, TargetKind, TargetRef, Value,
    };
    use serde_json::json;

    /// A finished run of `n` steps; step `i > 1` is called by `parent(i)` and calls `target(i)`.
    fn run(n: u32, parent: impl Fn(u32) -> u32, target: impl Fn(u32) -> String) -> RunView {
        let run = RunId(1);
        let steps = (1..=n)
            .map(|i| {
                let id = StepId { run, number: i };
                StepView {
                    id,
                    target: TargetRef::new("m", target(i)),
                    kind: if i == 1 {
                        TargetKind::Workflow
                    } else {
                        TargetKind::Task
                    },
                    parent: (i > 1).then(|| ExecutionId {
                        step: StepId {
                            run,
                            number: parent(i),
                        },
                        attempt: 1,
                    }),
                    arguments: Vec::new(),
                    checkpoints: Default::default(),
                    streams: Vec::new(),
                    inputs: Vec::new(),
                    cached: false,
                    cache_key: None,
                    options: Default::default(),
                    group: None,
                    executions: vec![ExecutionView {
                        id: ExecutionId {
                            step: id,
                            attempt: 1,
                        },
                        environment: "production".into(),
                        state: ExecutionState::Finished(ResultKind::Value),
                        created_at: 1_000 + i64::from(i),
                        assigned_at: Some(1_001 + i64::from(i)),
                        worker: None,
                        dependencies: Vec::new(),
                        input_dependencies: Vec::new(),
                        finished_at: Some(1_010 + i64::from(i)),
                        result: Some(ExecutionResult::Value {
                            value: Value::raw(json!(1)),
                        }),
                    }],
                }
            })
            .collect();
        RunView {
            id: run,
            environment: "production".into(),
            created_at: 1_000,
            parent: None,
            steps,
            spawned: Vec::new(),
            reused: Vec::new(),
        }
    }

    fn render_run(view: &RunView, q: &RunQuery) -> String {
        let ctx = RunCtx {
            compare: None,
            project: "p",
            view,
            environments: &[],
            q,
            selected: None,
        };
        render(&ctx).into_string()
    }

    #[test]
    fn ui_graph_draws_a_thousand_step_tree_within_budget() {
        // A tree: every step calls three, each a different target (nothing groups).
        let view = run(1_000, |i| (i - 2) / 3 + 1, |i| format!("t{i}"));
        let started = std::time::Instant::now();
        let html = render_run(&view, &RunQuery::default());
        let took = started.elapsed();
        assert_eq!(html.matches("data-testid=\"graph-node\"").count(), 1_000);
        assert_eq!(html.matches("class=\"edge child\"").count(), 1);
        assert_eq!(html.matches('C').count(), 999, "one curve per edge");
        assert!(html.len() < 250_000, "{} bytes", html.len());
        // Generous for an unoptimised build on a busy 2-core machine.
        assert!(took.as_millis() < 1_500, "rendering took {took:?}");
    }

    #[test]
    fn ui_graph_big_runs_default_to_the_list_and_fan_outs_group() {
        let many = run(2_500, |i| (i - 2) / 2 + 1, |i| format!("t{i}"));
        let html = render_run(&many, &RunQuery::default());
        assert!(html.contains("data-testid=\"step-list\""));
        assert!(!html.contains("data-testid=\"graph\""));
        assert_eq!(html.matches("data-testid=\"step-row\"").count(), LIST_PAGE);
        let forced = RunQuery {
            view: Some("graph".into()),
            ..RunQuery::default()
        };
        assert!(render_run(&many, &forced).contains("data-testid=\"graph\""));

        // A root calling one target 300 times: two nodes, the group counting 300.
        let fan = run(
            301,
            |_| 1,
            |i| if i == 1 { "root".into() } else { "leaf".into() },
        );
        let html = render_run(&fan, &RunQuery::default());
        assert_eq!(html.matches("data-testid=\"graph-node\"").count(), 1);
        assert!(html.contains("data-count=\"300\""));
        assert!(html.contains("300 ok"));
        let leaves = RunQuery {
            view: Some("list".into()),
            target: Some("m/leaf".into()),
            ..RunQuery::default()
        };
        let html = render_run(&fan, &leaves);
        assert_eq!(html.matches("data-testid=\"step-row\"").count(), 300);
    }

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
    fn ui_graph_node_size_in_css_matches_the_layout() {
        let css = std::str::from_utf8(crate::ui::assets::CSS.body).unwrap();
        let rule = format!(
            ".node rect {{ width: {NODE_WIDTH}px; height: {}px;",
            crate::ui::layout::NODE_HEIGHT
        );
        assert!(css.contains(&rule), "{rule}");
    }

    #[test]
    fn ui_graph_labels_are_clipped() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a_very_long_target_name", 10), "a_very_lo…");
    }
}
