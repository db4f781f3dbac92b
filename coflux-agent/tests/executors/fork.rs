//! Fork mode specifics of the executor pool, against the real Python adapter: forked children
//! are isolated, crash like spawned ones, a dead fork server is replaced, and modules that
//! start threads at import are spawned instead.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::fake_host::{FakeHost, block_on, json_value, value_of};
use crate::python::{adapter, flows, project};
use coflux_agent::executor::{ExecutorMode, ExecutorPool, PoolConfig};
use coflux_core::model::{ExecutionResult, TargetRef, Value};
use serde_json::json;

/// A fork-mode pool (whatever `COFLUX_EXECUTOR` says) whose fork server imports `modules`.
fn forking(modules: &[&str]) -> (Rc<FakeHost>, ExecutorPool) {
    let mut config = PoolConfig::new(adapter(), project(), 8);
    config.mode = ExecutorMode::Fork;
    config.modules = modules.iter().map(|m| m.to_string()).collect();
    FakeHost::with_config(config)
}

fn json_of(result: &ExecutionResult) -> serde_json::Value {
    match value_of(result) {
        Value::Raw { data, .. } => coflux_core::sdk::decode_json(data.clone()),
        other => panic!("expected inline data, got {other:?}"),
    }
}

/// The processes whose parent is `pid`, with their states (`Z`: a zombie).
fn children_of(pid: u64) -> Vec<(u64, char)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<u64>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid)
            && ppid == pid
        {
            let child = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            children.push((child, state));
        }
    }
    children
}

#[test]
fn concurrent_forked_executions_do_not_share_module_state() {
    block_on(async {
        let (host, pool) = forking(&["flows"]);
        pool.start().await.unwrap();
        let runs: Vec<_> = (0..4)
            .map(|_| host.run(flows("bump"), vec![json_value(json!(0.3))], None))
            .collect();
        let mut pids = Vec::new();
        let mut parents = Vec::new();
        for run in runs {
            let result = json_of(&host.result(run).await);
            assert_eq!(
                result[0],
                json!(1),
                "each sees only its own change: {result}"
            );
            pids.push(result[1].as_u64().unwrap());
            parents.push(result[2].as_u64().unwrap());
        }
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 4, "one process per execution");
        parents.dedup();
        assert_eq!(parents.len(), 1, "all forked from one fork server");
        // A later execution starts from the fork server's state too.
        let again = host.run(flows("bump"), vec![json_value(json!(0))], None);
        assert_eq!(json_of(&host.result(again).await)[0], json!(1));
        assert!(pool.stats().forked >= 5, "{:?}", pool.stats());

        // Finished children are reaped: no zombies left under the fork server.
        let zygote = parents[0];
        let deadline = Instant::now() + Duration::from_secs(5);
        while children_of(zygote).iter().any(|(_, state)| *state == 'Z') {
            assert!(
                Instant::now() < deadline,
                "zombies: {:?}",
                children_of(zygote)
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        pool.drain().await;
        assert!(
            !std::path::Path::new(&format!("/proc/{zygote}")).exists(),
            "the fork server is gone (and reaped) after the drain"
        );
    });
}

#[test]
fn forked_children_that_exit_or_are_killed_crash() {
    block_on(async {
        let (host, pool) = forking(&["flows"]);
        let exited = host.run(flows("crash"), vec![json_value(json!(3))], None);
        let killed = host.run(flows("killed"), vec![], None);
        for (run, status) in [(exited, "exit status: 3"), (killed, "signal: 9 (SIGKILL)")] {
            assert_eq!(
                host.result(run).await,
                ExecutionResult::Crashed { retry: None }
            );
            let logs = host.logs_of(run);
            assert!(
                logs.iter()
                    .any(|r| r.level == 5
                        && r.template.as_deref().is_some_and(|t| t.contains(status))),
                "{status}: {logs:?}"
            );
        }
        assert!(
            host.logs_of(exited)
                .iter()
                .any(|r| r.level == 3 && r.template.as_deref() == Some("about to crash")),
            "the child's own stderr is kept"
        );
        assert!(pool.stats().forked >= 2, "{:?}", pool.stats());
        pool.shutdown().await;
    });
}

#[test]
fn a_dead_fork_server_is_replaced() {
    block_on(async {
        let (host, pool) = forking(&["flows"]);
        let first = host.run(flows("bump"), vec![json_value(json!(0))], None);
        let zygote = json_of(&host.result(first).await)[2].as_u64().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-9", &zygote.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // `kill` returns before the process has died: a warm child still sees its parent until the
        // fork server's exit reaches the point where its children are sent their death signal.
        wait_until_dead(zygote).await;
        // Executions keep working: the warm children died with it and a new one forks.
        for _ in 0..3 {
            let run = host.run(flows("bump"), vec![json_value(json!(0))], None);
            let result = host.result(run).await;
            if let ExecutionResult::Crashed { .. } = result {
                // A warm child killed along with the fork server, caught mid-start.
                continue;
            }
            let result = json_of(&result);
            assert_eq!(result[0], json!(1));
            assert_ne!(result[2].as_u64().unwrap(), zygote, "a new fork server");
        }
        let last = host.run(flows("bump"), vec![json_value(json!(0))], None);
        assert_eq!(json_of(&host.result(last).await)[0], json!(1));
        pool.shutdown().await;
    });
}

/// Waits until `pid` has exited (a zombie or gone); its children have then been sent `SIGKILL`.
async fn wait_until_dead(pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // The state is the field after the parenthesised command name.
        let alive = state
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .is_some_and(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X')));
        if !alive {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not exit");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_module_that_starts_a_thread_at_import_is_spawned() {
    block_on(async {
        let (host, pool) = forking(&["threaded"]);
        let run = host.run(TargetRef::new("threaded", "ticking"), vec![], None);
        assert_eq!(value_of(&host.result(run).await), &json_value(json!(true)));
        let stats = pool.stats();
        assert_eq!(stats.forked, 0, "{stats:?}");
        assert!(stats.spawned >= 1, "{stats:?}");
        pool.shutdown().await;
    });
}
