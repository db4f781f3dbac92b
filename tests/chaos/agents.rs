//! Faults on the agents' side: agents killed mid-execution, a network partition between an
//! agent and the server shorter than the reconnect timeout, and silent partitions (nothing goes
//! through, connections stay open) shorter and longer than the session timeout.

use std::time::{Duration, Instant};

use coflux_tests::{Proc, Proxy, Server, example_module_agent, free_port};

use crate::{Rng, await_values, checker, setting, start_server_with, submit};

const P: &str = "acme";

/// A server on a fresh data directory with `extra` flags, and the helpers' view of it.
pub(crate) async fn fresh_server(
    dir: &std::path::Path,
    extra: &[&str],
) -> (Proc, Server, std::path::PathBuf) {
    let data = dir.join("data");
    let port = free_port();
    let log = dir.join("server.log");
    let (proc, _) = start_server_with(&data, port, &log, extra).await;
    let server = Server {
        proc: Proc::detached("coflux-server"),
        url: format!("http://127.0.0.1:{port}"),
        port,
        data_dir: data,
    };
    server.setup(P, "production", None).await;
    (proc, server, log)
}

/// A proxy in front of `server`, and the server as seen through it (agents given it connect
/// through the proxy).
pub(crate) fn behind_proxy(server: &Server) -> (Proxy, Server) {
    let proxy = Proxy::start(server.port);
    let via = Server {
        proc: Proc::detached("coflux-server"),
        url: format!("http://127.0.0.1:{}", proxy.port),
        port: proxy.port,
        data_dir: server.data_dir.clone(),
    };
    (proxy, via)
}

