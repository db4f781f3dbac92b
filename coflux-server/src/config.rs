//! Server configuration: command-line flags, `COFLUX_*` environment variables and an optional
//! TOML file, in that order of precedence.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// `coflux-server`: hosts projects, their environments and runs; agents connect over WebSocket.
#[derive(Debug, Clone, Parser)]
#[command(name = "coflux-server", version, about)]
pub struct ServerArgs {
    /// Data directory (one SQLite database per project, blobs).
    #[arg(long, env = "COFLUX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Port to listen on.
    #[arg(long, env = "COFLUX_PORT")]
    pub port: Option<u16>,
    /// Address to bind.
    #[arg(long, env = "COFLUX_HOST")]
    pub host: Option<String>,
    /// Commit durability: `normal` (survives a process crash) or `full` (fsync on every commit;
    /// survives power loss).
    #[arg(long, env = "COFLUX_DURABILITY")]
    pub durability: Option<String>,
    /// Seconds a disconnected agent's session is kept for it to reconnect before its executions
    /// are abandoned.
    #[arg(long, env = "COFLUX_RECONNECT_TIMEOUT")]
    pub reconnect_timeout: Option<u64>,
    /// A TOML file with any of the settings above (`data_dir`, `port`, `host`, `durability`,
    /// `reconnect_timeout`); flags and environment variables override it.
    #[arg(long, env = "COFLUX_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Settings read from the optional TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    host: Option<String>,
    durability: Option<String>,
    reconnect_timeout: Option<u64>,
}

/// The server's resolved configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Address to bind.
    pub host: String,
    /// Port (0 picks a free one).
    pub port: u16,
    /// Commit durability.
    pub durability: coflux_core::store::Durability,
    /// How long a disconnected agent session is kept.
    pub reconnect_timeout: std::time::Duration,
    /// HTTP worker threads.
    pub http_workers: usize,
}

impl ServerConfig {
    /// Defaults for a data directory: port 7777 on 127.0.0.1, normal durability, 30 s
    /// reconnection timeout.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            host: "127.0.0.1".into(),
            port: 7777,
            durability: coflux_core::store::Durability::Normal,
            reconnect_timeout: std::time::Duration::from_secs(30),
            http_workers: 2,
        }
    }

    /// Resolves flags, environment and the config file.
    pub fn from_args(args: ServerArgs) -> anyhow::Result<Self> {
        let file: FileConfig = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", path.display())
                })?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut config = Self::new(
            args.data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
        );
        if let Some(port) = args.port.or(file.port) {
            config.port = port;
        }
        if let Some(host) = args.host.or(file.host) {
            config.host = host;
        }
        if let Some(d) = args.durability.or(file.durability) {
            config.durability = match d.as_str() {
                "normal" => coflux_core::store::Durability::Normal,
                "full" => coflux_core::store::Durability::Full,
                other => {
                    anyhow::bail!("invalid durability '{other}' (expected 'normal' or 'full')")
                }
            };
        }
        if let Some(secs) = args.reconnect_timeout.or(file.reconnect_timeout) {
            config.reconnect_timeout = std::time::Duration::from_secs(secs);
        }
        Ok(config)
    }
}
