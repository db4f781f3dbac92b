//! Long fan-outs in a run's tree: [`COLLAPSE_AT`] or more consecutive sibling steps calling the
//! same target are drawn as one line with per-outcome counts
//! (`R1:2..R1:1001 m/square ×1000: 998 ✓, 2 ✗`); `--all` draws every step.

use coflux_core::protocol::http::{Execution, Step};

/// Consecutive calls of one target from one parent at which the tree collapses them.
pub const COLLAPSE_AT: usize = 10;

/// One entry among a step's children: a step, or a run of steps calling one target.
pub enum Entry<'a> {
    /// Drawn as usual.
    Step(&'a Step),
    /// Drawn as one line.
    Group(&'a [&'a Step]),
}

/// `children` with long runs of calls to one target grouped (unless `all`).
pub fn entries<'a>(children: &'a [&'a Step], all: bool) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < children.len() {
        let same = |s: &Step| s.module == children[i].module && s.target == children[i].target;
        let n = children[i..].iter().take_while(|s| same(s)).count();
        if !all && n >= COLLAPSE_AT {
            out.push(Entry::Group(&children[i..i + n]));
        } else {
            out.extend(children[i..i + n].iter().map(|s| Entry::Step(s)));
        }
        i += n;
    }
    out
}

/// The symbol of a step's outcome (its latest execution).
fn symbol(execution: Option<&Execution>) -> &'static str {
    let Some(e) = execution else { return "○" };
    match e.result.as_ref().map(|r| r.kind.as_str()) {
        None if e.state == "queued" => "○",
        None => "◐",
        Some("value") => "✓",
        Some("error" | "abandoned" | "crashed" | "timeout") => "✗",
        Some("cancelled") => "⊘",
        Some(_) => "↪",
    }
}

/// The one line of a group: `R1:2..R1:1001 m/square ×1000: 998 ✓, 2 ✗`.
pub fn group_line(steps: &[&Step]) -> String {
    let (first, last) = (steps[0], steps[steps.len() - 1]);
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for step in steps {
        let s = symbol(step.executions.last());
        match counts.iter_mut().find(|(c, _)| *c == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    let order = ["✓", "✗", "◐", "○", "⊘", "↪"];
    counts.sort_by_key(|(s, _)| order.iter().position(|o| o == s));
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!(
        "{}..{} {}/{} ×{}: {}",
        first.step_id,
        last.step_id,
        first.module,
        first.target,
        steps.len(),
        counts.join(", ")
    )
}
