//! A run's pages read on their own agree with the whole run read and sliced, from every
//! environment and from one.

use super::*;
use crate::model::{
    Dependencies, EnvironmentId, ExecutionId, RunRecord, StepId, StepOptions, StepRecord,
    TargetKind, TargetRef,
};
use crate::store::{ProjectStore, Write};

fn exec(run: u64, number: u32) -> ExecutionId {
    StepId {
        run: RunId(run),
        number,
    }
    .execution(1)
}

fn run(id: u64, parent: Option<ExecutionId>) -> Write {
    Write::CreateRun(RunRecord {
        id: RunId(id),
        environment: EnvironmentId(1),
        parent_execution: parent,
        created_at: 1,
    })
}

/// Step `number` of `run` with one execution in `env`.
fn step(run: u64, number: u32, env: u32) -> [Write; 2] {
    let id = StepId {
        run: RunId(run),
        number,
    };
    let record = StepRecord {
        id,
        parent_execution: (number > 1).then(|| exec(run, 1)),
        target: TargetRef::new("m", if number == 1 { "main" } else { "task" }),
        kind: if number == 1 {
            TargetKind::Workflow
        } else {
            TargetKind::Task
        },
        arguments: Vec::new(),
        options: StepOptions::default(),
        cache_key: None,
        memo_key: None,
        created_at: 2,
    };
    [
        Write::CreateStep(Box::new(record)),
        Write::CreateExecution {
            id: id.execution(1),
            environment: EnvironmentId(env),
            execute_after: None,
            created_at: 3,
            dependencies: Dependencies::default(),
        },
    ]
}

/// Run 1 (environment 1): a workflow and 34 children, steps 31..=35 made in environment 2;
/// its steps 1 and 20 started runs 2 and 3. Run 12 sorts just before `R1:` (as text).
fn store() -> SqliteStore {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut writes = vec![run(1, None)];
    for number in 1..=35 {
        writes.extend(step(1, number, if number > 30 { 2 } else { 1 }));
        if number > 1 {
            writes.push(Write::LinkChild {
                parent: exec(1, 1),
                child: exec(1, number),
            });
        }
    }
    for (child_run, parent) in [(2, 1), (3, 20), (12, 1)] {
        writes.push(run(child_run, Some(exec(1, parent))));
        writes.extend(step(child_run, 1, 1));
        writes.push(Write::LinkChild {
            parent: exec(1, parent),
            child: exec(child_run, 1),
        });
    }
    store.apply(&writes).unwrap();
    store
}

fn numbers(snapshot: &RunSnapshot) -> Vec<u32> {
    snapshot.steps.iter().map(|s| s.id.number).collect()
}

