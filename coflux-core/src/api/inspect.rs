//! Run inspection from the committed state: [`RunView`] with its steps and executions, and a
//! tree rendering for terminals.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;

use crate::model::{
    Checkpoints, Environment, EnvironmentId, ExecutionId, ExecutionResult, ExecutionState, InputId,
    Millis, RunId, StepId, StepOptions, TargetKind, TargetRef, Value, WorkerId, visible_from,
};
use crate::orchestration::OrchestrationError;
use crate::store::RunSummary;
use crate::store::location::StoreLocation;

use super::error::Error;

/// One execution as committed.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionView {
    /// Its id.
    pub id: ExecutionId,
    /// The environment it ran in.
    pub environment: String,
    /// Where it is in its life.
    pub state: ExecutionState,
    /// When it was created.
    pub created_at: Millis,
    /// When it was assigned to a worker.
    pub assigned_at: Option<Millis>,
    /// The worker (agent session or in-process worker) it was assigned to.
    pub worker: Option<WorkerId>,
    /// The executions it waited for before it could start (`wait_for`, referenced values).
    pub dependencies: Vec<ExecutionId>,
    /// The inputs it waited for before it could start (its predecessor suspended waiting for
    /// them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_dependencies: Vec<InputId>,
    /// When it ended.
    pub finished_at: Option<Millis>,
    /// How it ended.
    pub result: Option<ExecutionResult>,
}

/// One step as committed.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Its id.
    pub id: StepId,
    /// The target called.
    pub target: TargetRef,
    /// Workflow or task.
    pub kind: TargetKind,
    /// The execution that called it.
    pub parent: Option<ExecutionId>,
    /// Its arguments.
    pub arguments: Vec<Value>,
    /// Whether it has a cache key.
    pub cached: bool,
    /// Its cache key, when it has one.
    pub cache_key: Option<String>,
    /// Its options (cache, retries, memo, defer, requires, timeout, …) as resolved at the call.
    pub options: StepOptions,
    /// The group (`cf.group`) it was called in.
    pub group: Option<String>,
    /// Its executions visible in the chosen view, oldest first.
    pub executions: Vec<ExecutionView>,
    /// Its checkpoint state (`cf.Checkpoint`) per environment name, for the environments
    /// visible in the chosen view.
    pub checkpoints: BTreeMap<String, Checkpoints>,
    /// The streams it produced (`cf.stream`, generator tasks), by index.
    pub streams: Vec<StreamView>,
    /// The inputs (`cf.Prompt`) its executions asked for, oldest first.
    pub inputs: Vec<InputView>,
}

/// An input a step's execution asked for.
#[derive(Debug, Clone, Serialize)]
pub struct InputView {
    /// Its id (`RUN:IN`).
    pub id: crate::model::InputId,
    /// The execution that asked.
    pub execution: ExecutionId,
    /// Its title, if it has one.
    pub title: Option<String>,
    /// `pending`, `responded`, `dismissed` or `cancelled`.
    pub state: &'static str,
}

/// A stream of a step, as committed.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    /// Its id (`RUN:STEP_INDEX`, the form of stream handles).
    pub stream_id: String,
    /// Its index within the step.
    pub index: u32,
    /// The execution producing it (the latest to register it).
    pub producer: ExecutionId,
    /// How many items it holds.
    pub items: usize,
    /// How far the producer may run ahead of the slowest consumer (`None`: unbounded).
    pub buffer: Option<u32>,
    /// Its idle timeout.
    pub timeout_ms: Option<u64>,
    /// When it was registered.
    pub opened_at: Millis,
    /// How it ended (`complete`, `errored`, ...), if it has.
    pub closed: Option<String>,
    /// The producer's error, when it ended `errored`.
    pub error: Option<crate::model::ErrorInfo>,
    /// When it ended.
    pub closed_at: Option<Millis>,
}

/// A run as committed.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Its id.
    pub id: RunId,
    /// The environment it was submitted in.
    pub environment: String,
    /// When it was submitted.
    pub created_at: Millis,
    /// The execution that started it, when a workflow or task called a workflow.
    pub parent: Option<ExecutionId>,
    /// Its steps, by number (steps with no visible execution are left out).
    pub steps: Vec<StepView>,
    /// Runs its executions started by calling workflows: (caller, the run's initial execution).
    pub spawned: Vec<(ExecutionId, ExecutionId)>,
    /// Executions of this run given to a caller other than the one that made them (memo
    /// hits, and the calls of a resumed execution replayed): (caller, the execution reused),
    /// for visible callers.
    pub reused: Vec<(ExecutionId, ExecutionId)>,
}

