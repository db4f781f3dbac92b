//! Discovery: `<adapter> discover MODULE...` prints a manifest of the targets it found.

use std::path::Path;

use coflux_core::model::TargetDefinition;
use coflux_core::protocol::executor::Manifest;

use super::adapter::AdapterCommand;

/// Why discovery did not give a complete set of targets.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The adapter command is empty.
    #[error("no adapter command is configured")]
    NoCommand,
    /// The adapter could not be started.
    #[error("could not start '{command}': {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Some modules failed to import (exit code 1). The targets of the modules that did
    /// import are still usable.
    #[error("some modules could not be imported:\n{stderr}")]
    Import {
        /// The adapter's stderr: a traceback per failed module.
        stderr: String,
        /// The targets found in the other modules.
        targets: Vec<TargetDefinition>,
    },
    /// The adapter printed no manifest.
    #[error("discovery printed no manifest (exit status {status:?}):\n{stderr}")]
    NoManifest {
        /// The exit code, if it exited normally.
        status: Option<i32>,
        /// The adapter's stderr.
        stderr: String,
    },
    /// The manifest line did not parse.
    #[error("discovery printed an invalid manifest: {message}")]
    InvalidManifest {
        /// What is wrong.
        message: String,
        /// The adapter's stderr.
        stderr: String,
    },
}

impl DiscoveryError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoCommand => "no_adapter",
            Self::Spawn { .. } => "spawn_failed",
            Self::Import { .. } => "import_error",
            Self::NoManifest { .. } => "no_manifest",
            Self::InvalidManifest { .. } => "invalid_manifest",
        }
    }
}

/// Runs discovery of `modules` in `dir` and gives the targets found. The manifest is the last
/// JSON line of stdout (output before it, such as prints at import time, is ignored).
pub async fn discover(
    adapter: &AdapterCommand,
    dir: &Path,
    modules: &[String],
) -> Result<Vec<TargetDefinition>, DiscoveryError> {
    let mut args = vec!["discover"];
    args.extend(modules.iter().map(String::as_str));
    let mut command = adapter
        .command(dir, &args)
        .ok_or(DiscoveryError::NoCommand)?;
    command.stdin(std::process::Stdio::null());
    let output = command
        .output()
        .await
        .map_err(|source| DiscoveryError::Spawn {
            command: adapter.to_string(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !stderr.is_empty() {
        tracing::debug!(%adapter, %stderr, "discovery stderr");
    }
    let status = output.status.code();
    let manifest = match Manifest::from_discovery_output(&stdout) {
        None => return Err(DiscoveryError::NoManifest { status, stderr }),
        Some(Err(e)) => {
            return Err(DiscoveryError::InvalidManifest {
                message: e.to_string(),
                stderr,
            });
        }
        Some(Ok(manifest)) => manifest,
    };
    let targets = manifest.into_definitions();
    match status {
        Some(0) => Ok(targets),
        Some(1) => Err(DiscoveryError::Import { stderr, targets }),
        status => Err(DiscoveryError::NoManifest { status, stderr }),
    }
}
