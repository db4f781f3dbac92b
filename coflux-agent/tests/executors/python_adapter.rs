//! The executor pool against the real Python adapter (`coflux==0.12.0`), with the fixture
//! modules in `tests/python/` and the fake orchestrator in `tests/support/fake_host.rs`.
//!
//! Needs the test venv: run `scripts/setup-python.sh` (or set `COFLUX_TEST_PYTHON` to a Python
//! with `coflux==0.12.0` installed).

use crate::fake_host;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::fake_host::{FakeHost, block_on, executor_mode, json_value, value_of};
use crate::python::{adapter, flows, project};
use coflux_agent::executor::{DiscoveryError, ExecutorMode, ExecutorPool, discover};
use coflux_core::model::{
    ExecutionResult, ParamSelection, Reference, RetryPolicy, TargetKind, Value,
};
use serde_json::json;

/// A pool of 8 slots whose fork server (in fork mode) imports `flows`.
fn host() -> (Rc<FakeHost>, ExecutorPool) {
    let mut config = fake_host::config(adapter(), &project(), 8);
    config.modules = vec!["flows".into()];
    FakeHost::with_config(config)
}

#[test]
fn discovery_reads_targets_and_their_options() {
    block_on(async {
        let targets = discover(&adapter(), &project(), &["flows".into()])
            .await
            .unwrap();
        let add = targets.iter().find(|t| t.target == flows("add")).unwrap();
        assert_eq!(add.kind, TargetKind::Task);
        assert_eq!(add.instruction.as_deref(), Some("Adds two numbers."));
        assert_eq!(add.parameters[1].name, "b");
        assert_eq!(add.parameters[1].default.as_deref(), Some("1"));
        let options = &add.options;
        assert_eq!(
            options.cache.as_ref().unwrap().params,
            ParamSelection::All(true)
        );
        assert_eq!(options.retries, Some(RetryPolicy::limit(2)));
        assert_eq!(options.memo, Some(ParamSelection::All(true)));
        assert_eq!(options.requires["gpu"], vec!["true".to_string()]);
        let calls = targets.iter().find(|t| t.target == flows("calls")).unwrap();
        assert_eq!(calls.kind, TargetKind::Workflow);
    });
}

#[test]
fn discovery_reports_import_errors_with_the_usable_targets() {
    block_on(async {
        let modules = ["flows".to_string(), "broken".to_string()];
        let error = discover(&adapter(), &project(), &modules)
            .await
            .unwrap_err();
        let DiscoveryError::Import { stderr, targets } = &error else {
            panic!("expected an import error, got {error:?}");
        };
        assert!(
            stderr.contains("RuntimeError: broken on purpose"),
            "{stderr}"
        );
        assert!(stderr.contains("broken"), "{stderr}");
        assert!(targets.iter().any(|t| t.target == flows("add")));
        assert!(!targets.iter().any(|t| t.target.module == "broken"));
        assert_eq!(error.code(), "import_error");
    });
}

#[test]
fn a_workflow_calls_a_task_with_logs_and_output() {
    block_on(async {
        let (host, pool) = host();
        pool.start().await.unwrap();
        let run = host.run(flows("calls"), vec![json_value(json!(5))], None);
        assert_eq!(value_of(&host.result(run).await), &json_value(json!(6)));

        let logs = host.logs_of(run);
        let started = logs
            .iter()
            .find(|r| r.template.as_deref() == Some("starting with {n}"))
            .expect("the cf.log_info record");
        assert_eq!(started.level, 2);
        assert_eq!(started.values["n"], json_value(json!(5)));
        let noise = logs
            .iter()
            .find(|r| r.template.as_deref() == Some("flows imported"));
        // Spawned, each execution imports its module; forked, the fork server imported it
        // once (its output went to the agent's log).
        let expected = (executor_mode() == ExecutorMode::Spawn).then_some(1);
        assert_eq!(
            noise.map(|r| r.level),
            expected,
            "import-time stdout: {logs:?}"
        );

        let add = host.child("add").unwrap();
        let request = host.submissions.borrow()[0].1.clone();
        assert_eq!(request.options.retries, Some(RetryPolicy::limit(2)));
        assert_eq!(
            request.arguments,
            vec![json_value(json!(5)), json_value(json!(1))]
        );
        let printed = host.logs_of(add);
        assert!(
            printed
                .iter()
                .any(|r| r.level == 1 && r.template.as_deref() == Some("adding 5+1")),
            "{printed:?}"
        );
        pool.drain().await;
        assert_eq!(pool.stats().processes, 0);
    });
}

