//! The agent runtime: discovers the repository's targets, keeps a session with the server,
//! runs assigned executions in the executor pool and reports their results.

mod blobs;
mod host;
mod link;
mod metrics;
mod registry;

pub use blobs::{BlobClient, BlobError, ServerBase, hash_file};
pub use host::RemoteHost;
pub use link::{Command, Link, LinkError};
pub use registry::register_manifests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use coflux_core::model::{ExecutionId, ExecutionResult, Requires, TargetDefinition, Value};
use coflux_core::protocol::agent::{
    AgentFrame, DeclaredTarget, Hello, Json, PROTOCOL_VERSION, ServerFrame,
};
use futures::future::AbortHandle;
use tokio::sync::mpsc;

use crate::executor::{AdapterCommand, Assignment, Ending, ExecutorMode, ExecutorPool, PoolConfig};

/// How an agent is configured (from the `coflux-agent` command line).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's base URL (`http://host:port`), or several separated by commas (tried in
    /// turn; see [`AgentConfig::servers`]).
    pub server: String,
    /// The project.
    pub project: String,
    /// The environment.
    pub environment: String,
    /// How many executions run at once.
    pub concurrency: usize,
    /// Tags this agent provides.
    pub provides: Requires,
    /// Tags an execution's `requires` must include for it to run here (empty: any).
    pub accepts: Requires,
    /// Register the manifest with the server on start (and on every change in dev mode).
    pub register: bool,
    /// The adapter command (`None`: detected from the working directory).
    pub adapter: Option<Vec<String>>,
    /// The modules to host.
    pub modules: Vec<String>,
    /// The repository's directory (executors run with it as their working directory).
    pub directory: PathBuf,
    /// How long to wait for running executions on shutdown.
    pub drain_timeout: Duration,
    /// Fork Python executors from a warm fork server, or spawn each one.
    pub executor: ExecutorMode,
}

impl AgentConfig {
    /// The configured server URLs, in order (`server` split at commas).
    pub fn servers(&self) -> Vec<String> {
        parse_servers(&self.server).unwrap_or_else(|_| vec![self.server.clone()])
    }
}

/// Splits a `--server` value at commas and checks each URL (`http(s)://host[:port][/path]`);
/// the error names the bad entry.
pub fn parse_servers(value: &str) -> anyhow::Result<Vec<String>> {
    let mut servers = Vec::new();
    for entry in value.split(',').map(str::trim) {
        if entry.is_empty() {
            anyhow::bail!("--server: an empty entry in {value:?} (separate URLs with commas)");
        }
        let parsed = awc::http::Uri::try_from(entry)
            .map_err(|e| anyhow::anyhow!("--server: {entry:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https"))
            || parsed.host().is_none_or(str::is_empty)
        {
            anyhow::bail!("--server: {entry:?} is not an http:// or https:// URL with a host");
        }
        servers.push(entry.trim_end_matches('/').to_owned());
    }
    Ok(servers)
}

/// The WebSocket URL of a server's agent endpoint.
pub fn agent_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/agent")
}

/// The HTTP address of a node from its agent endpoint URL (the inverse of [`agent_url`]).
pub fn http_base(agent: &str) -> String {
    let base = agent.strip_suffix("/agent").unwrap_or(agent);
    if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        base.to_owned()
    }
}

/// Targets to declare to the server.
pub fn declared(definitions: &[TargetDefinition]) -> Vec<DeclaredTarget> {
    definitions
        .iter()
        .map(|d| DeclaredTarget {
            target: d.target.clone(),
            kind: d.kind,
        })
        .collect()
}

/// A connected agent: its link, pool and running executions.
pub struct Agent {
    config: AgentConfig,
    link: Link,
    pool: Rc<ExecutorPool>,
    host: Rc<RemoteHost>,
    running: Rc<std::cell::RefCell<HashMap<ExecutionId, AbortHandle>>>,
    draining: std::cell::Cell<bool>,
    /// Why the server told the agent to stop, if it did.
    stopped: std::cell::RefCell<Option<String>>,
}

