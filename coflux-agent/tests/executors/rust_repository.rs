//! The executor pool against a Rust repository binary (`examples/repo`, built by the first
//! test that needs it with `cargo build -p coflux-examples --bin coflux-example-repo`, into
//! this build's target directory), with the fake orchestrator of `tests/support/fake_host.rs`.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use crate::fake_host::{FakeHost, block_on, crate_dir, json_value, value_of};
use coflux_agent::executor::{AdapterCommand, ExecutorPool, discover};
use coflux_core::model::{ExecutionResult, ParamSelection, Reference, TargetKind, TargetRef};
use serde_json::json;

/// The example repository binary, built once per test run.
fn repo_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test's executable is `<target>/<profile>/deps/executor_rust-*`.
        let exe = std::env::current_exe().expect("the test's path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the profile dir");
        let target_dir = profile_dir.parent().expect("the target dir");
        let mut build =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args([
                "build",
                "-p",
                "coflux-examples",
                "--bin",
                "coflux-example-repo",
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(crate_dir());
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building coflux-example-repo failed");
        let binary = profile_dir.join("coflux-example-repo");
        assert!(binary.exists(), "no binary at {}", binary.display());
        binary
    })
}

fn adapter() -> AdapterCommand {
    AdapterCommand::new([repo_binary().to_string_lossy().into_owned()])
}

fn repo(name: &str) -> TargetRef {
    TargetRef::new("examples.repo", name)
}

fn host() -> (Rc<FakeHost>, ExecutorPool) {
    // Waiting executions hold slots (fib fans out recursively): room for all of them.
    FakeHost::new(adapter(), &crate_dir(), 256)
}

#[test]
fn discovery_lists_the_repository() {
    block_on(async {
        let targets = discover(&adapter(), &crate_dir(), &["examples.repo".into()])
            .await
            .unwrap();
        let square = targets.iter().find(|t| t.target == repo("square")).unwrap();
        assert_eq!(square.kind, TargetKind::Task);
        assert_eq!(
            square.options.cache.as_ref().unwrap().params,
            ParamSelection::All(true)
        );
        assert_eq!(square.parameters[0].annotation.as_deref(), Some("u64"));
        let sums = targets
            .iter()
            .find(|t| t.target == repo("sum_of_squares"))
            .unwrap();
        assert_eq!(sums.kind, TargetKind::Workflow);
        let flaky = targets.iter().find(|t| t.target == repo("flaky")).unwrap();
        assert_eq!(flaky.options.retries.as_ref().unwrap().limit, Some(2));
        assert!(
            discover(&adapter(), &crate_dir(), &["nowhere".into()])
                .await
                .is_err()
        );
    });
}

#[test]
fn one_process_serves_fan_out_errors_and_panics() {
    block_on(async {
        let (host, pool) = host();
        pool.start().await.unwrap();
        let sums = host.run(repo("sum_of_squares"), vec![json_value(json!(5))], None);
        let divide = host.run(
            repo("divide"),
            vec![json_value(json!(1)), json_value(json!(0))],
            None,
        );
        let explode = host.run(repo("explode"), vec![json_value(json!("kaboom"))], None);
        let fib = host.run(repo("fib"), vec![json_value(json!(8))], None);
        assert_eq!(value_of(&host.result(sums).await), &json_value(json!(55)));
        assert_eq!(value_of(&host.result(fib).await), &json_value(json!(21)));

        let ExecutionResult::Error { error, .. } = host.result(divide).await else {
            panic!("expected an error");
        };
        assert!(
            error.error_type.ends_with("DivisionByZero"),
            "{}",
            error.error_type
        );
        assert_eq!(error.message, "cannot divide 1 by zero");

        let ExecutionResult::Error { error, .. } = host.result(explode).await else {
            panic!("expected a panic");
        };
        assert_eq!(
            (error.error_type.as_str(), error.message.as_str()),
            ("coflux.Panic", "kaboom")
        );
        assert!(
            error.frames[0].file.ends_with("examples/src/lib.rs"),
            "{:?}",
            error.frames
        );

        // The process survived the panic and keeps serving: every execution ran in it.
        let pids = [
            host.run(repo("pid"), vec![], None),
            host.run(repo("pid"), vec![], None),
        ];
        let first = value_of(&host.result(pids[0]).await).clone();
        assert_eq!(value_of(&host.result(pids[1]).await), &first);
        let stats = pool.stats();
        assert_eq!((stats.spawned, stats.processes), (1, 1), "{stats:?}");
        // 5 squares, and fib(8)'s 66 recursive calls.
        assert_eq!(host.submissions.borrow().len(), 5 + 66);
        pool.drain().await;
        assert_eq!(pool.stats().processes, 0);
    });
}