#[test]
fn fan_out_select_poll_and_cancel() {
    block_on(async {
        let (host, pool) = host();
        let run = host.run(flows("fan_out"), vec![json_value(json!(4))], None);
        let result = host.result(run).await;
        let Value::Raw { data, .. } = value_of(&result) else {
            panic!("expected inline data");
        };
        let result = coflux_core::sdk::decode_json(data.clone());
        assert_eq!(result["total"], json!(12));
        assert_eq!(result["polled"], json!("pending"));
        assert!([0, 2, 4, 6].contains(&result["winner"].as_i64().unwrap()));
        let sleepy = host.child("sleepy").unwrap();
        assert_eq!(*host.cancelled.borrow(), vec![sleepy]);
        assert_eq!(host.result(sleepy).await, ExecutionResult::Cancelled);
        pool.shutdown().await;
    });
}

#[test]
fn errors_are_typed_caught_and_reported_with_frames() {
    block_on(async {
        let (host, pool) = host();
        let caught = host.run(flows("catches"), vec![json_value(json!(7))], None);
        let uncaught = host.run(flows("boom"), vec![json_value(json!(8))], None);
        assert_eq!(
            value_of(&host.result(caught).await),
            &json_value(json!("caught ValueError: bad value 7"))
        );
        let ExecutionResult::Error { error, .. } = host.result(uncaught).await else {
            panic!("expected an error");
        };
        assert_eq!(error.error_type, "builtins.ValueError");
        assert_eq!(error.message, "bad value 8");
        let frame = error.frames.last().expect("frames");
        assert!(frame.file.ends_with("flows.py"), "{frame:?}");
        assert_eq!(frame.name, "boom");
        assert_eq!(
            frame.code.as_deref(),
            Some("raise ValueError(f\"bad value {n}\")")
        );
        pool.shutdown().await;
    });
}

#[test]
fn pickled_objects_and_large_values_travel_as_blobs() {
    block_on(async {
        let (host, pool) = host();
        let points = host.run(flows("points"), vec![json_value(json!(3))], None);
        let measured = host.run(flows("measure"), vec![json_value(json!(70_000))], None);
        assert_eq!(
            value_of(&host.result(points).await),
            &json_value(json!(["Point", 3, 6]))
        );
        assert_eq!(
            value_of(&host.result(measured).await),
            &json_value(json!(70_000))
        );

        // The child's pickled Point went through the blob store as a fragment...
        let point = host.result(host.child("make_point").unwrap()).await;
        let [
            Reference::Fragment {
                format,
                blob_key,
                size,
                metadata,
            },
        ] = value_of(&point).references()
        else {
            panic!("expected one fragment: {point:?}");
        };
        assert_eq!(
            (format.as_str(), metadata),
            ("pickle", &json!({"type": "Point"}))
        );
        assert_eq!(host.blob(blob_key).len() as u64, *size);
        // ...and the 70 kB string as a blob value (the adapter spills it to a file).
        let big = host.result(host.child("big").unwrap()).await;
        let Value::Blob { key, size, .. } = value_of(&big) else {
            panic!("expected a blob: {big:?}");
        };
        assert!(*size > 70_000);
        assert_eq!(host.blob(key).len() as u64, *size);
        pool.shutdown().await;
    });
}

