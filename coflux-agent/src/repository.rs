//! A repository served by the agent: discovered (and registered if asked), then served
//! until a stop signal. Shared by the normal run and the `--dev` loop.

use coflux_core::model::TargetDefinition;

use crate::executor::{AdapterCommand, discover};
use crate::runtime::{Agent, AgentConfig, register_manifests};

/// Discovers the repository's targets and registers them if asked.
pub async fn load(
    config: &AgentConfig,
    adapter: &AdapterCommand,
) -> anyhow::Result<Vec<TargetDefinition>> {
    let definitions = discover(adapter, &config.directory, &config.modules)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if definitions.is_empty() {
        anyhow::bail!(
            "no workflows or tasks found in {:?} (adapter: {adapter})",
            config.modules
        );
    }
    if config.register {
        // The configured servers in turn: the first that answers registers them.
        let servers = config.servers();
        for (i, server) in servers.iter().enumerate() {
            let registered =
                register_manifests(server, &config.project, &config.environment, &definitions)
                    .await;
            match registered {
                Ok(()) => break,
                Err(e) if i + 1 < servers.len() => {
                    tracing::warn!(%server, error = %e, "cannot register here; trying the next server");
                }
                Err(e) => return Err(e),
            }
        }
    }
    tracing::info!(
        targets = definitions.len(),
        %adapter,
        "repository loaded"
    );
    Ok(definitions)
}

/// Serves the repository until `stop`.
pub async fn serve(
    config: AgentConfig,
    adapter: AdapterCommand,
    definitions: &[TargetDefinition],
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let agent = Agent::new(config, adapter, definitions);
    agent.run(stop).await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing running executions");
}
