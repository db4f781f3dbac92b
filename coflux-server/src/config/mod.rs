//! Server configuration in layers: command-line flags, then `COFLUX_*` environment variables
//! (both read by clap), then an optional TOML file, then the defaults of [`ServerConfig::new`].
//! The settings are declared once ([`ServerArgs`]); [`ServerConfig`] is their checked result.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use coflux_core::Tuning;

use crate::auth::{AuthMode, is_loopback};

mod values;

use values::*;
pub use values::{LEASE_DURATIONS, parse_advertise_url};

/// Declares the settings once: the struct (each setting an `Option`, parsed from flags and
/// `COFLUX_*` variables by clap and from the TOML file by serde) and its layering.
macro_rules! settings {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$field_meta:meta])* pub $field:ident: Option<$type:ty>,)*
    }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: Option<$type>,)*
        }

        impl $name {
            /// Each setting given here, else the one of `lower`; with the names of those taken
            /// from `lower`.
            fn over(self, lower: Self) -> (Self, Vec<&'static str>) {
                let mut from_lower = Vec::new();
                let merged = Self {
                    $($field: match self.$field {
                        Some(value) => Some(value),
                        None => {
                            if lower.$field.is_some() {
                                from_lower.push(stringify!($field));
                            }
                            lower.$field
                        }
                    },)*
                };
                (merged, from_lower)
            }
        }
    };
}