impl Agent {
    /// Builds an agent for `definitions` (already discovered).
    pub fn new(
        config: AgentConfig,
        adapter: AdapterCommand,
        definitions: &[TargetDefinition],
    ) -> Self {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            project: config.project.clone(),
            environment: config.environment.clone(),
            session: None,
            provides: config
                .provides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            accepts: config
                .accepts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            concurrency: u32::try_from(config.concurrency).unwrap_or(u32::MAX),
            targets: declared(definitions),
            claims: Vec::new(),
            previous_session: None,
        };
        let servers = config.servers();
        let link = Link::new(servers.iter().map(|s| agent_url(s)).collect(), hello);
        let host = Rc::new(RemoteHost::new(
            link.clone(),
            BlobClient::following(link.server_base(), &config.project),
        ));
        let mut pool_config =
            PoolConfig::new(adapter, config.directory.clone(), config.concurrency);
        pool_config.mode = config.executor;
        // The fork server imports the modules of the targets found.
        let mut modules: Vec<String> = definitions
            .iter()
            .map(|d| d.target.module.clone())
            .collect();
        modules.sort();
        modules.dedup();
        pool_config.modules = modules;
        let pool = Rc::new(ExecutorPool::new(
            pool_config,
            Rc::clone(&host) as Rc<dyn crate::executor::ExecutorHost>,
        ));
        Self {
            config,
            link,
            pool,
            host,
            running: Rc::default(),
            draining: std::cell::Cell::new(false),
            stopped: std::cell::RefCell::new(None),
        }
    }

    /// Runs until `stop` resolves (then drains) or the server refuses the agent.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let (commands, mut inbox) = mpsc::unbounded_channel();
        let link = self.link.clone();
        let connection = actix_rt::spawn(async move { link.run(commands).await });
        let heartbeat = {
            let link = self.link.clone();
            let running = Rc::clone(&self.running);
            actix_rt::spawn(async move {
                let mut tick = actix_rt::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    let executing = running.borrow().keys().copied().collect();
                    link.send(AgentFrame::Heartbeat { executing });
                }
            })
        };
        futures::pin_mut!(stop);
        let mut connection = connection;
        let outcome = loop {
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => {
                        self.on_command(command);
                        if self.stopped.borrow().is_some() {
                            break Ok(Ok(()));
                        }
                    }
                    None => break (&mut connection).await,
                },
                _ = &mut stop => break Ok(Ok(())),
            }
        };
        // Drain, still handling commands (aborts, and work that raced the drain notice).
        let drained = self.drain();
        futures::pin_mut!(drained);
        loop {
            tokio::select! {
                _ = &mut drained => break,
                Some(command) = inbox.recv() => self.on_command(command),
            }
        }
        heartbeat.abort();
        connection.abort();
        if let Some(reason) = self.stopped.borrow_mut().take() {
            anyhow::bail!("the server stopped this agent: {reason}");
        }
        match outcome {
            Ok(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn on_command(&self, command: Command) {
        match command {
            Command::Execute(ServerFrame::Execute {
                execution,
                target,
                arguments,
                timeout_ms,
                checkpoints,
                streams,
            }) => {
                if self.draining.get() {
                    // Hand it back at once so the server can run it elsewhere.
                    self.link.report(
                        execution,
                        Json::encode(&ExecutionResult::Abandoned { retry: None }),
                    );
                    return;
                }
                let decoded = arguments
                    .decode::<Vec<Value>>()
                    .and_then(|a| Ok((a, checkpoints.decode()?, streams.decode()?)));
                let (arguments, checkpoints, streams) = match decoded {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(%execution, error = %e, "undecodable arguments");
                        let error = coflux_core::model::ErrorInfo::new(
                            "coflux.InvalidArguments",
                            format!("the agent could not decode the arguments: {e}"),
                        );
                        let result = ExecutionResult::Error { error, retry: None };
                        self.link.report(execution, Json::encode(&result));
                        return;
                    }
                };
                self.link.started(execution);
                let pool = Rc::clone(&self.pool);
                let job = async move {
                    pool.execute(Assignment {
                        execution,
                        target,
                        arguments,
                        timeout_ms,
                        checkpoints,
                        streams,
                    })
                    .await
                };
                let (handle, registration) = AbortHandle::new_pair();
                self.running.borrow_mut().insert(execution, handle);
                let link = self.link.clone();
                let running = Rc::clone(&self.running);
                let host = Rc::clone(&self.host);
                actix_rt::spawn(async move {
                    let outcome = futures::future::Abortable::new(job, registration).await;
                    running.borrow_mut().remove(&execution);
                    link.stopped(execution);
                    host.forget(execution);
                    let result = match outcome {
                        Ok(Ok(Ending::Suspended(suspension))) => {
                            return link.report_suspended(execution, suspension);
                        }
                        Ok(Ok(Ending::Result(result))) => Some(result),
                        Ok(Err(e)) => e.into_result(),
                        Err(_aborted) => None,
                    };
                    if let Some(result) = result {
                        link.report(execution, Json::encode(&result));
                    }
                });
            }
            Command::Execute(_) => {}
            Command::Abort(execution) => {
                if let Some(handle) = self.running.borrow_mut().remove(&execution) {
                    handle.abort();
                }
                self.link.stopped(execution);
                self.pool.abort(execution);
            }
            Command::Stop(reason) => {
                tracing::warn!(%reason, "the server asked this agent to stop");
                self.draining.set(true);
                *self.stopped.borrow_mut() = Some(reason);
            }
        }
    }

    /// Stops taking work, then waits (up to the drain timeout) for running executions to
    /// finish and their results to be confirmed.
    pub async fn drain(&self) {
        self.draining.set(true);
        self.link.drain();
        let deadline = tokio::time::Instant::now() + self.config.drain_timeout;
        while (!self.running.borrow().is_empty() || self.link.unconfirmed() > 0)
            && tokio::time::Instant::now() < deadline
        {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        self.pool.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::{agent_url, http_base, parse_servers};

    #[test]
    fn a_nodes_http_address_is_recovered_from_its_agent_endpoint() {
        for server in ["http://a:7777", "https://b.example/prefix"] {
            assert_eq!(http_base(&agent_url(server)), server);
        }
    }

    #[test]
    fn several_servers_are_split_at_commas_and_bad_entries_are_named() {
        assert_eq!(
            parse_servers("http://a:7777, https://b/ ").unwrap(),
            ["http://a:7777", "https://b"]
        );
        let error = parse_servers("http://a:7777,b:7777")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"b:7777\""), "{error}");
        let error = parse_servers("http://a:7777,ftp://c")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"ftp://c\""), "{error}");
        let error = parse_servers("http://a:7777,,http://b")
            .unwrap_err()
            .to_string();
        assert!(error.contains("empty entry"), "{error}");
        assert!(parse_servers("http://a b").is_err());
    }
}
