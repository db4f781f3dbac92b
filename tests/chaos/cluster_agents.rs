//! An agent started with only the owner node's address (no load balancer): the owner is killed
//! with SIGKILL under runs, and the agent must reconnect to a node it learned from the cluster
//! (the `Nodes` frame after the welcome), resume there and finish every run with its value.
//! Runs: half of `COFLUX_CHAOS_CLUSTER_RUNS` (200).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coflux_tests::{Proc, Server, bin, workspace_root};

use super::cluster::{Database, P, base_url, check, start_cluster, start_moto, view};
use serde_json::json;

use super::{await_values, setting, submit};

/// The agent URLs (`ws://…/agent`) the agent connected to, from its log.
fn connections(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("connected to the server"))
        .filter_map(|l| l.split("url=").nth(1))
        .map(|u| u.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

/// Submits runs `range` of the Rust workflow, each until acknowledged.
async fn submit_range(
    front: &Server,
    range: std::ops::Range<u64>,
    acknowledged: &mut Vec<(String, String)>,
) {
    for i in range {
        let name = format!("r{i}");
        loop {
            if let Some(run) = submit(front, P, "examples.semantics", "effects", &name, 20).await {
                acknowledged.push((run, name));
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn agent_url(node: &str) -> String {
    format!("{}/agent", node.replacen("http://", "ws://", 1))
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_cluster_agent_given_only_the_owner_reconnects_to_a_learned_node() {
    let Some(base) = base_url() else { return };
    let runs = (setting("COFLUX_CHAOS_CLUSTER_RUNS", 200) / 2).max(4);
    let db = Database::create(&base, "learned");
    let dir = tempfile::tempdir().unwrap();
    let (_moto, s3) = start_moto().await;
    let (mut nodes, owner_index) = start_cluster(dir.path(), 3, &db.url, &s3, &[]).await;
    let owner_url = nodes[owner_index].url.clone();
    let survivors: Vec<String> = nodes
        .iter()
        .filter(|n| n.url != owner_url)
        .map(|n| agent_url(&n.url))
        .collect();
    let front = view(&nodes[(owner_index + 1) % nodes.len()]);
    let effects = dir.path().join("side-effects.txt");
    let agent_log = dir.path().join("agent.log");
    // The owner's address only: what it knows of the others it learns from the cluster.
    let mut agent = Proc::spawn(
        "coflux-agent",
        Command::new(bin("coflux-agent"))
            .args(["--server", &owner_url, "--project", P])
            .args(["--environment", "production", "--register"])
            .args(["--concurrency", "16", "--adapter"])
            .arg(format!(
                "env COFLUX_EXAMPLE_SEMANTICS=1 COFLUX_SIDE_EFFECTS={} {}",
                effects.display(),
                bin("coflux-example-repo").display()
            ))
            .arg("--directory")
            .arg(workspace_root())
            .arg("examples.semantics")
            .env("COFLUX_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap()),
    );
    front.wait_registered(P, "production", "effects").await;
    let read_log = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !survivors.iter().all(|s| read_log().contains(s.as_str())) {
        assert!(
            Instant::now() < deadline,
            "the agent did not learn the other nodes: {}",
            read_log()
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(connections(&read_log()), [agent_url(&owner_url)]);

    let mut acknowledged = Vec::new();
    submit_range(&front, 0..runs / 2, &mut acknowledged).await;
    let logged = read_log().len();
    nodes[owner_index].proc.kill9();
    let killed = Instant::now();
    submit_range(&front, runs / 2..runs, &mut acknowledged).await;
    let values = await_values(&front, P, &acknowledged).await;
    let recovered = killed.elapsed();
    // Blob transfers follow the agent too: a result past the inline limit is uploaded, then
    // downloaded as another task's argument, through the node it reconnected to.
    let big = front
        .submit(
            P,
            "production",
            "examples.semantics",
            "big_round_trip",
            json!([200_000]),
        )
        .await;
    let big = front.result(P, &big, 120).await;
    agent.terminate(Duration::from_secs(10));
    let after: Vec<String> = connections(&read_log()[logged..]);
    let logs: Vec<&Path> = nodes.iter().map(|n| n.log.as_path()).collect();
    let mut violations = check(&db, &effects, &values, &logs);
    if big["value"] != json!(200_000) {
        violations.push(format!("a blob round trip after the kill ended {big}"));
    }
    if !after.iter().any(|u| survivors.contains(u)) {
        violations.push(format!(
            "the agent did not reconnect to a surviving node after the kill: {after:?}"
        ));
    }
    println!(
        "chaos cluster-learned: faults injected 1, runs checked {}, violations {}, all ended {:.1} s after the kill (agent connected to {after:?})",
        values.len(),
        violations.len(),
        recovered.as_secs_f64()
    );
    assert_eq!(values.len() as u64, runs);
    assert!(violations.is_empty(), "{violations:#?}");
}
