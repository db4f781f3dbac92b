//! The write sequences of the conformance tests: every kind of write, with replacements,
//! duplicates and runs in several states.

use serde_json::json;

use crate::model::{
    CacheConfig, Environment, EnvironmentId, EnvironmentName, EnvironmentState, ErrorInfo,
    ExecutionId, ExecutionResult, InputId, InputRecord, InputSpec, InputState, ParamSelection,
    RunId, RunRecord, Schedule, StepId, StepOptions, StepRecord, StreamClosure, StreamId,
    TargetDefinition, TargetKind, TargetRef, Value, WorkerId,
};
use crate::store::Write;

pub(super) fn exec(run: u64, step: u32, attempt: u32) -> ExecutionId {
    StepId {
        run: RunId(run),
        number: step,
    }
    .execution(attempt)
}

fn environment(id: u32, name: &str, parent: Option<u32>) -> Environment {
    Environment {
        id: EnvironmentId(id),
        name: EnvironmentName::new(name).unwrap(),
        parent: parent.map(EnvironmentId),
        state: EnvironmentState::Active,
        created_at: 1_000 + i64::from(id),
    }
}

pub(super) fn step(
    run: u64,
    number: u32,
    parent: Option<ExecutionId>,
    cache_key: Option<&str>,
) -> Write {
    Write::CreateStep(Box::new(StepRecord {
        id: StepId {
            run: RunId(run),
            number,
        },
        parent_execution: parent,
        target: TargetRef::new("app.flows", if number == 1 { "main" } else { "task" }),
        kind: if number == 1 {
            TargetKind::Workflow
        } else {
            TargetKind::Task
        },
        arguments: vec![
            Value::raw(json!({"n": number, "text": "é ✓"})),
            Value::Blob {
                key: format!("{number:064}"),
                size: 3,
                references: Vec::new(),
            },
        ],
        options: StepOptions {
            cache: cache_key.map(|_| CacheConfig {
                params: ParamSelection::All(true),
                max_age_ms: Some(60_000),
                namespace: None,
                version: None,
            }),
            ..StepOptions::default()
        },
        cache_key: cache_key.map(str::to_owned),
        memo_key: (number == 3).then(|| "memo-3".to_owned()),
        created_at: 2_000 + i64::from(number),
    }))
}

pub(crate) fn run(id: u64, env: u32, parent: Option<ExecutionId>) -> Write {
    Write::CreateRun(RunRecord {
        id: RunId(id),
        environment: EnvironmentId(env),
        parent_execution: parent,
        created_at: 2_000 + i64::try_from(id).unwrap(),
    })
}

fn execution(id: ExecutionId, env: u32, after: Option<ExecutionId>) -> Write {
    Write::CreateExecution {
        id,
        environment: EnvironmentId(env),
        execute_after: after.map(|_| 9_000),
        created_at: 3_000,
        // A held execution waits for an input of its run too (a suspended `cf.Prompt`).
        dependencies: crate::model::Dependencies {
            executions: after.into_iter().collect(),
            inputs: after
                .map(|_| InputId {
                    run: id.run(),
                    number: 1,
                })
                .into_iter()
                .collect(),
            any: after.is_some(),
        },
    }
}

pub(super) fn value(v: serde_json::Value) -> ExecutionResult {
    ExecutionResult::Value {
        value: Value::raw(v),
    }
}

fn definition(module: &str, name: &str) -> TargetDefinition {
    TargetDefinition {
        target: TargetRef::new(module, name),
        kind: TargetKind::Task,
        parameters: Vec::new(),
        options: StepOptions::default(),
        instruction: Some(format!("{module}.{name}")),
    }
}

fn input(run: u64, number: u32, state: InputState) -> Write {
    Write::PutInput(Box::new(InputRecord {
        id: InputId {
            run: RunId(run),
            number,
        },
        execution: exec(run, 1, 1),
        spec: InputSpec {
            template: "Approve {n}?".into(),
            placeholders: Some(json!({"n": 1})),
            schema: None,
            key: format!("k{number}"),
            title: None,
            actions: None,
            initial: None,
            requires: Some(json!(["ops"])),
        },
        created_at: 4_000 + i64::from(number),
        state,
    }))
}