settings! {
/// `coflux-server`: hosts projects, their environments and runs; agents connect over WebSocket.
///
/// Every setting is a flag and a `COFLUX_*` environment variable; all but the admin token are
/// also keys of the `--config` file.
#[derive(Debug, Clone, Default, Parser, Deserialize)]
#[command(name = "coflux-server", version, about)]
#[serde(deny_unknown_fields)]
pub struct ServerArgs {
    /// Data directory (one SQLite database per project, blobs).
    #[arg(long, env = "COFLUX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user:password@host:port/database`): every project's state
    /// and the project catalogue go there, one schema per project, instead of SQLite files in
    /// the data directory (which still holds logs, local blobs and tokens).
    #[arg(long, env = "COFLUX_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// With `--database-url`: the URL other nodes (and agents they redirect) reach this node
    /// at, e.g. `http://10.0.0.5:7777`; it is also the node's id in the cluster. Default
    /// `http://<host>:<port>`.
    #[arg(long, env = "COFLUX_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,
    /// With `--database-url`: how long a node's ownership of a project lasts unless renewed
    /// (renewed every fifth of it); a node that stops renewing loses its projects to the
    /// others this long after its last renewal. A duration: `10s`, `5000ms`; 1 s to 60 s.
    /// Default 10s.
    #[arg(long, env = "COFLUX_LEASE_DURATION", value_name = "DURATION")]
    pub lease_duration: Option<String>,
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
    /// How long an agent's connection may stay silent (no frame, no answer to the server's
    /// pings, sent every 5 s) before the server closes it; its session then waits
    /// `--reconnect-timeout` for the agent. A duration: `20`, `20s`, `1m`; 10 s to 1 h.
    /// Default 20s.
    #[arg(long, env = "COFLUX_SESSION_TIMEOUT", value_name = "DURATION")]
    pub session_timeout: Option<String>,
    /// Microseconds each project's store writer keeps polling for more work after a commit
    /// before its thread sleeps (0: never). A chain of dependent tasks commits every few hundred
    /// microseconds and would otherwise wake the writer for each commit. At most 10,000.
    /// Default 250.
    #[arg(long, env = "COFLUX_WRITER_SPIN_US", value_name = "MICROSECONDS")]
    pub writer_spin_us: Option<u64>,
    /// How long a project stays loaded while idle (no request, agent, active run, waiting
    /// caller or cron schedule) before it is unloaded, its database closed; the next request
    /// or agent loads it again. A duration: `300` or `300s`, `5m`, `1h`, `500ms`; 0 keeps
    /// projects loaded. Default 5m.
    #[arg(long, env = "COFLUX_PROJECT_IDLE_TIMEOUT", value_name = "DURATION")]
    pub project_idle_timeout: Option<String>,
    /// Where blobs (large values, pickled objects, asset files) are stored: `local` (in
    /// `<data-dir>/blobs`, the default) or `s3` (an S3-compatible bucket; see `--s3-*`).
    #[arg(long, env = "COFLUX_BLOB_STORE", value_name = "local|s3")]
    pub blob_store: Option<String>,
    /// S3 bucket of the `s3` blob store (required with it). Credentials come from the
    /// standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, …).
    #[arg(long, env = "COFLUX_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint URL, for S3-compatible servers (e.g. `http://127.0.0.1:9000`); default AWS.
    #[arg(long, env = "COFLUX_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`).
    #[arg(long, env = "COFLUX_S3_REGION")]
    pub s3_region: Option<String>,
    /// Prefix of every object name in the bucket; blobs are `<prefix>/<project>/<key>`.
    #[arg(long, env = "COFLUX_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// Allow a plain `http://` S3 endpoint (for a local test server).
    #[arg(long, env = "COFLUX_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub s3_allow_http: Option<bool>,
    /// Days execution logs are kept; older ones are deleted by a background sweep (hourly).
    /// 0 keeps them forever. Default 30.
    #[arg(long, env = "COFLUX_LOG_RETENTION_DAYS")]
    pub log_retention_days: Option<u64>,
    /// Days finished runs are kept; older ones (with their steps, executions, logs, metrics,
    /// checkpoints, streams, inputs and asset records) are deleted by a background sweep
    /// (hourly). Runs a newer run still links to (a cache hit) are kept until it goes.
    /// Default: runs are kept forever (0 too).
    #[arg(long, env = "COFLUX_RUN_RETENTION_DAYS")]
    pub run_retention_days: Option<u64>,
    /// Garbage collection of blobs: a background sweep (15 minutes after start, then every 6
    /// hours) deletes the blobs that no step argument, result, schedule, asset record or log
    /// message of their project references AND that were neither written nor checked (`HEAD`,
    /// upload, asset creation) for this many hours, the grace that protects uploads whose
    /// reference is not recorded yet. 0 disables it. Default 24.
    #[arg(long, env = "COFLUX_BLOB_GC_GRACE_HOURS", value_name = "HOURS")]
    pub blob_gc_grace_hours: Option<u64>,
    /// Authentication: `tokens` (requests present a bearer token) or `none` (only allowed
    /// while listening on a loopback address). Default: `none` on loopback, `tokens` otherwise.
    #[arg(long, env = "COFLUX_AUTH", value_name = "none|tokens")]
    pub auth: Option<String>,
    /// The admin token (with `--auth tokens`): full access, and creates the other tokens
    /// (`coflux tokens create`). At least 16 characters. Prefer `--admin-token-file`.
    #[arg(long, env = "COFLUX_ADMIN_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// A file holding the admin token (its first line).
    #[arg(long, env = "COFLUX_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// A TOML file with any of the settings above but the admin token, its keys the flags'
    /// names with `_` (`data_dir`, `port`, `writer_spin_us`, `s3_bucket`, …); flags and
    /// environment variables override it.
    #[arg(long, env = "COFLUX_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}
}

/// Where blobs are stored.
#[derive(Debug, Clone, Default)]
pub enum BlobStoreConfig {
    /// In `<data_dir>/blobs` (the default).
    #[default]
    Local,
    /// In an S3-compatible bucket.
    S3(S3Config),
}

/// The settings of the S3 blob store. Anything left unset comes from the standard `AWS_*`
/// environment variables.
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The endpoint URL (for S3-compatible servers); `None` for AWS.
    pub endpoint: Option<String>,
    /// The region; `None` for `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1`.
    pub region: Option<String>,
    /// Prefix of every object name (`<prefix>/<project>/<key>`); empty for none.
    pub prefix: String,
    /// Whether a plain `http://` endpoint is allowed.
    pub allow_http: bool,
    /// An access key id overriding `AWS_ACCESS_KEY_ID` (for embedding and tests).
    pub access_key_id: Option<String>,
    /// A secret key overriding `AWS_SECRET_ACCESS_KEY` (for embedding and tests).
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the credentials.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

/// The default log retention (`--log-retention-days`).
pub const DEFAULT_LOG_RETENTION_DAYS: u64 = 30;

const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// The default grace of blob garbage collection (`--blob-gc-grace-hours`).
pub const DEFAULT_BLOB_GC_GRACE_HOURS: u64 = 24;

const HOUR: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The default `--data-dir`.
const DEFAULT_DATA_DIR: &str = "./data";

/// The default `--project-idle-timeout`.
const DEFAULT_PROJECT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The default `--session-timeout`: an agent's connection silent this long is closed.
pub const DEFAULT_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// The shortest `--session-timeout` accepted (twice the server's ping interval).
const MIN_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest `--session-timeout` accepted.
const MAX_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The server's resolved configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// Whether requests need a token.
    pub auth: AuthMode,
    /// The admin token (with [`AuthMode::Tokens`]).
    pub admin_token: Option<String>,
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
    /// How long an agent's connection may stay silent before it is closed.
    pub session_timeout: std::time::Duration,
    /// How long each project's writer polls for more work after a commit before it sleeps
    /// (`--writer-spin-us`), and in-process workers for their next message.
    pub tuning: Tuning,
    /// How long an idle project stays loaded (`None`: until the server stops).
    pub project_idle_timeout: Option<std::time::Duration>,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// Where blobs are stored.
    pub blob_store: BlobStoreConfig,
    /// How long execution logs are kept (`None`: forever).
    pub log_retention: Option<std::time::Duration>,
    /// How often the log retention sweep runs.
    pub log_sweep_interval: std::time::Duration,
    /// How long finished runs are kept (`None`: forever; see [`crate::run_retention`]).
    pub run_retention: Option<std::time::Duration>,
    /// How often the run retention sweep runs.
    pub run_sweep_interval: std::time::Duration,
    /// Blob garbage collection: unreferenced blobs neither written nor checked for this long
    /// are deleted (`None`: never; see [`crate::gc`]).
    pub blob_gc_grace: Option<std::time::Duration>,
    /// How often the blob garbage collection sweep runs (the first runs after at most
    /// [`crate::gc::FIRST_SWEEP`]).
    pub blob_gc_interval: std::time::Duration,
    /// PostgreSQL URL for project state (`None`: SQLite in the data directory).
    pub database_url: Option<String>,
    /// With `database_url`: how other nodes reach this one (`None`: `http://<host>:<port>`).
    pub advertise_url: Option<String>,
    /// With `database_url`: how long a project lease lasts unless renewed.
    pub lease_duration: std::time::Duration,
}

