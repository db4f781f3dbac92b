//! The `coflux-agent` command: arguments, the normal run and the `--dev` loop.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use coflux_core::model::Requires;

use crate::executor::{AdapterCommand, ExecutorMode};
use crate::repository::{load, serve, shutdown_signal};
use crate::runtime::AgentConfig;

/// Hosts a repository of workflows and tasks: connects to the server for one project and
/// environment (flags and `COFLUX_*` variables win over the nearest `coflux.toml`), runs what it is assigned through executor processes (Python `coflux` 0.12 or a
/// Rust repository binary) and reports the results.
#[derive(Debug, Clone, Parser)]
#[command(name = "coflux-agent", version, about)]
pub struct AgentArgs {
    /// The server's URL [default: http://127.0.0.1:7777], or several nodes of a cluster
    /// separated by commas (`http://a:7777,http://b:7777`). When a connection attempt fails the
    /// agent tries the next URL, then the nodes the cluster told it about, and waits (backing
    /// off up to 5 s) only after a whole round failed.
    #[arg(long, env = "COFLUX_SERVER")]
    pub server: Option<String>,
    /// The project (required here, in `COFLUX_PROJECT` or in `coflux.toml`).
    #[arg(long, env = "COFLUX_PROJECT")]
    pub project: Option<String>,
    /// Access token (an `agent` token of the project), for a server started with
    /// `--auth tokens`.
    #[arg(long, env = "COFLUX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The environment [default: development].
    #[arg(long, env = "COFLUX_ENVIRONMENT")]
    pub environment: Option<String>,
    /// How many executions run at once (default: number of CPUs + 4).
    #[arg(long, env = "COFLUX_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// A tag this agent provides, as `key:value` (repeatable; `key:a,b` for several values).
    #[arg(long = "provides", value_name = "KEY:VALUE")]
    pub provides: Vec<String>,
    /// Take only executions whose `requires` include this tag, as `key:value` (repeatable;
    /// `key:a,b` accepts either value), as Coflux's `--accepts`.
    #[arg(long = "accepts", value_name = "KEY:VALUE")]
    pub accepts: Vec<String>,
    /// Register the repository's workflows and tasks with the server on start (creating the
    /// project and environment if missing).
    #[arg(long)]
    pub register: bool,
    /// Development mode: register, then watch the directory; on every change rebuild (with
    /// `--build`), re-discover, re-register and restart the executors.
    #[arg(long)]
    pub dev: bool,
    /// The executor command, e.g. `'.venv/bin/python -m coflux'` or `'./target/release/my-repo'`
    /// (default: detected from the directory, like the Coflux CLI).
    #[arg(long, env = "COFLUX_ADAPTER")]
    pub adapter: Option<String>,
    /// In `--dev` mode, a command to run before re-discovering (e.g. `cargo build -p my-repo`).
    #[arg(long)]
    pub build: Option<String>,
    /// The repository's directory (default: the current directory).
    #[arg(long, default_value = ".")]
    pub directory: PathBuf,
    /// How Python executors start: `fork` (from a fork server that has imported the
    /// repository once; falls back to spawning where that is unsafe) or `spawn` (a new process
    /// each).
    #[arg(long, env = "COFLUX_EXECUTOR", default_value = "fork")]
    pub executor: ExecutorMode,
    /// Seconds to wait for running executions on shutdown.
    #[arg(long, default_value_t = 60)]
    pub drain_timeout: u64,
    /// The modules (Python modules or packages; Rust repositories may take none, meaning all).
    pub modules: Vec<String>,
}

/// Parses `key:value` tags.
pub fn parse_provides(tags: &[String]) -> anyhow::Result<Requires> {
    crate::cli::submit::parse_tags("--provides", tags).map_err(|e| anyhow::anyhow!("{e}"))
}

impl AgentArgs {
    /// Fills what neither a flag nor an environment variable gave from a `coflux.toml`.
    pub fn with_file(mut self, file: &crate::cli::config::FileConfig) -> Self {
        self.server = self.server.or_else(|| file.server_url());
        self.token = self.token.or_else(|| file.token.clone());
        self.project = self.project.or_else(|| file.project.clone());
        self.environment = self.environment.or_else(|| file.environment_name());
        self
    }

    fn config(&self) -> anyhow::Result<AgentConfig> {
        let project = self.project.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no project given: use --project NAME, set COFLUX_PROJECT or add project to coflux.toml"
            )
        })?;
        let directory = self.directory.canonicalize().map_err(|e| {
            anyhow::anyhow!("cannot use directory {}: {e}", self.directory.display())
        })?;
        let concurrency = self.concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                + 4
        });
        if concurrency == 0 {
            anyhow::bail!("--concurrency must be at least 1");
        }
        let server = self
            .server
            .clone()
            .unwrap_or_else(|| crate::cli::args::DEFAULT_SERVER.to_owned());
        crate::runtime::parse_servers(&server)?;
        Ok(AgentConfig {
            server,
            project,
            environment: self
                .environment
                .clone()
                .unwrap_or_else(|| "development".to_owned()),
            concurrency,
            provides: parse_provides(&self.provides)?,
            accepts: crate::cli::submit::parse_tags("--accepts", &self.accepts)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            register: self.register || self.dev,
            adapter: self
                .adapter
                .as_ref()
                .map(|a| a.split_whitespace().map(str::to_string).collect()),
            modules: self.modules.clone(),
            directory,
            drain_timeout: Duration::from_secs(self.drain_timeout),
            executor: self.executor,
        })
    }
}

/// Runs the agent until SIGINT/SIGTERM (then drains), or until the server refuses it.
pub async fn run(mut args: AgentArgs) -> anyhow::Result<()> {
    if let Some((_, file)) = crate::cli::config::FileConfig::load()? {
        args = args.with_file(&file);
    }
    crate::net::set_token(args.token.clone());
    let config = args.config()?;
    if config.adapter.as_ref().is_some_and(|a| a.is_empty()) {
        anyhow::bail!("--adapter is empty");
    }
    let adapter = AdapterCommand::resolve(config.adapter.clone(), &config.directory);
    if args.dev {
        return crate::devloop::run(config, adapter, args.build.clone()).await;
    }
    let definitions = load(&config, &adapter).await?;
    serve(config, adapter, &definitions, shutdown_signal()).await
}