pub(crate) fn semantics_agent(server: &Server, effects_env: &str) -> Proc {
    example_module_agent(
        server,
        P,
        "examples.semantics",
        &["COFLUX_EXAMPLE_SEMANTICS=1", effects_env],
        &["--register", "--concurrency", "16"],
    )
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_agents_killed_mid_execution() {
    let kills = setting("COFLUX_CHAOS_AGENT_KILLS", 5);
    let runs = setting("COFLUX_CHAOS_AGENT_RUNS", 40);
    let mut rng = Rng::seeded();
    println!(
        "chaos agent-kill: {kills} kills, {runs} runs, seed {}",
        rng.0
    );
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    // A short reconnect timeout: a killed agent's executions are abandoned (and retried) soon.
    let (mut server_proc, server, log) =
        fresh_server(dir.path(), &["--reconnect-timeout", "2"]).await;
    let mut agents = vec![
        semantics_agent(&server, &effects_env),
        semantics_agent(&server, &effects_env),
    ];
    server
        .wait_registered(P, "production", "retried_effects")
        .await;

    let mut acknowledged = Vec::new();
    let mut faults = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(300 + rng.below(1000));
    let mut i = 0;
    while i < runs || faults < kills {
        if i < runs {
            let name = format!("a{i}");
            // With a retry policy: without one (`COFLUX_CHAOS_AGENT_TARGET=effects`), an
            // execution abandoned when its agent dies ends its run as `abandoned`, as documented.
            let target = std::env::var("COFLUX_CHAOS_AGENT_TARGET")
                .unwrap_or_else(|_| "retried_effects".into());
            match submit(&server, P, "examples.semantics", &target, &name, 100).await {
                Some(run) => {
                    acknowledged.push((run, name));
                    i += 1;
                }
                None => actix_rt::time::sleep(Duration::from_millis(50)).await,
            }
            actix_rt::time::sleep(Duration::from_millis(30)).await;
        } else {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        if faults < kills && Instant::now() >= next_kill {
            let victim = rng.below(agents.len() as u64) as usize;
            agents[victim].kill9();
            faults += 1;
            agents[victim] = semantics_agent(&server, &effects_env);
            next_kill = Instant::now() + Duration::from_millis(500 + rng.below(1500));
        }
    }

    let values = await_values(&server, P, &acknowledged).await;
    for agent in &mut agents {
        agent.terminate(Duration::from_secs(10));
    }
    server_proc.terminate(Duration::from_secs(10));
    let violations = checker::check(P, &server.data_dir, &effects, &values, &log);
    let (_, abandoned) = checker::repeats(P, &server.data_dir);
    println!(
        "chaos agent-kill: faults injected {faults}, runs checked {}, violations {} \
         (abandoned attempts {abandoned})",
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_network_partition_shorter_than_the_reconnect_timeout() {
    let cuts = setting("COFLUX_CHAOS_CUTS", 2);
    let runs = setting("COFLUX_CHAOS_PARTITION_RUNS", 20);
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let (mut server_proc, server, log) =
        fresh_server(dir.path(), &["--reconnect-timeout", "15"]).await;
    // The agent reaches the server only through the proxy.
    let (proxy, via_proxy) = behind_proxy(&server);
    let mut agent = semantics_agent(&via_proxy, &effects_env);
    server.wait_registered(P, "production", "effects").await;

    let mut acknowledged = Vec::new();
    let mut faults = 0;
    for c in 0..cuts {
        for i in 0..runs / cuts.max(1) {
            let name = format!("p{c}-{i}");
            let run = submit(&server, P, "examples.semantics", "effects", &name, 200)
                .await
                .expect("submitted");
            acknowledged.push((run, name));
        }
        // Runs are in flight: cut for ~2 s, then restore.
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        proxy.cut();
        faults += 1;
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        proxy.restore();
        // The next cut only once the agent is back (its backoff may wait up to 5 s): each is
        // a partition of its own, shorter than the reconnect timeout. Back-to-back cuts can
        // keep an agent away longer than the timeout in all (its attempts falling in the next
        // cuts), and then its executions are abandoned, rightly.
        let back = Instant::now();
        while proxy.connections() == 0 {
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "the agent did not reconnect"
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }

    let values = await_values(&server, P, &acknowledged).await;
    agent.terminate(Duration::from_secs(10));
    server_proc.terminate(Duration::from_secs(10));
    let mut violations = checker::check(P, &server.data_dir, &effects, &values, &log);
    violations.extend(checker::nothing_repeated(P, &server.data_dir));
    println!(
        "chaos partition: faults injected {faults}, runs checked {}, violations {}",
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The workers of the project's connected agent sessions.
async fn connected_workers(server: &Server) -> Vec<serde_json::Value> {
    let body = coflux_tests::get(&server.url, &format!("/api/projects/{P}/sessions")).await;
    body["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["connected"] == true)
        .map(|s| s["worker"].clone())
        .collect()
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_silent_partitions_shorter_and_longer_than_the_timeouts() {
    let runs = setting("COFLUX_CHAOS_SILENT_RUNS", 8);
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    // A connection silent for 10 s is closed; its session is then kept 2 s for the agent.
    let (mut server_proc, server, log) = fresh_server(
        dir.path(),
        &["--session-timeout", "10s", "--reconnect-timeout", "2"],
    )
    .await;
    let (proxy, via_proxy) = behind_proxy(&server);
    let mut cut_off = semantics_agent(&via_proxy, &effects_env);
    server
        .wait_registered(P, "production", "retried_effects")
        .await;
    let before = connected_workers(&server).await;
    let mut violations = Vec::new();
    let mut acknowledged = Vec::new();
    let submit_all = async |prefix: &str, acknowledged: &mut Vec<(String, String)>| {
        for i in 0..runs / 2 {
            let name = format!("{prefix}{i}");
            let run = submit(
                &server,
                P,
                "examples.semantics",
                "retried_effects",
                &name,
                300,
            )
            .await
            .expect("submitted");
            acknowledged.push((run, name));
        }
    };

    // Shorter than the session timeout: bytes are late, the connection and session survive.
    submit_all("q", &mut acknowledged).await;
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    proxy.freeze();
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    proxy.thaw();
    let short = await_values(&server, P, &acknowledged).await;
    let after_short = connected_workers(&server).await;
    let silences = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("agent silent for too long").count()
    };
    if after_short != before || silences() != 0 {
        violations.push(format!(
            "a 4 s silence closed the agent's connection: {before:?} → {after_short:?}"
        ));
    }

    // Longer than both timeouts: the server closes the silent connection and abandons its
    // executions; another agent takes them over while the partition lasts.
    let from = acknowledged.len();
    submit_all("l", &mut acknowledged).await;
    actix_rt::time::sleep(Duration::from_millis(600)).await;
    proxy.freeze();
    let frozen = Instant::now();
    let mut direct = semantics_agent(&server, &effects_env);
    let long = await_values(&server, P, &acknowledged[from..]).await;
    println!(
        "chaos silent: the runs of the cut-off agent finished {:.1} s into the partition",
        frozen.elapsed().as_secs_f64()
    );
    if silences() == 0 {
        violations.push("the server did not close the silent connection".into());
    }
    // The cut-off agent comes back: it must not record its stale results.
    proxy.thaw();
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    let again = await_values(&server, P, &acknowledged).await;
    cut_off.terminate(Duration::from_secs(10));
    direct.terminate(Duration::from_secs(10));
    server_proc.terminate(Duration::from_secs(10));

    let mut values = short;
    values.extend(long);
    for (run, (_, value)) in &values {
        if again.get(run).map(|(_, v)| v) != Some(value) {
            violations.push(format!(
                "run {run} changed after the partition healed: {value}"
            ));
        }
    }
    violations.extend(checker::check(P, &server.data_dir, &effects, &values, &log));
    // The short partition repeated nothing.
    let text = std::fs::read_to_string(&effects).unwrap_or_default();
    let repeated = text.lines().filter(|l| l.starts_with('q')).count() as u64;
    if repeated != (runs / 2) * 4 {
        violations.push(format!(
            "{repeated} side effects for the {} of the short partition",
            (runs / 2) * 4
        ));
    }
    let (_, abandoned) = checker::repeats(P, &server.data_dir);
    if abandoned == 0 {
        violations.push("the long partition abandoned nothing".into());
    }
    println!(
        "chaos silent: faults injected 2 (4 s, then longer than the 10 s session and 2 s \
         reconnect timeouts), runs checked {}, violations {} (abandoned attempts {abandoned})",
        values.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
