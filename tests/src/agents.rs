//! Starting `coflux-agent` processes: with any adapter, the Rust example repository or Python.

use std::path::PathBuf;
use std::process::Command;

use crate::{Proc, Server, bin, log_level, python, workspace_root};

/// Options of an agent process.
pub struct AgentOptions<'a> {
    /// Project.
    pub project: &'a str,
    /// Environment.
    pub environment: &'a str,
    /// Adapter command.
    pub adapter: String,
    /// Modules to host.
    pub modules: Vec<String>,
    /// Working directory.
    pub directory: PathBuf,
    /// Extra flags.
    pub extra: Vec<String>,
}

/// Starts a `coflux-agent` process.
pub fn agent(server: &Server, options: AgentOptions<'_>) -> Proc {
    Proc::spawn(
        "coflux-agent",
        Command::new(bin("coflux-agent"))
            .args(["--server", &server.url])
            .args(["--project", options.project])
            .args(["--environment", options.environment])
            .args(["--adapter", &options.adapter])
            .arg("--directory")
            .arg(&options.directory)
            .args(&options.extra)
            .args(&options.modules)
            .env("COFLUX_LOG", log_level()),
    )
}

/// An agent hosting the Rust example repository.
pub fn rust_agent(server: &Server, project: &str, environment: &str, extra: &[&str]) -> Proc {
    agent(
        server,
        AgentOptions {
            project,
            environment,
            adapter: bin("coflux-example-repo").display().to_string(),
            modules: vec![],
            directory: workspace_root(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        },
    )
}

/// An agent hosting `module` of the Rust example repository in `production` of `project`.
/// `env` (`NAME=value`) is set for the repository, e.g. `COFLUX_EXAMPLE_SEMANTICS=1` to serve
/// its optional targets; `extra` are more agent flags.
pub fn example_module_agent(
    server: &Server,
    project: &str,
    module: &str,
    env: &[&str],
    extra: &[&str],
) -> Proc {
    agent(
        server,
        AgentOptions {
            project,
            environment: "production",
            adapter: format!(
                "env {} {}",
                env.join(" "),
                bin("coflux-example-repo").display()
            ),
            modules: vec![module.to_owned()],
            directory: workspace_root(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        },
    )
}

/// An agent hosting `tests/python/e2e_flows.py` with the test venv's Python.
pub fn python_agent(
    server_url: &str,
    project: &str,
    environment: &str,
    name: &str,
    extra: &[&str],
) -> Proc {
    python_agent_for("e2e_flows", server_url, project, environment, name, extra)
}

/// An agent hosting a module of `tests/python` with the test venv's Python; `AGENT_NAME` is
/// set to `name` in its executors.
pub fn python_agent_for(
    module: &str,
    server_url: &str,
    project: &str,
    environment: &str,
    name: &str,
    extra: &[&str],
) -> Proc {
    Proc::spawn(
        "coflux-agent (python)",
        Command::new(bin("coflux-agent"))
            .args(["--server", server_url])
            .args(["--project", project])
            .args(["--environment", environment])
            .arg("--adapter")
            .arg(format!("{} -m coflux", python().display()))
            .arg("--directory")
            .arg(workspace_root().join("tests/python"))
            .arg("--register")
            .args(extra)
            .arg(module)
            .env("AGENT_NAME", name)
            .env("COFLUX_LOG", log_level()),
    )
}