impl ServerConfig {
    /// Defaults for a data directory: port 7777 on 127.0.0.1, normal durability, 30 s
    /// reconnection timeout, 20 s session (silence) timeout, local blobs, logs kept 30 days (swept hourly), unreferenced blobs
    /// collected after 24 hours (swept every 6 hours).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            auth: AuthMode::None,
            admin_token: None,
            host: "127.0.0.1".into(),
            port: 7777,
            durability: coflux_core::store::Durability::Normal,
            reconnect_timeout: std::time::Duration::from_secs(30),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            tuning: Tuning::server(),
            project_idle_timeout: Some(DEFAULT_PROJECT_IDLE_TIMEOUT),
            http_workers: 2,
            blob_store: BlobStoreConfig::Local,
            log_retention: Some(DAY * DEFAULT_LOG_RETENTION_DAYS as u32),
            log_sweep_interval: std::time::Duration::from_secs(60 * 60),
            run_retention: None,
            run_sweep_interval: std::time::Duration::from_secs(60 * 60),
            blob_gc_grace: Some(HOUR * DEFAULT_BLOB_GC_GRACE_HOURS as u32),
            blob_gc_interval: HOUR * 6,
            database_url: None,
            advertise_url: None,
            lease_duration: values::DEFAULT_LEASE_DURATION,
        }
    }

    /// Resolves flags and environment (`args`) over the config file over the defaults.
    pub fn from_args(args: ServerArgs) -> anyhow::Result<Self> {
        let Some(path) = args.config.clone() else {
            return Self::resolve(args, &Origin::default());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let file: ServerArgs = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))?;
        let (settings, from_file) = args.over(file);
        Self::resolve(settings, &Origin { path, from_file })
    }

    /// The defaults with `settings` applied and checked; `origin` names the file a bad
    /// setting came from.
    fn resolve(s: ServerArgs, origin: &Origin) -> anyhow::Result<Self> {
        // A setting parsed, its error naming the file and key when it came from the file.
        macro_rules! parsed {
            ($key:ident, $parse:expr) => {
                s.$key
                    .map(|value| origin.check(stringify!($key), ($parse)(value)))
                    .transpose()?
            };
        }
        let mut config = Self::new(
            s.data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        );
        config.database_url = parsed!(database_url, database_url).flatten();
        config.advertise_url = parsed!(advertise_url, advertise_url).flatten();
        if let Some(lease) = parsed!(lease_duration, lease_duration) {
            config.lease_duration = lease;
        }
        if config.database_url.is_none() && config.advertise_url.is_some() {
            anyhow::bail!(
                "--advertise-url needs --database-url (nodes share a PostgreSQL database)"
            );
        }
        if let Some(port) = s.port {
            config.port = port;
        }
        if let Some(host) = s.host {
            config.host = host;
        }
        if let Some(durability) = parsed!(durability, durability) {
            config.durability = durability;
        }
        if let Some(secs) = s.reconnect_timeout {
            config.reconnect_timeout = std::time::Duration::from_secs(secs);
        }
        if let Some(timeout) = parsed!(session_timeout, session_timeout) {
            config.session_timeout = timeout;
        }
        if let Some(spin) = parsed!(writer_spin_us, writer_spin) {
            config.tuning.writer_spin = spin;
        }
        if let Some(timeout) = parsed!(project_idle_timeout, project_idle_timeout) {
            config.project_idle_timeout = timeout;
        }
        if let Some(retention) = parsed!(log_retention_days, |days| retention(days, "log")) {
            config.log_retention = retention;
        }
        if let Some(retention) = parsed!(run_retention_days, |days| retention(days, "run")) {
            config.run_retention = retention;
        }
        if let Some(grace) = parsed!(blob_gc_grace_hours, blob_gc_grace) {
            config.blob_gc_grace = grace;
        }
        let s3 = S3Config {
            bucket: s.s3_bucket.unwrap_or_default(),
            endpoint: s.s3_endpoint,
            region: s.s3_region,
            prefix: s.s3_prefix.unwrap_or_default(),
            allow_http: s.s3_allow_http.unwrap_or(false),
            access_key_id: None,
            secret_access_key: None,
        };
        config.blob_store = blob_store(s.blob_store.as_deref(), s3)?;
        config.auth = match parsed!(auth, auth) {
            Some(auth) => auth,
            None => AuthMode::default_for(&config.host),
        };
        config.admin_token = match (s.admin_token, s.admin_token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(read_admin_token(&path)?),
            (None, None) => None,
        };
        config.check_auth()?;
        Ok(config)
    }

    /// This node's URL in a cluster: `--advertise-url`, else `http://<host>:<port>` (which
    /// must then be an address other nodes can reach: not `0.0.0.0`, not port 0).
    pub fn node_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.advertise_url {
            return Ok(url.clone());
        }
        let unspecified = self
            .host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if unspecified || self.port == 0 {
            anyhow::bail!(
                "with --database-url, set --advertise-url (COFLUX_ADVERTISE_URL) to the URL other \
                 nodes reach this one at: {}:{} is not one",
                self.host,
                self.port
            );
        }
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        Ok(format!("http://{host}:{}", self.port))
    }

    /// Refuses settings that would leave the server open: no authentication beyond loopback,
    /// or tokens without an admin token to create them.
    pub fn check_auth(&self) -> anyhow::Result<()> {
        match self.auth {
            AuthMode::None if !is_loopback(&self.host) => anyhow::bail!(
                "refusing to listen on {} without authentication: anyone who reaches it could \
                 run code on your agents. Start with --auth tokens and an admin token \
                 (COFLUX_ADMIN_TOKEN or --admin-token-file), or listen on 127.0.0.1",
                self.host
            ),
            AuthMode::Tokens => match &self.admin_token {
                None => anyhow::bail!(
                    "--auth tokens needs an admin token: set COFLUX_ADMIN_TOKEN or pass \
                     --admin-token-file (at least {MIN_ADMIN_TOKEN_LEN} characters)"
                ),
                Some(token) if token.len() < MIN_ADMIN_TOKEN_LEN => anyhow::bail!(
                    "the admin token is too short (at least {MIN_ADMIN_TOKEN_LEN} characters)"
                ),
                Some(_) => Ok(()),
            },
            AuthMode::None => Ok(()),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the admin token.
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth)
            .field("blob_store", &self.blob_store)
            .field("postgres", &self.database_url.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
