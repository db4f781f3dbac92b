//! [`Server`]: a `coflux-server` process on a free port, with helpers for its HTTP API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::{Proc, backend, bin, eventually, free_port, get, http, log_level, post};

/// A `coflux-server` process on a free port.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// Its base URL.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts a server on `data_dir` and waits until it answers.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_on(data_dir, free_port(), &[]).await
    }

    /// Starts a server on a given port with extra flags (and the test backend's, see
    /// [`backend`], unless `extra` names a database).
    pub async fn start_on(data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        let database = if extra.contains(&"--database-url") {
            Vec::new()
        } else {
            backend::server_flags(data_dir)
        };
        let proc = Proc::spawn(
            "coflux-server",
            Command::new(bin("coflux-server"))
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--port", &port.to_string()])
                .args(extra)
                .args(&database)
                .env("COFLUX_LOG", log_level()),
        );
        let server = Self {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http()
                .get(format!("{}/api/health", server.url))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "the server did not start");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Creates a project and an environment (optionally with a parent).
    pub async fn setup(&self, project: &str, environment: &str, parent: Option<&str>) {
        post(&self.url, "/api/projects", json!({ "name": project })).await;
        post(
            &self.url,
            &format!("/api/projects/{project}/environments"),
            json!({ "name": environment, "parent": parent }),
        )
        .await;
    }

    /// Waits until `target` is registered in the environment's manifest.
    pub async fn wait_registered(&self, project: &str, environment: &str, target: &str) {
        let path = format!("/api/projects/{project}/environments/{environment}/manifests");
        eventually(Duration::from_secs(30), "the manifest", || async {
            let body = get(&self.url, &path).await;
            body["targets"]
                .as_array()?
                .iter()
                .any(|t| t["target"]["name"] == target)
                .then_some(())
        })
        .await
    }

    /// Submits a workflow; returns the run id. The workflow need not be registered yet
    /// (`allow_unregistered`): tests submit right after starting agents, which may not have
    /// connected yet; the run waits for them.
    pub async fn submit(
        &self,
        project: &str,
        environment: &str,
        module: &str,
        target: &str,
        arguments: Json,
    ) -> String {
        let body = post(
            &self.url,
            &format!("/api/projects/{project}/environments/{environment}/runs"),
            json!({ "module": module, "target": target, "arguments": arguments,
                "allow_unregistered": true }),
        )
        .await;
        body["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("submitting {module}/{target} failed: {body}"))
            .to_string()
    }

    /// Waits up to `seconds` for a run's result (`{"status": ..., "value"|"error": ...}`).
    pub async fn result(&self, project: &str, run: &str, seconds: u64) -> Json {
        get(
            &self.url,
            &format!("/api/projects/{project}/runs/{run}/result?wait={seconds}"),
        )
        .await
    }

    /// The run as JSON (steps and executions).
    pub async fn inspect(&self, project: &str, run: &str) -> Json {
        get(&self.url, &format!("/api/projects/{project}/runs/{run}")).await
    }
}
