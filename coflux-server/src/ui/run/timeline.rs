//! The timeline tab: one row per execution, in creation order, with a queued bar (created →
//! assigned) and a running bar (assigned → finished) coloured by outcome; active executions
//! end at "now". Drawn as SVG (attributes, no inline styles). With `view=agent` the rows are
//! grouped by the worker (agent session) that ran them.

use coflux_core::api::ExecutionView;
use coflux_core::model::{Millis, now_millis};
use maud::{Markup, html};

use super::RunCtx;
use crate::ui::page::{execution_status, format_duration};

/// Width of the bar area, in pixels.
pub const BARS_WIDTH: f64 = 760.0;
/// Width of the label column.
const LABEL_WIDTH: f64 = 240.0;
/// Height of a row.
const ROW: f64 = 22.0;
/// Rows drawn at most.
const MAX_ROWS: usize = 1_000;

/// Maps times onto `[0, width]` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    start: Millis,
    span: Millis,
    width: f64,
}

impl Scale {
    /// A scale from `start` to `end` (an empty span counts as one millisecond).
    pub fn new(start: Millis, end: Millis, width: f64) -> Self {
        Self {
            start,
            span: (end - start).max(1),
            width,
        }
    }

    /// The x of a time, clamped to the scale.
    pub fn x(&self, t: Millis) -> f64 {
        let offset = (t - self.start).clamp(0, self.span);
        offset as f64 / self.span as f64 * self.width
    }
}

/// An execution's bars: `(x, width)` of the queued part and of the running part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Created → assigned (or → ended/now if never assigned).
    pub queued: (f64, f64),
    /// Assigned → finished (or → now).
    pub running: Option<(f64, f64)>,
}

impl Bar {
    /// The bars of an execution created at `created`, assigned at `assigned`, ended at
    /// `finished`, seen at `now`. Every drawn part is at least one pixel wide.
    pub fn new(
        scale: &Scale,
        created: Millis,
        assigned: Option<Millis>,
        finished: Option<Millis>,
        now: Millis,
    ) -> Self {
        let end = finished.unwrap_or(now);
        let part = |a: Millis, b: Millis| {
            let (x1, x2) = (scale.x(a), scale.x(b.max(a)));
            (x1, (x2 - x1).max(1.0))
        };
        Self {
            queued: part(created, assigned.unwrap_or(end)),
            running: assigned.map(|a| part(a, end)),
        }
    }
}

