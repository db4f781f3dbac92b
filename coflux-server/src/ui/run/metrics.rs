//! The metrics tab: the run's metrics (from the log database, as `GET …/runs/{r}/metrics`
//! answers them), each series drawn on the server as an SVG polyline (x = `at`, y = value,
//! with its bounds), progress metrics as bars. SVG attributes only (the CSP forbids styles).

use coflux_core::model::ExecutionId;
use maud::{Markup, html};

use super::RunCtx;
use crate::logs::LogStore;
use crate::logs::metrics::{MetricPoint, MetricSeries};
use crate::ui::UiError;

/// Chart size, in pixels.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 120.0;
/// Progress bar width.
const BAR: f64 = 320.0;

/// The polyline's points (`x,y …`) of a series scaled into the chart, y up; `None` when empty.
pub(crate) fn polyline(points: &[MetricPoint]) -> Option<(String, f64, f64)> {
    let first = points.first()?;
    let (mut x0, mut x1, mut y0, mut y1) = (first.at, first.at, first.value, first.value);
    for p in points {
        x0 = x0.min(p.at);
        x1 = x1.max(p.at);
        y0 = y0.min(p.value);
        y1 = y1.max(p.value);
    }
    let sx = if x1 > x0 { WIDTH / (x1 - x0) } else { 0.0 };
    let sy = if y1 > y0 { HEIGHT / (y1 - y0) } else { 0.0 };
    let coords: Vec<String> = points
        .iter()
        .filter(|p| p.at.is_finite() && p.value.is_finite())
        .map(|p| {
            let x = if sx > 0.0 {
                (p.at - x0) * sx
            } else {
                WIDTH / 2.0
            };
            let y = HEIGHT
                - if sy > 0.0 {
                    (p.value - y0) * sy
                } else {
                    HEIGHT / 2.0
                };
            format!("{x:.1},{y:.1}")
        })
        .collect();
    Some((coords.join(" "), y0, y1))
}

/// A progress metric's fraction done (last value over its `upper`, clamped to 0..=1).
fn progress(series: &MetricSeries) -> Option<(f64, f64, f64)> {
    let definition = series.definition.as_ref()?;
    if definition.get("progress").and_then(|p| p.as_bool()) != Some(true) {
        return None;
    }
    let last = series.points.last().map_or(0.0, |p| p.value);
    let upper = definition
        .get("upper")
        .and_then(|u| u.as_f64())
        .filter(|u| *u > 0.0);
    let fraction = upper.map_or(0.0, |u| (last / u).clamp(0.0, 1.0));
    Some((fraction, last, upper.unwrap_or(0.0)))
}

fn series_view(series: &MetricSeries) -> Markup {
    if let Some((fraction, last, upper)) = progress(series) {
        return html! {
            div.metric data-testid="metric-progress" data-key=(series.key) {
                span.mono { (series.key) } " "
                svg.progress width=(BAR) height="12" viewBox={ "0 0 " (BAR) " 12" } role="img" {
                    rect.track x="0" y="0" width=(BAR) height="12" {}
                    rect.done x="0" y="0" width=(format!("{:.1}", BAR * fraction)) height="12" {}
                }
                " " span.muted { (last) @if upper > 0.0 { " / " (upper) } }
            }
        };
    }
    html! {
        div.metric data-testid="metric-series" data-key=(series.key) {
            span.mono { (series.key) } " " span.muted { (series.points.len()) " points" }
            @if let Some((points, low, high)) = polyline(&series.points) {
                div.chart {
                    svg width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" {
                        polyline.series data-testid="metric-line" points=(points) {}
                    }
                    div.muted { "min " (low) " · max " (high) }
                }
            }
        }
    }
}

/// The tab's content.
pub(crate) async fn render(ctx: &RunCtx<'_>, logs: &LogStore) -> Result<Markup, UiError> {
    let metrics = logs.query_metrics(ctx.project, ctx.view.id, None).await?;
    Ok(html! {
        @if metrics.executions.iter().all(|e| e.metrics.is_empty()) {
            p.empty data-testid="metrics-empty" { "No metrics recorded." }
        }
        @if metrics.truncated {
            p.warning data-testid="metrics-truncated" { "Only the first points are shown." }
        }
        @for execution in metrics.executions.iter().filter(|e| !e.metrics.is_empty()) {
            @let id = execution.execution_id.parse::<ExecutionId>().ok();
            section.metrics data-testid="metrics-execution" {
                h3 {
                    @if let Some(id) = id {
                        a href=(ctx.step_query(id.step)) {
                            span.mono { (ctx.view.step(id.step).map(|s| s.target.to_string()).unwrap_or_default()) }
                        }
                        " "
                    }
                    span.muted { (execution.execution_id) }
                }
                @for series in &execution.metrics { (series_view(series)) }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: f64, value: f64) -> MetricPoint {
        MetricPoint {
            at,
            value,
            timestamp: 0,
        }
    }

    #[test]
    fn ui_metric_series_scale_into_the_chart() {
        let (line, low, high) =
            polyline(&[point(0.0, 1.0), point(1.0, 3.0), point(2.0, 2.0)]).unwrap();
        assert_eq!(line, "0.0,120.0 240.0,0.0 480.0,60.0");
        assert_eq!((low, high), (1.0, 3.0));
        assert_eq!(polyline(&[point(5.0, 5.0)]).unwrap().0, "240.0,60.0");
        assert!(polyline(&[]).is_none());
    }
}