#[test]
fn pages_from_every_environment_count_all_steps_and_carry_their_spawned_runs() {
    let store = store();
    let (first, total) = store.load_run_page(RunId(1), 0, 10, None).unwrap().unwrap();
    assert_eq!(total, 35);
    assert_eq!(numbers(&first), (1..=10).collect::<Vec<_>>());
    assert_eq!(first.executions.len(), 10);
    // Only links to other runs, from the page's executions.
    assert_eq!(
        first.children,
        vec![(exec(1, 1), exec(2, 1)), (exec(1, 1), exec(12, 1))]
    );
    let (middle, _) = store
        .load_run_page(RunId(1), 15, 10, None)
        .unwrap()
        .unwrap();
    assert_eq!(numbers(&middle), (16..=25).collect::<Vec<_>>());
    assert_eq!(middle.children, vec![(exec(1, 20), exec(3, 1))]);
    let (last, _) = store
        .load_run_page(RunId(1), 30, 10, None)
        .unwrap()
        .unwrap();
    assert_eq!(numbers(&last), (31..=35).collect::<Vec<_>>());
    assert!(
        store
            .load_run_page(RunId(9), 0, 10, None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn pages_from_one_environment_skip_the_steps_it_does_not_see() {
    let store = store();
    let whole = store.load_run(RunId(1)).unwrap().unwrap();
    assert_eq!(whole.steps.len(), 35);
    // Environment 1 alone (the run's own): steps 31..=35 ran in environment 2.
    let (page, total) = store
        .load_run_page(RunId(1), 25, 10, Some(&[]))
        .unwrap()
        .unwrap();
    assert_eq!(total, 30);
    assert_eq!(numbers(&page), (26..=30).collect::<Vec<_>>());
    assert!(page.executions.iter().all(|e| e.environment.0 == 1));
    // Seen from environment 2 as well, they are there.
    let (page, total) = store
        .load_run_page(RunId(1), 25, 10, Some(&[EnvironmentId(2)]))
        .unwrap()
        .unwrap();
    assert_eq!(total, 35);
    assert_eq!(numbers(&page), (26..=35).collect::<Vec<_>>());
}

/// The plan SQLite chooses for `sql`, one line per step.
fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    let mut stmt = store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    // Unbound parameters are NULL: the plan does not depend on their values.
    let mut rows = stmt.raw_query();
    let mut lines = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        lines.push(row.get::<_, String>(3).unwrap());
    }
    lines
}

#[test]
fn a_page_reads_its_range_of_the_run_by_key_and_never_scans_the_run() {
    let store = store();
    for sql in super::PAGE_QUERIES {
        let plan = plan(&store, sql);
        let scans: Vec<&String> = plan.iter().filter(|l| l.starts_with("SCAN")).collect();
        assert!(scans.is_empty(), "{sql}\nscans: {plan:?}");
        assert!(
            plan.iter()
                .any(|l| l.starts_with("SEARCH") && l.contains("run_id=?")),
            "{sql}\nplan: {plan:?}"
        );
    }
    // The range reads bound the step number, not only the run.
    for sql in [
        super::PAGE_EXECUTIONS,
        crate::store::checkpoints::LOAD_STEPS,
        crate::store::streams::LOAD_STEPS,
        crate::store::streams::LOAD_STEP_ITEMS,
    ] {
        let plan = plan(&store, sql);
        assert!(
            plan.iter().any(|l| l.contains("step_number>?")),
            "{sql}\nplan: {plan:?}"
        );
    }
}

#[test]
fn a_page_carries_the_checkpoints_and_streams_of_its_own_steps_only() {
    use crate::model::{StreamId, Value};
    let mut store = store();
    let mut writes = Vec::new();
    for number in [5, 20] {
        let step = StepId {
            run: RunId(1),
            number,
        };
        let state = [("n".to_owned(), Value::raw(serde_json::json!(number)))].into();
        writes.push(Write::PutCheckpoints {
            step,
            environment: EnvironmentId(1),
            state: std::sync::Arc::new(state),
            at: 4,
        });
        let stream = StreamId { step, index: 0 };
        writes.push(Write::PutStream {
            stream,
            position: 0,
            producer: step.execution(1),
            buffer: None,
            timeout_ms: None,
            opened_at: 4,
        });
        for sequence in 0..u64::from(number) {
            writes.push(Write::PutStreamItem {
                stream,
                sequence,
                value: Value::raw(serde_json::json!(sequence)),
                at: 5,
            });
        }
    }
    store.apply(&writes).unwrap();
    let (first, _) = store.load_run_page(RunId(1), 0, 10, None).unwrap().unwrap();
    let steps = |page: &RunSnapshot| {
        let checkpoints: Vec<u32> = page.checkpoints.iter().map(|(s, _, _)| s.number).collect();
        let streams: Vec<(u32, usize)> = page
            .streams
            .iter()
            .map(|s| (s.id.step.number, s.items.len()))
            .collect();
        (checkpoints, streams)
    };
    assert_eq!(steps(&first), (vec![5], vec![(5, 5)]));
    let (middle, _) = store
        .load_run_page(RunId(1), 15, 10, None)
        .unwrap()
        .unwrap();
    assert_eq!(steps(&middle), (vec![20], vec![(20, 20)]));
    let (last, _) = store
        .load_run_page(RunId(1), 30, 10, None)
        .unwrap()
        .unwrap();
    assert_eq!(steps(&last), (vec![], vec![]));
}