/// Renders the tab.
pub(crate) fn render(ctx: &RunCtx) -> Markup {
    let now = now_millis();
    let mut rows: Vec<(&coflux_core::api::StepView, &ExecutionView)> = ctx
        .view
        .steps
        .iter()
        .flat_map(|s| s.executions.iter().map(move |e| (s, e)))
        .collect();
    let by_agent = ctx.q.view.as_deref() == Some("agent");
    if by_agent {
        // Unassigned executions last.
        rows.sort_by_key(|(s, e)| {
            (
                e.worker.is_none(),
                e.worker,
                e.created_at,
                s.id,
                e.id.attempt,
            )
        });
    } else {
        rows.sort_by_key(|(s, e)| (e.created_at, s.id, e.id.attempt));
    }
    let total = rows.len();
    rows.truncate(MAX_ROWS);
    let start = rows
        .iter()
        .map(|(_, e)| e.created_at)
        .min()
        .unwrap_or(ctx.view.created_at);
    let end = rows
        .iter()
        .map(|(_, e)| e.finished_at.unwrap_or(now))
        .max()
        .unwrap_or(start);
    let scale = Scale::new(start, end, BARS_WIDTH);
    // The axis is at the top (long timelines scroll).
    let axis = 18.0;
    let height = ROW * rows.len() as f64 + axis + 4.0;
    let width = LABEL_WIDTH + BARS_WIDTH + 20.0;
    let ticks = 5;
    html! {
        div.toolbar {
            @if by_agent {
                a data-testid="timeline-by-time" href=(ctx.href(&[("view", None)])) { "In time order" }
            } @else {
                a data-testid="timeline-by-agent" href=(ctx.href(&[("view", Some("agent"))])) { "By agent" }
            }
        }
        div.timeline-frame data-testid="timeline" {
            svg.timeline xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
                viewBox={ "0 0 " (width) " " (height) } {
                @for i in 0..=ticks {
                    @let x = LABEL_WIDTH + BARS_WIDTH * f64::from(i) / f64::from(ticks);
                    line.tick x1=(x) x2=(x) y1=(axis - 4.0) y2=(height) {}
                    text.axis x=(x) y="10" text-anchor="middle" {
                        "+" (format_duration((end - start) * i64::from(i) / i64::from(ticks))) }
                }
                @for (row, (step, e)) in rows.iter().enumerate() {
                    @let y = axis + ROW * row as f64;
                    @let bar = Bar::new(&scale, e.created_at, e.assigned_at, e.finished_at, now);
                    @let status = execution_status(e);
                    a href=(ctx.href(&[("step", Some(&step.id.to_string())), ("attempt", Some(&e.id.attempt.to_string()))]))
                        data-testid="timeline-row" data-execution=(e.id) data-worker=[e.worker] {
                        g class={ "trow st-" (status) } transform={ "translate(0 " (y) ")" } {
                            title { (step.target) " · " (e.id) " · " (status)
                                @if let Some(w) = e.worker { " · worker " (w) } }
                            text.label x="4" y="15" { (label(step, e))
                                @if let (true, Some(w)) = (by_agent, e.worker) { " · " (w) } }
                            rect.queued x=(LABEL_WIDTH + bar.queued.0) y="5" width=(bar.queued.1) height="12" {}
                            @if let Some((x, w)) = bar.running {
                                rect.running x=(LABEL_WIDTH + x) y="3" width=(w) height="16" rx="2" {}
                            }
                        }
                    }
                }
            }
            @if total > rows.len() {
                p.muted { "Showing the first " (rows.len()) " of " (total) " executions." }
            }
        }
    }
}

fn label(step: &coflux_core::api::StepView, e: &ExecutionView) -> String {
    let name: String = step.target.name.chars().take(24).collect();
    if step.executions.len() > 1 {
        format!("{name} #{}", e.id.attempt)
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_timeline_scale_maps_and_clamps() {
        let scale = Scale::new(1_000, 2_000, 500.0);
        assert_eq!(scale.x(1_000), 0.0);
        assert_eq!(scale.x(1_500), 250.0);
        assert_eq!(scale.x(2_000), 500.0);
        assert_eq!(scale.x(500), 0.0);
        assert_eq!(scale.x(9_000), 500.0);
        // An empty span does not divide by zero.
        assert_eq!(Scale::new(5, 5, 100.0).x(5), 0.0);
    }

    #[test]
    fn ui_timeline_bars_follow_queued_running_done() {
        let scale = Scale::new(0, 1_000, 1_000.0);
        let done = Bar::new(&scale, 100, Some(300), Some(800), 2_000);
        assert_eq!(done.queued, (100.0, 200.0));
        assert_eq!(done.running, Some((300.0, 500.0)));
        // Still running: the bar ends at now.
        let running = Bar::new(&scale, 0, Some(200), None, 600);
        assert_eq!(running.running, Some((200.0, 400.0)));
        // Never assigned (e.g. cancelled while queued): only a queued bar, to its end.
        let queued = Bar::new(&scale, 400, None, Some(900), 950);
        assert_eq!(
            queued,
            Bar {
                queued: (400.0, 500.0),
                running: None
            }
        );
        // Instant parts are still one pixel wide.
        let instant = Bar::new(&scale, 500, Some(500), Some(500), 500);
        assert_eq!(instant.queued, (500.0, 1.0));
        assert_eq!(instant.running, Some((500.0, 1.0)));
    }
}
