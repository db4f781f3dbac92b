//! The environment state machine, message by message: workers, accepts, waiting executions,
//! duplicates, withdrawals during cache lookups, archiving.

use std::sync::Arc;

use super::*;
use crate::model::{RunId, StepId};
use crate::orchestration::messages::CacheCheck;
use crate::store::CacheOutcome;

fn ticket(run: u64, cache: bool) -> Ticket {
    Ticket {
        execution: StepId {
            run: RunId(run),
            number: 1,
        }
        .execution(1),
        environment: EnvironmentId(1),
        target: TargetRef::new("m", "t"),
        arguments: Arc::new(Vec::new()),
        execute_after: None,
        requires: Requires::new(),
        cache: cache.then(|| CacheCheck {
            key: "k".into(),
            max_age_ms: None,
        }),
        timeout_ms: None,
        streams: None,
        defer_key: None,
        created_at: 0,
        checkpoints: Arc::default(),
    }
}

fn with_worker() -> EnvironmentCore {
    let mut env = EnvironmentCore::new(EnvironmentId(1));
    let targets = [TargetRef::new("m", "t")].into_iter().collect();
    let msg = EnvironmentMsg::Connect {
        worker: WorkerId(1),
        targets,
        capacity: 0,
        provides: Requires::new(),
        accepts: Requires::new(),
    };
    env.handle(msg, 0, &mut Outbox::default());
    env
}

fn executes(out: &Outbox) -> usize {
    out.messages
        .iter()
        .filter(|m| matches!(m, Envelope::Worker(_, WorkerCommand::Execute { .. })))
        .count()
}

#[test]
fn an_unavailable_worker_gets_no_new_work_until_it_is_back() {
    let mut env = with_worker();
    let mut out = Outbox::default();
    let unavailable = EnvironmentMsg::SetAvailable {
        worker: WorkerId(1),
        available: false,
    };
    env.handle(unavailable, 0, &mut out);
    env.handle(EnvironmentMsg::Enqueue(ticket(1, false)), 0, &mut out);
    assert_eq!(executes(&out), 0);
    let back = EnvironmentMsg::SetAvailable {
        worker: WorkerId(1),
        available: true,
    };
    let mut out = Outbox::default();
    env.handle(back, 0, &mut out);
    assert_eq!(executes(&out), 1);
}

#[test]
fn a_worker_with_accepts_takes_only_executions_requiring_them() {
    let mut env = EnvironmentCore::new(EnvironmentId(1));
    let pool: Requires = [("pool".to_owned(), vec!["gpu".to_owned()])].into();
    let connect = EnvironmentMsg::Connect {
        worker: WorkerId(1),
        targets: [TargetRef::new("m", "t")].into_iter().collect(),
        capacity: 0,
        provides: pool.clone(),
        accepts: pool.clone(),
    };
    let mut out = Outbox::default();
    env.handle(connect, 0, &mut out);
    env.handle(EnvironmentMsg::Enqueue(ticket(1, false)), 0, &mut out);
    assert_eq!(executes(&out), 0, "no requires: not accepted");
    let mut other = ticket(2, false);
    other.requires = [("pool".to_owned(), vec!["cpu".to_owned()])].into();
    env.handle(EnvironmentMsg::Enqueue(other), 0, &mut out);
    assert_eq!(executes(&out), 0, "another pool: not accepted");
    let mut tagged = ticket(3, false);
    tagged.requires = pool;
    let mut out = Outbox::default();
    env.handle(EnvironmentMsg::Enqueue(tagged), 0, &mut out);
    assert_eq!(executes(&out), 1);
}

#[test]
fn a_waiting_execution_does_not_hold_its_workers_capacity() {
    let mut env = EnvironmentCore::new(EnvironmentId(1));
    let targets = [TargetRef::new("m", "t")].into_iter().collect();
    let connect = EnvironmentMsg::Connect {
        worker: WorkerId(1),
        targets,
        capacity: 1,
        provides: Requires::new(),
        accepts: Requires::new(),
    };
    let mut out = Outbox::default();
    env.handle(connect, 0, &mut out);
    env.handle(EnvironmentMsg::Enqueue(ticket(1, false)), 0, &mut out);
    env.handle(EnvironmentMsg::Enqueue(ticket(2, false)), 0, &mut out);
    assert_eq!(executes(&out), 1, "capacity 1");
    let parent = ticket(1, false).execution;
    let waiting = |waiting| EnvironmentMsg::SetWaiting {
        worker: WorkerId(1),
        execution: parent,
        waiting,
    };
    let mut out = Outbox::default();
    env.handle(waiting(true), 0, &mut out);
    assert_eq!(executes(&out), 1, "the waiting parent lent its slot");
    env.handle(waiting(false), 0, &mut out);
    env.handle(EnvironmentMsg::Enqueue(ticket(3, false)), 0, &mut out);
    assert_eq!(
        executes(&out),
        1,
        "both run again: over capacity, nothing new"
    );
    env.handle(EnvironmentMsg::Finished { execution: parent }, 0, &mut out);
    let child = ticket(2, false).execution;
    env.handle(EnvironmentMsg::Finished { execution: child }, 0, &mut out);
    assert_eq!(executes(&out), 2, "a slot is free again once both finished");
}

#[test]
fn a_second_enqueue_of_the_same_execution_is_ignored() {
    let mut env = with_worker();
    let mut out = Outbox::default();
    env.handle(EnvironmentMsg::Enqueue(ticket(1, false)), 0, &mut out);
    env.handle(EnvironmentMsg::Enqueue(ticket(1, false)), 0, &mut out);
    assert_eq!(executes(&out), 1);
}

#[test]
fn an_execution_withdrawn_during_its_cache_lookup_never_runs_nor_becomes_a_source() {
    let mut env = with_worker();
    let mut out = Outbox::default();
    env.handle(EnvironmentMsg::Enqueue(ticket(1, true)), 0, &mut out);
    assert!(matches!(
        out.messages.last(),
        Some(Envelope::Project(ProjectMsg::CacheLookup(_)))
    ));
    let execution = ticket(1, true).execution;
    env.handle(EnvironmentMsg::Withdraw { execution }, 0, &mut out);
    let mut out = Outbox::default();
    env.handle(
        EnvironmentMsg::CacheMissed {
            ticket: ticket(1, false),
            key: "k".into(),
        },
        0,
        &mut out,
    );
    assert_eq!(executes(&out), 0);
    assert!(out.messages.iter().any(|m| matches!(
        m,
        Envelope::Project(ProjectMsg::CacheUpdate { outcome: CacheOutcome::Failed, execution: e, .. }) if *e == execution
    )));
}

#[test]
fn work_arriving_in_an_archived_environment_is_cancelled() {
    let mut env = with_worker();
    env.handle(
        EnvironmentMsg::SetState(EnvironmentState::Archived),
        0,
        &mut Outbox::default(),
    );
    let mut out = Outbox::default();
    env.handle(EnvironmentMsg::Enqueue(ticket(1, false)), 0, &mut out);
    assert_eq!(executes(&out), 0);
    assert!(
        out.messages
            .iter()
            .any(|m| matches!(m, Envelope::Run(_, RunMsg::Cancel { .. })))
    );
}
