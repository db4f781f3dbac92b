//! `define_metric` and `metric` notifications → [`MetricEntry`]s for the host, as the Coflux
//! worker handles them: a point without `at` gets the seconds since the execution started, and
//! each metric is throttled to its definition's `throttle` points per second. A throttled
//! point is not lost outright: the latest one of a burst is held and sent when the interval
//! ends, so the last value recorded (e.g. `10/10` of a progress) always arrives.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use coflux_core::model::{ExecutionId, now_millis};
use coflux_core::protocol::agent::{Json, MetricEntry};
use coflux_core::protocol::executor::{DefineMetric, MetricParams};
use coflux_core::sdk::MetricDefinition;

use super::host::ExecutorHost;

/// The metrics of one execution: which it is, when it started, and each key's throttle.
pub(crate) struct ExecutionMetrics {
    execution: ExecutionId,
    started: Instant,
    keys: RefCell<HashMap<String, KeyState>>,
}

impl ExecutionMetrics {
    /// The metrics of an execution starting now.
    pub(crate) fn new(execution: ExecutionId) -> Rc<Self> {
        Rc::new(Self {
            execution,
            started: Instant::now(),
            keys: RefCell::default(),
        })
    }
}

#[derive(Default)]
struct KeyState {
    /// The least time between two points sent (`None`: unthrottled).
    interval: Option<Duration>,
    last_sent: Option<Instant>,
    /// The latest point of a burst, sent when the interval ends.
    held: Option<Point>,
}

#[derive(Clone, Copy)]
struct Point {
    value: f64,
    at: f64,
    timestamp_ms: u64,
}

/// Forwards a definition and sets the metric's throttle.
pub(crate) fn define(
    host: &Rc<dyn ExecutorHost>,
    metrics: &ExecutionMetrics,
    params: DefineMetric,
) {
    let throttle = serde_json::from_value::<MetricDefinition>(params.definition.clone())
        .ok()
        .and_then(|d| d.throttle)
        .filter(|t| t.is_finite() && *t > 0.0);
    metrics
        .keys
        .borrow_mut()
        .entry(params.key.clone())
        .or_default()
        .interval = throttle.map(|t| Duration::from_secs_f64(1.0 / t));
    host.metric(MetricEntry::Define {
        execution: metrics.execution,
        key: params.key,
        definition: Json(params.definition.to_string()),
    });
}

/// Forwards a point now, or holds it until its metric's throttle interval ends.
pub(crate) fn record(
    host: &Rc<dyn ExecutorHost>,
    metrics: &Rc<ExecutionMetrics>,
    params: MetricParams,
) {
    let now = Instant::now();
    let point = Point {
        value: params.value,
        at: params
            .at
            .unwrap_or_else(|| now.duration_since(metrics.started).as_secs_f64()),
        timestamp_ms: u64::try_from(now_millis()).unwrap_or(0),
    };
    let action = {
        let mut keys = metrics.keys.borrow_mut();
        let state = keys.entry(params.key.clone()).or_default();
        let due = match (state.interval, state.last_sent) {
            (Some(interval), Some(last)) => (last + interval).checked_duration_since(now),
            _ => None,
        };
        if state.held.is_some() {
            // The running timer sends this one instead of the one held so far.
            state.held = Some(point);
            Action::Nothing
        } else if let Some(wait) = due {
            state.held = Some(point);
            Action::SendLater(wait)
        } else {
            state.last_sent = Some(now);
            Action::Send
        }
    };
    match action {
        Action::Nothing => {}
        Action::Send => send(host, metrics, &params.key, point),
        Action::SendLater(wait) => {
            let (host, metrics, key) = (Rc::clone(host), Rc::clone(metrics), params.key);
            actix_rt::spawn(async move {
                actix_rt::time::sleep(wait).await;
                let held = {
                    let mut keys = metrics.keys.borrow_mut();
                    let state = keys.entry(key.clone()).or_default();
                    state.last_sent = Some(Instant::now());
                    state.held.take()
                };
                if let Some(point) = held {
                    send(&host, &metrics, &key, point);
                }
            });
        }
    }
}

enum Action {
    Nothing,
    Send,
    SendLater(Duration),
}

fn send(host: &Rc<dyn ExecutorHost>, metrics: &ExecutionMetrics, key: &str, point: Point) {
    host.metric(MetricEntry::Point {
        execution: metrics.execution,
        key: key.to_owned(),
        value: point.value,
        at: point.at,
        timestamp_ms: point.timestamp_ms,
    });
}