#[test]
fn a_chain_of_calls_runs_in_order() {
    block_on(async {
        let (host, pool) = host();
        let chain = host.run(repo("chain"), vec![json_value(json!(20))], None);
        assert_eq!(value_of(&host.result(chain).await), &json_value(json!(20)));
        {
            let submissions = host.submissions.borrow();
            assert_eq!(submissions.len(), 20);
            assert!(
                submissions
                    .iter()
                    .all(|(parent, request, _)| *parent == chain && request.target == repo("noop"))
            );
        }
        pool.shutdown().await;
    });
}

/// The results of a Rust execution's children are pushed to its process as the host gets
/// them: a workflow awaiting 200 finished children one by one asks the host for few of them
/// (each `select` is a round trip between the process and the agent; it asked for all 200).
#[test]
fn children_results_are_pushed_to_a_rust_executor_without_a_select_each() {
    block_on(async {
        let (host, pool) = host();
        let fanout = host.run(repo("fanout"), vec![json_value(json!(200))], None);
        assert_eq!(
            value_of(&host.result(fanout).await),
            &json_value(json!(200))
        );
        let waits = host.waits.get();
        assert!(
            waits <= 100,
            "{waits} of 200 children waited for with a select"
        );
        pool.shutdown().await;
    });
}

/// Parents waiting for their children never take the slots the children need, however many
/// wait at once: with one slot and a bound of one lent slot (a single-use executor's limit),
/// three chains of calls in one concurrent process all finish.
#[test]
fn waiting_parents_of_a_concurrent_executor_never_starve_their_children() {
    block_on(async {
        let mut config = crate::fake_host::config(adapter(), &crate_dir(), 1);
        config.max_waiting = 1;
        let (host, pool) = FakeHost::with_config(config);
        let chains: Vec<_> = (0..3)
            .map(|_| host.run(repo("chain"), vec![json_value(json!(5))], None))
            .collect();
        for chain in chains {
            let result = tokio::time::timeout(Duration::from_secs(60), host.result(chain))
                .await
                .expect("a chain finishes (its calls got a slot)");
            assert_eq!(value_of(&result), &json_value(json!(5)));
        }
        pool.shutdown().await;
    });
}

#[test]
fn a_timeout_aborts_only_its_execution() {
    block_on(async {
        let (host, pool) = host();
        pool.start().await.unwrap();
        // 100 000 round trips: far longer than its timeout.
        let slow = host.run(repo("chain"), vec![json_value(json!(100_000))], Some(200));
        let quick = host.run(repo("sum_of_squares"), vec![json_value(json!(3))], None);
        assert_eq!(
            host.result(slow).await,
            ExecutionResult::Timeout { retry: None }
        );
        assert_eq!(value_of(&host.result(quick).await), &json_value(json!(14)));
        // The aborted chain stopped calling (its future was dropped in the executor); a call
        // already on its way may still land in the first pause.
        let pause = std::time::Duration::from_millis(100);
        actix_rt::time::sleep(pause).await;
        let calls = host.submissions.borrow().len();
        actix_rt::time::sleep(pause).await;
        assert_eq!(host.submissions.borrow().len(), calls);
        let after = host.run(repo("pid"), vec![], None);
        assert!(matches!(
            host.result(after).await,
            ExecutionResult::Value { .. }
        ));
        assert_eq!(pool.stats().spawned, 1);
        pool.shutdown().await;
    });
}

/// The example repository with its `examples.semantics` targets.
fn semantics_adapter() -> AdapterCommand {
    AdapterCommand::new([
        "env".to_string(),
        "COFLUX_EXAMPLE_SEMANTICS=1".to_string(),
        repo_binary().to_string_lossy().into_owned(),
    ])
}

