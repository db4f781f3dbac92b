use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::model::{TargetDefinition, TargetKind};
use crate::sdk::{ExecutorLink, Failure, Target, TargetFuture, suspend};

/// A link that takes every default (suspensions accepted at once).
struct Quiet;
impl ExecutorLink for Quiet {
    fn submit(&self, _: ExecutionId, _: crate::sdk::SubmitRequest) -> crate::sdk::Submission {
        unreachable!("no child calls here")
    }
    fn wait(
        &self,
        _: ExecutionId,
        _: ExecutionId,
    ) -> futures::future::BoxFuture<'static, crate::model::ExecutionResult> {
        unreachable!("no waits here")
    }
}

/// A target whose body is `body` (its argument: the first one's JSON).
struct Body(fn(serde_json::Value) -> TargetFuture);
impl Target for Body {
    fn definition(&self) -> TargetDefinition {
        TargetDefinition {
            target: TargetRef::new("t", "body"),
            kind: TargetKind::Task,
            parameters: Vec::new(),
            options: Default::default(),
            instruction: None,
        }
    }
    fn invoke(&self, arguments: Vec<Value>) -> TargetFuture {
        let Some(Value::Raw { data, .. }) = arguments.into_iter().next() else {
            panic!("one raw argument")
        };
        (self.0)(data)
    }
}

async fn run(body: fn(serde_json::Value) -> TargetFuture, timeout_ms: Option<u64>) -> Ending {
    let repository = Repository::new().with(Body(body));
    let invocation = Invocation {
        execution: "R1:1:1".parse().unwrap(),
        target: TargetRef::new("t", "body"),
        arguments: vec![Value::raw(json!(7))],
        checkpoints: Checkpoints::new(),
        working_dir: None,
        timeout: timeout_ms.map(Duration::from_millis),
        assets: None,
    };
    ending_of(&repository, invocation).await
}

async fn ending_of(repository: &Repository, invocation: Invocation) -> Ending {
    let mut ending = None;
    invoke(repository, Arc::new(Quiet), invocation, |e| {
        ending = Some(e)
    })
    .await;
    ending.expect("a reported ending")
}

#[actix_rt::test]
async fn a_value_and_an_error_are_reported_as_returned() {
    let value = run(|x| Box::pin(async move { Ok(Value::raw(x)) }), None).await;
    assert_eq!(value, Ending::Value(Value::raw(json!(7))));
    let error = run(
        |_| Box::pin(async { Err(Failure::new("app.Bad", "bad input")) }),
        None,
    )
    .await;
    let Ending::Error(error) = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (error.error_type.as_str(), error.message.as_str()),
        ("app.Bad", "bad input")
    );
}

#[actix_rt::test]
async fn a_panic_fails_with_its_message_and_where_it_happened() {
    let ending = run(
        |x| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                panic!("exploded on {x}")
            })
        },
        None,
    )
    .await;
    let Ending::Error(error) = ending else {
        panic!("{ending:?}")
    };
    assert_eq!(error.error_type, "coflux.Panic");
    assert_eq!(error.message, "exploded on 7");
    assert_eq!(error.frames.len(), 1, "{:?}", error.frames);
    assert!(
        error.frames[0].file.ends_with("invoke_tests.rs") && error.frames[0].line > 0,
        "{:?}",
        error.frames
    );
}

#[actix_rt::test]
async fn the_driver_enforces_a_timeout_given_to_it() {
    let slow = |_| -> TargetFuture {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Value::raw(json!(null)))
        })
    };
    assert_eq!(run(slow, Some(50)).await, Ending::Timeout);
    // Zero means none.
    let quick = |x| -> TargetFuture { Box::pin(async move { Ok(Value::raw(x)) }) };
    assert_eq!(
        run(quick, Some(0)).await,
        Ending::Value(Value::raw(json!(7)))
    );
}

#[actix_rt::test]
async fn a_suspension_wins_over_what_the_body_returned_but_not_over_a_timeout() {
    let suspends = |_| -> TargetFuture {
        Box::pin(async {
            let _ = suspend(None).await;
            // Ignored: the execution ends as suspended.
            Err(Failure::new("app.After", "after suspending"))
        })
    };
    let Ending::Suspended(suspension) = run(suspends, None).await else {
        panic!("expected a suspension")
    };
    assert_eq!(suspension.execute_after, None);
    let suspends_then_hangs = |_| -> TargetFuture {
        Box::pin(async {
            let _ = suspend(None).await;
            std::future::pending().await
        })
    };
    assert_eq!(run(suspends_then_hangs, Some(50)).await, Ending::Timeout);
}

#[actix_rt::test]
async fn a_target_not_hosted_fails_clearly() {
    let invocation = Invocation {
        execution: "R1:1:1".parse().unwrap(),
        target: TargetRef::new("t", "missing"),
        arguments: Vec::new(),
        checkpoints: Checkpoints::new(),
        working_dir: None,
        timeout: None,
        assets: None,
    };
    let ending = ending_of(&Repository::new(), invocation).await;
    let Ending::Error(error) = ending else {
        panic!("{ending:?}")
    };
    assert_eq!(error.error_type, "coflux.TargetNotFound");
    assert!(error.message.contains("t/missing"), "{}", error.message);
}

#[actix_rt::test]
async fn a_panic_hook_set_later_still_runs_and_panics_keep_their_frame() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEEN: AtomicU32 = AtomicU32::new(0);
    let quick = |x| -> TargetFuture { Box::pin(async move { Ok(Value::raw(x)) }) };
    run(quick, None).await;
    // The program replaces the hook after the driver ran once.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        SEEN.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let ending = run(|_| Box::pin(async { panic!("late hook") }), None).await;
    let Ending::Error(error) = ending else {
        panic!("{ending:?}")
    };
    assert_eq!(error.message, "late hook");
    assert_eq!(error.frames.len(), 1, "{:?}", error.frames);
    assert!(SEEN.load(Ordering::SeqCst) >= 1, "the program's hook ran");
}
