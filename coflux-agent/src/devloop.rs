//! `coflux-agent --dev`: serve the repository, and on every saved change rebuild (if a build
//! command is set), re-discover, re-register and restart. A failed build or import is shown
//! and the agent waits for the next change, keeping nothing half-loaded.

use crate::dev::{BuildCommand, WatchOptions, Watcher};
use crate::executor::AdapterCommand;
use crate::repository::{load, serve, shutdown_signal};
use crate::runtime::AgentConfig;

/// Runs the development loop until SIGINT/SIGTERM.
pub async fn run(
    config: AgentConfig,
    adapter: AdapterCommand,
    build: Option<String>,
) -> anyhow::Result<()> {
    let options = WatchOptions {
        ignore_files: own_output_files(),
        ..WatchOptions::default()
    };
    let mut watcher = Watcher::new(vec![config.directory.clone()], options)
        .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", config.directory.display()))?;
    let build = build.map(|b| BuildCommand::new(b, Some(config.directory.clone())));
    let shutdown = shutdown_signal();
    futures::pin_mut!(shutdown);
    loop {
        let ready = prepare(&config, &adapter, build.as_ref()).await;
        let changed = async {
            loop {
                match watcher.next().await {
                    Some(Ok(batch)) => {
                        eprintln!(
                            "coflux-agent: {} file(s) changed; reloading",
                            batch.paths.len()
                        );
                        return true;
                    }
                    Some(Err(e)) => eprintln!("coflux-agent: watch error: {e}"),
                    None => return false,
                }
            }
        };
        match ready {
            Some(definitions) => {
                // Serve until a change (then restart) or a signal (then stop).
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let served = serve(config.clone(), adapter.clone(), &definitions, async {
                    let _ = stop_rx.await;
                });
                futures::pin_mut!(served);
                let mut stop_tx = Some(stop_tx);
                let mut quitting = false;
                futures::pin_mut!(changed);
                loop {
                    tokio::select! {
                        result = &mut served => {
                            result?;
                            break;
                        }
                        more = &mut changed, if stop_tx.is_some() => {
                            if !more { quitting = true; }
                            if let Some(tx) = stop_tx.take() { let _ = tx.send(()); }
                        }
                        _ = &mut shutdown, if !quitting => {
                            quitting = true;
                            if let Some(tx) = stop_tx.take() { let _ = tx.send(()); }
                        }
                    }
                }
                if quitting {
                    return Ok(());
                }
            }
            None => {
                eprintln!("coflux-agent: waiting for a change to retry");
                tokio::select! {
                    more = changed => if !more { return Ok(()) },
                    _ = &mut shutdown => return Ok(()),
                }
            }
        }
    }
}

/// The regular files this process's stdout and stderr write to (Linux), so that a log
/// redirected into the repository does not start a reload for every line about a reload.
fn own_output_files() -> Vec<std::path::PathBuf> {
    (1..=2)
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .filter(|path| path.is_file())
        .collect()
}

/// Builds and loads the repository; `None` (after printing why) when that failed.
async fn prepare(
    config: &AgentConfig,
    adapter: &AdapterCommand,
    build: Option<&BuildCommand>,
) -> Option<Vec<coflux_core::model::TargetDefinition>> {
    if let Some(build) = build
        && let Err(failure) = build.run().await
    {
        eprintln!("coflux-agent: build failed:\n{failure}");
        return None;
    }
    match load(config, adapter).await {
        Ok(definitions) => {
            eprintln!(
                "coflux-agent: serving {} targets in {}/{}",
                definitions.len(),
                config.project,
                config.environment
            );
            Some(definitions)
        }
        Err(e) => {
            eprintln!("coflux-agent: cannot load the repository: {e:#}");
            None
        }
    }
}