fn semantics(name: &str) -> TargetRef {
    TargetRef::new("examples.semantics", name)
}

#[test]
fn semantics_options_reach_the_manifest() {
    block_on(async {
        let targets = discover(
            &semantics_adapter(),
            &crate_dir(),
            &["examples.semantics".into()],
        )
        .await
        .unwrap();
        let options = |name: &str| {
            targets
                .iter()
                .find(|t| t.target == semantics(name))
                .unwrap_or_else(|| panic!("{name} is declared"))
                .options
                .clone()
        };
        let countdown = options("countdown");
        assert!(countdown.recurrent);
        assert_eq!(countdown.delay_ms, Some(100));
        let debounced = options("debounced");
        assert_eq!(
            debounced.defer.map(|d| d.params),
            Some(ParamSelection::All(true))
        );
        assert_eq!(debounced.delay_ms, Some(300));
        assert_eq!(options("downstream").wait_for, vec![0]);
        assert_eq!(options("memo_run").memo, Some(ParamSelection::All(true)));
        for name in ["retried_effect", "retried_effects"] {
            let retries = options(name).retries.expect("a retry policy");
            assert_eq!(retries.limit, Some(3), "{name}");
        }
        assert!(options("effect").retries.is_none());
        // Without the variable, the repository is the usual one.
        let plain = discover(&adapter(), &crate_dir(), &[]).await.unwrap();
        assert!(plain.iter().all(|t| t.target.module == "examples.repo"));
    });
}

#[test]
fn a_suspending_execution_ends_suspended_and_the_process_carries_on() {
    block_on(async {
        let (host, pool) = FakeHost::new(semantics_adapter(), &crate_dir(), 16);
        pool.start().await.unwrap();
        let run = host.run(
            semantics("suspends_once"),
            vec![json_value(json!(41))],
            None,
        );
        assert_eq!(
            host.result(run).await,
            ExecutionResult::Suspended {
                successor: run.step.execution(2)
            }
        );
        // It called its child before suspending, and reported nothing else.
        let child = host.child("plus_one").expect("the child was submitted");
        assert_eq!(value_of(&host.result(child).await), &json_value(json!(42)));
        assert_eq!(host.submissions.borrow().len(), 1);
        // The shared process was told to abort that execution, not killed: it keeps serving.
        let after = host.run(repo("pid"), vec![], None);
        assert!(matches!(
            host.result(after).await,
            ExecutionResult::Value { .. }
        ));
        let stats = pool.stats();
        assert_eq!((stats.spawned, stats.processes), (1, 1), "{stats:?}");
        pool.shutdown().await;
    });
}

#[test]
fn a_workflow_called_from_an_execution_is_submitted_as_a_workflow() {
    block_on(async {
        let (host, pool) = FakeHost::new(semantics_adapter(), &crate_dir(), 16);
        let outer = host.run(semantics("outer"), vec![json_value(json!(4))], None);
        assert_eq!(value_of(&host.result(outer).await), &json_value(json!(10)));
        {
            let submissions = host.submissions.borrow();
            let [(parent, request, _)] = &submissions[..] else {
                panic!("one submission: {submissions:?}");
            };
            assert_eq!(*parent, outer);
            assert_eq!(request.target, semantics("inner"));
            assert_eq!(request.kind, TargetKind::Workflow);
        }
        pool.shutdown().await;
    });
}

#[test]
fn a_handle_passed_as_an_argument_travels_as_an_execution_reference() {
    block_on(async {
        let (host, pool) = FakeHost::new(semantics_adapter(), &crate_dir(), 16);
        let waits = host.run(semantics("waits"), vec![], None);
        assert_eq!(value_of(&host.result(waits).await), &json_value(json!(41)));
        let upstream = host.child("slow_value").unwrap();
        {
            let submissions = host.submissions.borrow();
            let (_, request, _) = submissions
                .iter()
                .find(|(_, r, _)| r.target == semantics("downstream"))
                .expect("downstream was submitted");
            assert_eq!(request.options.wait_for, vec![0]);
            assert_eq!(
                request.arguments[0].references(),
                [Reference::Execution {
                    execution: upstream,
                    module: "examples.semantics".into(),
                    target: "slow_value".into(),
                }]
            );
        }
        pool.shutdown().await;
    });
}