impl RunView {
    /// The step with this id.
    pub fn step(&self, id: StepId) -> Option<&StepView> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Steps calling `target` (by name).
    pub fn steps_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a StepView> + 'a {
        self.steps.iter().filter(move |s| s.target.name == name)
    }
}

pub(super) fn load_run(
    location: &StoreLocation,
    run: RunId,
    view: Option<Vec<EnvironmentId>>,
    environments: &[Environment],
) -> Result<RunView, Error> {
    let reader = location.open_reader()?;
    let snapshot = reader
        .load_run(run)?
        .ok_or_else(|| OrchestrationError::RunNotFound(run.to_string()))?;
    Ok(build_view(snapshot, view, environments))
}

/// One page of a run's steps (`offset`, at most `limit`, in step order) as every environment
/// sees it, or as `view` does (see [`load_run`]), read without the rest of the run; with the
/// number of steps so seen.
pub(super) fn load_run_page(
    location: &StoreLocation,
    run: RunId,
    offset: usize,
    limit: usize,
    view: Option<Vec<EnvironmentId>>,
    environments: &[Environment],
) -> Result<(RunView, usize), Error> {
    let reader = location.open_reader()?;
    let (snapshot, total) = reader
        .load_run_page(run, offset, limit, view.as_deref())?
        .ok_or_else(|| OrchestrationError::RunNotFound(run.to_string()))?;
    Ok((build_view(snapshot, view, environments), total))
}

/// The view of `snapshot` from `view` (all environments when `None`).
fn build_view(
    snapshot: crate::store::RunSnapshot,
    view: Option<Vec<EnvironmentId>>,
    environments: &[Environment],
) -> RunView {
    let run = snapshot.run.id;
    let name = |id: EnvironmentId| {
        environments
            .iter()
            .find(|e| e.id == id)
            .map_or_else(|| id.to_string(), |e| e.name.to_string())
    };
    let home = snapshot.run.environment;
    let visible = |env: EnvironmentId| view.as_ref().is_none_or(|v| visible_from(home, v, env));
    // Each step's visible executions, in one pass (not one pass per step).
    let mut by_step: HashMap<StepId, Vec<ExecutionView>> = HashMap::new();
    for e in snapshot
        .executions
        .iter()
        .filter(|e| visible(e.environment))
    {
        by_step.entry(e.id.step).or_default().push(ExecutionView {
            id: e.id,
            environment: name(e.environment),
            state: e.state(),
            created_at: e.created_at,
            assigned_at: e.assignment.map(|(_, at)| at),
            worker: e.assignment.map(|(worker, _)| worker),
            dependencies: e.dependencies.executions.clone(),
            input_dependencies: e.dependencies.inputs.clone(),
            finished_at: e.result.as_ref().map(|(_, at)| *at),
            result: e.result.as_ref().map(|(r, _)| r.clone()),
        });
    }
    let mut checkpoints: HashMap<StepId, BTreeMap<String, Checkpoints>> = HashMap::new();
    for (step, env, state) in snapshot.checkpoints {
        if visible(env) {
            checkpoints
                .entry(step)
                .or_default()
                .insert(name(env), state);
        }
    }
    let mut streams: HashMap<StepId, Vec<StreamView>> = HashMap::new();
    for stream in snapshot.streams {
        let (closed, error, closed_at) = match stream.closed {
            Some((closure, at)) => {
                let error = match &closure {
                    crate::model::StreamClosure::Errored { error } => Some(error.clone()),
                    _ => None,
                };
                (Some(closure.reason().to_string()), error, Some(at))
            }
            None => (None, None, None),
        };
        streams.entry(stream.id.step).or_default().push(StreamView {
            stream_id: stream.id.to_string(),
            index: stream.id.index,
            producer: stream.producer,
            items: stream.items.len(),
            buffer: stream.buffer,
            timeout_ms: stream.timeout_ms,
            opened_at: stream.opened_at,
            closed,
            error,
            closed_at,
        });
    }
    let mut inputs: HashMap<StepId, Vec<InputView>> = HashMap::new();
    for input in snapshot.inputs {
        inputs
            .entry(input.execution.step)
            .or_default()
            .push(InputView {
                id: input.id,
                execution: input.execution,
                title: input.spec.title,
                state: input.state.name(),
            });
    }
    let mut steps = Vec::new();
    for step in snapshot.steps {
        let Some(executions) = by_step.remove(&step.id) else {
            continue;
        };
        steps.push(StepView {
            id: step.id,
            target: step.target,
            kind: step.kind,
            parent: step.parent_execution,
            arguments: step.arguments,
            cached: step.cache_key.is_some(),
            cache_key: step.cache_key,
            group: step.options.group.clone(),
            options: step.options,
            executions,
            checkpoints: checkpoints.remove(&step.id).unwrap_or_default(),
            streams: streams.remove(&step.id).unwrap_or_default(),
            inputs: inputs.remove(&step.id).unwrap_or_default(),
        });
    }
    let spawned = snapshot
        .children
        .iter()
        .filter(|(_, child)| child.run() != run)
        .copied()
        .collect();
    let environment_of: HashMap<ExecutionId, EnvironmentId> = snapshot
        .executions
        .iter()
        .map(|e| (e.id, e.environment))
        .collect();
    let reused = snapshot
        .children
        .iter()
        .filter(|(parent, child)| {
            child.run() == run && environment_of.get(parent).is_some_and(|env| visible(*env))
        })
        .copied()
        .collect();
    RunView {
        id: run,
        environment: name(home),
        created_at: snapshot.run.created_at,
        parent: snapshot.run.parent_execution,
        steps,
        spawned,
        reused,
    }
}