/// Batches touching every kind of write: environments, manifests, limits, schedules, three
/// runs (one active with streams, checkpoints, inputs and calls; one finished; one spawned),
/// a duplicate result, and replacements of earlier rows.
pub(crate) fn batches() -> Vec<Vec<Write>> {
    let (r1, r1c, r1m) = (exec(1, 1, 1), exec(1, 2, 1), exec(1, 3, 1));
    let stream = StreamId {
        step: StepId {
            run: RunId(1),
            number: 1,
        },
        index: 0,
    };
    let schedule = |id: u32, last_tick| {
        Write::PutSchedule(Box::new(Schedule {
            id,
            environment: EnvironmentId(1),
            target: TargetRef::new("app.flows", "main"),
            cron: "*/5 * * * *".into(),
            arguments: vec![Value::raw(json!(id))],
            options: StepOptions::default(),
            created_at: 1_500,
            last_tick,
            missed: 0,
        }))
    };
    vec![
        vec![
            Write::CreateEnvironment(environment(1, "production", None)),
            Write::CreateEnvironment(environment(2, "staging", Some(1))),
            Write::CreateEnvironment(environment(3, "dev", None)),
            Write::SetEnvironmentState {
                id: EnvironmentId(3),
                state: EnvironmentState::Archived,
            },
            Write::SetEnvironmentParent {
                id: EnvironmentId(3),
                parent: Some(EnvironmentId(2)),
            },
        ],
        vec![
            Write::PutManifests {
                environment: EnvironmentId(1),
                definitions: vec![
                    definition("b.mod", "x"),
                    definition("a.mod", "y"),
                    definition("a.mod", "Z"),
                ],
                at: 1_100,
            },
            Write::PutManifests {
                environment: EnvironmentId(2),
                definitions: vec![definition("c", "z")],
                at: 1_101,
            },
            Write::PutManifests {
                environment: EnvironmentId(1),
                definitions: vec![definition("b.mod", "x")],
                at: 1_102,
            },
            Write::ArchiveModule {
                environment: EnvironmentId(2),
                module: "c".into(),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "t"),
                max: Some(3),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "t"),
                max: Some(4),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "u"),
                max: Some(1),
            },
            Write::PutConcurrencyLimit {
                environment: EnvironmentId(1),
                target: TargetRef::new("a", "u"),
                max: None,
            },
            schedule(1, 1_600),
            schedule(2, 1_600),
            Write::ScheduleTicked {
                id: 1,
                last_tick: 1_900,
                missed: 2,
            },
            Write::DeleteSchedule { id: 2 },
        ],
        vec![
            run(1, 1, None),
            step(1, 1, None, None),
            execution(r1, 1, None),
            Write::Assign {
                execution: r1,
                worker: WorkerId(7),
                at: 3_001,
            },
            Write::PutIdempotencyKey {
                environment: EnvironmentId(1),
                key: "once".into(),
                run: RunId(1),
                at: 3_002,
            },
            step(1, 2, Some(r1), Some("key-a")),
            execution(r1c, 1, None),
            Write::Assign {
                execution: r1c,
                worker: WorkerId(8),
                at: 3_003,
            },
            Write::Assign {
                execution: r1c,
                worker: WorkerId(9),
                at: 3_004,
            },
            Write::RecordResult {
                execution: r1c,
                result: value(json!([1, 2])),
                at: 3_005,
            },
            Write::RecordResult {
                execution: r1c,
                result: value(json!("second, ignored")),
                at: 3_006,
            },
            step(1, 3, Some(r1), Some("key-b")),
            execution(r1m, 1, Some(r1c)),
            Write::LinkChild {
                parent: r1,
                child: r1c,
            },
            Write::LinkChild {
                parent: r1,
                child: r1m,
            },
            Write::LinkChild {
                parent: r1,
                child: r1m,
            },
            Write::PutCall {
                parent: r1,
                call: 2,
                child: r1m,
            },
            Write::PutCall {
                parent: r1,
                call: 1,
                child: r1c,
            },
            Write::PutCall {
                parent: r1,
                call: 1,
                child: r1m,
            },
        ],
        vec![
            Write::PutCheckpoints {
                step: StepId {
                    run: RunId(1),
                    number: 1,
                },
                environment: EnvironmentId(1),
                state: std::sync::Arc::new([("a".to_owned(), Value::raw(json!(1)))].into()),
                at: 3_100,
            },
            Write::PutCheckpoints {
                step: StepId {
                    run: RunId(1),
                    number: 1,
                },
                environment: EnvironmentId(1),
                state: std::sync::Arc::new([("b".to_owned(), Value::raw(json!(2)))].into()),
                at: 3_101,
            },
            Write::PutStream {
                stream,
                position: 0,
                producer: r1,
                buffer: Some(4),
                timeout_ms: None,
                opened_at: 3_200,
            },
            Write::PutStreamItem {
                stream,
                sequence: 0,
                value: Value::raw(json!("a")),
                at: 3_201,
            },
            Write::PutStreamItem {
                stream,
                sequence: 1,
                value: Value::raw(json!("b")),
                at: 3_202,
            },
            Write::PutStreamItem {
                stream,
                sequence: 1,
                value: Value::raw(json!("dup")),
                at: 3_203,
            },
            Write::PutStream {
                stream: StreamId { index: 1, ..stream },
                position: 1,
                producer: r1,
                buffer: None,
                timeout_ms: Some(5_000),
                opened_at: 3_204,
            },
            Write::CloseStream {
                stream: StreamId { index: 1, ..stream },
                closure: StreamClosure::Errored {
                    error: ErrorInfo::new("Boom", "it broke"),
                },
                at: 3_205,
            },
            input(1, 1, InputState::Pending),
            input(1, 2, InputState::Pending),
            input(
                1,
                2,
                InputState::Responded {
                    value: json!({"ok": true}),
                    at: 4_100,
                },
            ),
        ],
        // A finished run in the staging environment, and a run spawned from run 1.
        vec![
            run(2, 2, None),
            step(2, 1, None, None),
            execution(exec(2, 1, 1), 2, None),
            Write::RecordResult {
                execution: exec(2, 1, 1),
                result: value(json!(null)),
                at: 5_000,
            },
            run(3, 1, Some(r1)),
            step(3, 1, Some(r1), Some("key-a")),
            execution(exec(3, 1, 1), 1, None),
            execution(exec(3, 1, 2), 1, None),
            Write::RecordResult {
                execution: exec(3, 1, 1),
                result: ExecutionResult::Abandoned {
                    retry: Some(exec(3, 1, 2)),
                },
                at: 5_100,
            },
        ],
    ]
}
