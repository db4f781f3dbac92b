//! Support for end-to-end tests with real processes on 127.0.0.1: builds the binaries once,
//! starts `coflux-server` on a free port and `coflux-agent`s against it, and talks to the
//! server's HTTP API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub mod backend;
pub mod tls;

mod agents;
mod assets;
mod http;
mod process;
mod proxy;
mod server;

pub use agents::{
    AgentOptions, agent, example_module_agent, python_agent, python_agent_for, rust_agent,
};
pub use assets::{assert_escape_refused, write_escaping_asset};
pub use http::{get, http, post};
pub use process::Proc;
pub use proxy::Proxy;
pub use server::Server;

/// Where the workspace's binaries are (built once per test process). `COFLUX_BIN_DIR` names a
/// directory of already built binaries instead (e.g. copies, to compare two builds).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("COFLUX_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // target/<profile>/deps/<test> → target/<profile>
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet"])
            .args(if release { &["--release"][..] } else { &[][..] })
            .args([
                "-p",
                "coflux-server",
                "-p",
                "coflux-agent",
                "-p",
                "coflux-examples",
                "--bins",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the binaries failed");
        dir
    });
    dir.join(name)
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python interpreter of the test venv (created by `scripts/setup-python.sh`, which runs
/// on first use).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("COFLUX_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join("target/python-venv/bin/python");
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| {
        if !p.exists() {
            // First run on this machine: create the venv (needs PyPI).
            let _ = std::process::Command::new(workspace_root().join("scripts/setup-python.sh"))
                .status();
        }
    });
    assert!(
        p.exists(),
        "no Python venv with coflux 0.12.0 at {}: run scripts/setup-python.sh",
        p.display()
    );
    p
}

/// The log filter of spawned processes: `COFLUX_TEST_LOG`, or warnings only.
pub fn log_level() -> String {
    std::env::var("COFLUX_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The executions of each step of a run view, as `(target, [states])`.
pub fn step_states(view: &Json) -> Vec<(String, Vec<String>)> {
    view["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    let states = s["executions"]
                        .as_array()
                        .map(|es| {
                            es.iter()
                                .map(|e| e["state"].as_str().unwrap_or("?").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    (s["target"].as_str().unwrap_or("?").to_string(), states)
                })
                .collect()
        })
        .unwrap_or_default()
}