pub(super) fn list_runs(location: &StoreLocation, limit: usize) -> Result<Vec<RunSummary>, Error> {
    Ok(location.open_reader()?.list_runs(None, limit)?)
}

fn describe(result: &ExecutionResult) -> String {
    match result {
        ExecutionResult::Value {
            value: Value::Raw { data, .. },
        } => {
            let text = crate::sdk::decode_json(data.clone()).to_string();
            if text.len() > 60 {
                format!("{}…", &text[..text.floor_char_boundary(60)])
            } else {
                text
            }
        }
        ExecutionResult::Value {
            value: Value::Blob { key, size, .. },
        } => format!("blob {key} ({size} bytes)"),
        ExecutionResult::Error { error, retry } => {
            let retry = retry.map(|r| format!(" → retry {r}")).unwrap_or_default();
            format!("{}: {}{retry}", error.error_type, error.message)
        }
        ExecutionResult::Abandoned { retry } => format!(
            "abandoned{}",
            retry.map(|r| format!(" → retry {r}")).unwrap_or_default()
        ),
        ExecutionResult::Crashed { retry } => format!(
            "crashed{}",
            retry.map(|r| format!(" → retry {r}")).unwrap_or_default()
        ),
        ExecutionResult::Timeout { retry } => format!(
            "timeout{}",
            retry.map(|r| format!(" → retry {r}")).unwrap_or_default()
        ),
        ExecutionResult::Cancelled => "cancelled".into(),
        ExecutionResult::Cached { successor } => format!("cache hit → {successor}"),
        ExecutionResult::Deferred { successor } => format!("deferred → {successor}"),
        ExecutionResult::Suspended { successor } => format!("suspended → {successor}"),
        ExecutionResult::Spawned { successor } => format!("spawned → {successor}"),
        ExecutionResult::Recurred { successor } => format!("recurred → {successor}"),
    }
}

impl fmt::Display for RunView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run {} in {}", self.id, self.environment)?;
        let roots: Vec<&StepView> = self.steps.iter().filter(|s| s.parent.is_none()).collect();
        let mut children: HashMap<StepId, Vec<&StepView>> = HashMap::new();
        for step in &self.steps {
            if let Some(parent) = step.parent {
                children.entry(parent.step).or_default().push(step);
            }
        }
        for (i, step) in roots.iter().enumerate() {
            self.render(f, &children, step, "", i + 1 == roots.len())?;
        }
        Ok(())
    }
}

impl RunView {
    fn render(
        &self,
        f: &mut fmt::Formatter<'_>,
        children_of: &HashMap<StepId, Vec<&StepView>>,
        step: &StepView,
        prefix: &str,
        last: bool,
    ) -> fmt::Result {
        let branch = if last { "└─ " } else { "├─ " };
        for (i, e) in step.executions.iter().enumerate() {
            let lead = if i == 0 {
                format!("{prefix}{branch}{} {}", step.id, step.target)
            } else {
                format!("{prefix}{}   ↳", if last { " " } else { "│" })
            };
            let outcome = match &e.result {
                Some(r) => describe(r),
                None => format!("{:?}", e.state).to_lowercase(),
            };
            let timing = match (e.assigned_at, e.finished_at) {
                (Some(a), Some(b)) => format!(" {} ms", b - a),
                _ => String::new(),
            };
            writeln!(
                f,
                "{lead} #{} [{}] {outcome}{timing}",
                e.id.attempt, e.environment
            )?;
        }
        let children = children_of.get(&step.id).map_or(&[][..], Vec::as_slice);
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        for (i, child) in children.iter().enumerate() {
            self.render(
                f,
                children_of,
                child,
                &child_prefix,
                i + 1 == children.len(),
            )?;
        }
        Ok(())
    }
}
