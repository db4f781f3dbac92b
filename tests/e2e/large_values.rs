//! Large values end to end: a 20 MB result and the same 20 MB value as another task's
//! argument, through the real Python SDK and through a Rust repository, with the server's and
//! the agents' peak memory growing far less than the values (they stream blobs, never hold
//! a whole value).

use coflux_tests::{Proc, Server, example_module_agent, python_agent_for};
use serde_json::json;

const P: &str = "acme";
const SIZE: u64 = 20 * 1024 * 1024;
/// Peak-memory growth allowed per process: well under one copy of a value.
const BOUND_KB: u64 = 12 * 1024;

/// A process's peak resident memory (`VmHWM`), in kB.
fn peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

fn rust_agent(server: &Server) -> Proc {
    example_module_agent(
        server,
        P,
        "examples.semantics",
        &["COFLUX_EXAMPLE_SEMANTICS=1"],
        &["--register"],
    )
}

#[actix_rt::test]
async fn large_values_round_trip_through_python_and_rust_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let python = python_agent_for("semantics_flows", &server.url, P, "production", "a", &[]);
    let rust = rust_agent(&server);
    server
        .wait_registered(P, "production", "big_round_trip")
        .await;
    // Warm up both paths with small values, then measure the peaks.
    for module in ["semantics_flows", "examples.semantics"] {
        let run = server
            .submit(P, "production", module, "big_round_trip", json!([10]))
            .await;
        assert_eq!(server.result(P, &run, 60).await["value"], 10);
    }
    let pids = [
        ("server", server.proc.pid()),
        ("python agent", python.pid()),
        ("rust agent", rust.pid()),
    ];
    let before: Vec<u64> = pids.iter().map(|(_, pid)| peak_kb(*pid)).collect();
    for module in ["semantics_flows", "examples.semantics"] {
        let run = server
            .submit(P, "production", module, "big_round_trip", json!([SIZE]))
            .await;
        let result = server.result(P, &run, 120).await;
        assert_eq!(result["value"], SIZE, "{module}: {result}");
        // The big result itself is stored as a blob, not inline.
        let view = server.inspect(P, &run).await;
        let step = view["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["target"] == "big_text")
            .unwrap();
        let value = &step["executions"][0]["result"]["value"];
        assert!(value["blob"].is_string(), "{module}: {value}");
        assert!(value["size"].as_u64().unwrap() >= SIZE, "{module}: {value}");
    }
    for ((name, pid), before) in pids.iter().zip(before) {
        let growth = peak_kb(*pid).saturating_sub(before);
        eprintln!("{name}: peak memory grew by {growth} kB");
        assert!(
            growth < BOUND_KB,
            "{name}'s peak memory grew by {growth} kB moving two {SIZE}-byte values"
        );
    }
}
