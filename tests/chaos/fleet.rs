//! Faults across the agent fleet: a zombie agent (paused with SIGSTOP until its session was
//! abandoned and its executions re-assigned, then resumed) must not record a result for them,
//! and a reconnect storm (50 agents cut off at once, all reconnecting together) loses nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use coflux_tests::{Proc, Proxy};

use crate::agents::{behind_proxy, fresh_server, semantics_agent};
use crate::{await_values, checker, setting, submit};

const P: &str = "acme";

/// `pid` and every process below it.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", out[i]));
        for task in tasks.into_iter().flatten().flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    out
}

/// Sends `signal` (e.g. `STOP`, `CONT`) to `pid` and its descendants.
fn signal_tree(pid: u32, signal: &str) {
    for p in process_tree(pid) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), p.to_string()])
            .status();
    }
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_zombie_agent_resumed_after_its_session_was_abandoned() {
    let runs = setting("COFLUX_CHAOS_ZOMBIE_RUNS", 8);
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    // A frozen agent is silent: its connection is closed after 10 s, its session 2 s later.
    let (mut server_proc, server, log) = fresh_server(
        dir.path(),
        &["--session-timeout", "10s", "--reconnect-timeout", "2"],
    )
    .await;
    let mut zombie = semantics_agent(&server, &effects_env);
    server
        .wait_registered(P, "production", "retried_effects")
        .await;
    let mut acknowledged = Vec::new();
    for i in 0..runs {
        let name = format!("z{i}");
        let run = submit(
            &server,
            P,
            "examples.semantics",
            "retried_effects",
            &name,
            400,
        )
        .await
        .expect("submitted");
        acknowledged.push((run, name));
    }
    // The zombie holds executions when it freezes (with its executor processes).
    actix_rt::time::sleep(Duration::from_millis(600)).await;
    let paused = Instant::now();
    signal_tree(zombie.pid(), "STOP");
    let mut healthy = semantics_agent(&server, &effects_env);
    let values = await_values(&server, P, &acknowledged).await;
    println!(
        "chaos zombie: the runs finished {:.1} s after the pause",
        paused.elapsed().as_secs_f64()
    );
    // Wake the zombie: it finds its session gone and must not record its stale results.
    signal_tree(zombie.pid(), "CONT");
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    let after = await_values(&server, P, &acknowledged).await;
    zombie.terminate(Duration::from_secs(10));
    healthy.terminate(Duration::from_secs(10));
    server_proc.terminate(Duration::from_secs(10));
    let mut violations = checker::check(P, &server.data_dir, &effects, &values, &log);
    for (run, (_, before)) in &values {
        if after.get(run).map(|(_, v)| v) != Some(before) {
            violations.push(format!("run {run} changed after the zombie woke: {before}"));
        }
    }
    let (_, abandoned) = checker::repeats(P, &server.data_dir);
    if abandoned == 0 {
        violations.push("no execution was abandoned: the zombie held none".into());
    }
    println!(
        "chaos zombie: faults injected 1, runs checked {}, violations {} (abandoned attempts {abandoned})",
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Waits until `n` agents are connected through `proxy`; how long that took.
async fn all_connected(proxy: &Proxy, n: usize, bound: Duration) -> Duration {
    let start = Instant::now();
    while proxy.connections() < n {
        assert!(
            start.elapsed() < bound,
            "{} of {n} agents connected after {bound:?}",
            proxy.connections()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_reconnect_storm_of_many_agents() {
    let agents_n = setting("COFLUX_CHAOS_STORM_AGENTS", 50) as usize;
    let runs = setting("COFLUX_CHAOS_STORM_RUNS", 40);
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let (mut server_proc, server, log) =
        fresh_server(dir.path(), &["--reconnect-timeout", "30"]).await;
    let (proxy, via_proxy) = behind_proxy(&server);
    let mut agents: Vec<Proc> = (0..agents_n)
        .map(|_| semantics_agent(&via_proxy, &effects_env))
        .collect();
    all_connected(&proxy, agents_n, Duration::from_secs(120)).await;
    server.wait_registered(P, "production", "effects").await;

    let mut acknowledged = Vec::new();
    for i in 0..runs {
        let name = format!("s{i}");
        let run = submit(&server, P, "examples.semantics", "effects", &name, 200)
            .await
            .expect("submitted");
        acknowledged.push((run, name));
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    // Every agent loses its connection at once, then all come back together.
    proxy.cut();
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();
    let back = all_connected(&proxy, agents_n, Duration::from_secs(60)).await;
    let values = await_values(&server, P, &acknowledged).await;
    for agent in &mut agents {
        agent.terminate(Duration::from_secs(10));
    }
    server_proc.terminate(Duration::from_secs(10));
    let mut violations = checker::check(P, &server.data_dir, &effects, &values, &log);
    violations.extend(checker::nothing_repeated(P, &server.data_dir));
    println!(
        "chaos storm: faults injected 1 ({agents_n} agents cut), all back in {:.1} s, runs checked {}, violations {}",
        back.as_secs_f64(),
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