#[test]
fn a_timeout_kills_the_process() {
    block_on(async {
        let (host, pool) = host();
        let started = Instant::now();
        let run = host.run(flows("sleepy"), vec![json_value(json!(30))], Some(1_500));
        assert_eq!(
            host.result(run).await,
            ExecutionResult::Timeout { retry: None }
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let logs = host.logs_of(run);
        let pid = logs
            .iter()
            .find_map(|r| r.values.get("pid"))
            .and_then(|v| match v {
                Value::Raw { data, .. } => data.as_u64(),
                Value::Blob { .. } => None,
            })
            .expect("the task logged its pid");
        // The kill is immediate; the process is reaped in the background.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "process {pid} still alive");
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        pool.shutdown().await;
    });
}

#[test]
fn a_process_exiting_without_a_result_is_a_crash() {
    block_on(async {
        let (host, pool) = host();
        let run = host.run(flows("crash"), vec![json_value(json!(3))], None);
        let result = host.result(run).await;
        assert_eq!(result, ExecutionResult::Crashed { retry: None });
        assert!(result.is_retryable_failure(), "crashes may be retried");
        let logs = host.logs_of(run);
        assert!(
            logs.iter().any(|r| r.level == 5
                && r.template
                    .as_deref()
                    .is_some_and(|t| t.contains("exit status: 3") && t.contains("about to crash"))),
            "{logs:?}"
        );
        assert!(
            logs.iter()
                .any(|r| r.level == 3 && r.template.as_deref() == Some("about to crash")),
            "{logs:?}"
        );
        pool.shutdown().await;
    });
}

#[test]
fn executions_wait_for_a_free_slot() {
    block_on(async {
        let (host, pool) = FakeHost::new(adapter(), &project(), 1);
        pool.start().await.unwrap();
        let started = Instant::now();
        let first = host.run(flows("sleepy"), vec![json_value(json!(0.4))], None);
        let second = host.run(flows("sleepy"), vec![json_value(json!(0.4))], None);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.stats().running, 2, "both accepted, one waiting");
        for run in [first, second] {
            assert_eq!(value_of(&host.result(run).await), &json_value(json!(0.4)));
        }
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "{:?}",
            started.elapsed()
        );
        // The second one only started once the first had finished.
        let logged = |run| host.logs_of(run)[0].timestamp_ms;
        assert!(logged(second) - logged(first) >= 400);
        // One slot, one warm process: never more than two processes.
        assert!(pool.stats().processes <= 2, "{:?}", pool.stats());
        assert!(pool.stats().spawned >= 2, "single-use processes");
        pool.drain().await;
    });
}

/// An execution that cannot lend its slot while it waits (as many executions as the pool
/// allows already wait in their processes) and whose child does not finish soon is suspended,
/// leaving its slot to the child, instead of holding it (with one slot: for ever).
#[test]
fn a_waiting_execution_that_cannot_lend_its_slot_is_suspended() {
    block_on(async {
        let mut config = fake_host::config(adapter(), &project(), 1);
        config.modules = vec!["flows".into()];
        config.max_waiting = 0;
        let (host, pool) = FakeHost::with_config(config);
        let run = host.run(flows("calls"), vec![json_value(json!(5))], None);
        let ended = actix_rt::time::timeout(Duration::from_secs(30), async {
            let parent = host.result(run).await;
            let add = host.child("add").expect("the child was submitted");
            (parent, host.result(add).await)
        })
        .await;
        let (parent, child) = ended.expect("the parent kept the only slot its child needs");
        assert!(
            matches!(parent, ExecutionResult::Suspended { .. }),
            "{parent:?}"
        );
        assert_eq!(value_of(&child), &json_value(json!(6)));
        // Suspended without an answer to its `select`: no error reached its log.
        assert!(
            host.logs_of(run).iter().all(|r| r.level < 4),
            "{:?}",
            host.logs_of(run)
        );
        pool.shutdown().await;
    });
}
