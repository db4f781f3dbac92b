//! Server configuration: command-line flags, `COFLUX_*` environment variables and an optional
//! TOML file, in that order of precedence.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use crate::auth::{AuthMode, is_loopback};

/// `coflux-server`: hosts projects, their environments and runs; agents connect over WebSocket.
#[derive(Debug, Clone, Parser)]
#[command(name = "coflux-server", version, about)]
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
    pub admin_token: Option<String>,
    /// A file holding the admin token (its first line).
    #[arg(long, env = "COFLUX_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// A TOML file with any of the settings above (`data_dir`, `port`, `host`, `durability`,
    /// `reconnect_timeout`, `session_timeout`, `writer_spin_us`, `project_idle_timeout`,
    /// `blob_store`, `s3_bucket`, `s3_endpoint`, `s3_region`, `s3_prefix`, `s3_allow_http`,
    /// `log_retention_days`, `run_retention_days`, `blob_gc_grace_hours`);
    /// flags and environment
    /// variables override it.
    #[arg(long, env = "COFLUX_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Settings read from the optional TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    auth: Option<String>,
    admin_token_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    host: Option<String>,
    durability: Option<String>,
    reconnect_timeout: Option<u64>,
    session_timeout: Option<String>,
    writer_spin_us: Option<u64>,
    project_idle_timeout: Option<String>,
    blob_store: Option<String>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_prefix: Option<String>,
    s3_allow_http: Option<bool>,
    log_retention_days: Option<u64>,
    run_retention_days: Option<u64>,
    blob_gc_grace_hours: Option<u64>,
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

/// The writer's default spin: a sequential task's round trip through an agent takes a few
/// hundred microseconds, so the writer is usually still awake for the next commit (1,000
/// sequential remote tasks: ~0.5 s without, ~0.3 s with it, on a 2-core VM).
const DEFAULT_WRITER_SPIN_US: u64 = 250;
/// The longest writer spin accepted (10 ms).
const MAX_WRITER_SPIN_US: u64 = 10_000;

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
    /// How long each project's writer polls for more work after a commit before it sleeps.
    pub writer_spin: std::time::Duration,
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
            writer_spin: std::time::Duration::from_micros(DEFAULT_WRITER_SPIN_US),
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
            lease_duration: crate::cluster::DEFAULT_LEASE_DURATION,
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
        config.database_url = args.database_url.filter(|u| !u.is_empty());
        if let Some(url) = &config.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            anyhow::bail!("invalid database URL (expected postgres://user:password@host/database)");
        }
        if let Some(url) = args.advertise_url.filter(|u| !u.is_empty()) {
            config.advertise_url = Some(crate::cluster::parse_advertise_url(&url)?);
        }
        if let Some(text) = args.lease_duration {
            config.lease_duration = parse_duration(&text)
                .filter(|d| crate::cluster::LEASE_DURATIONS.contains(d))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid lease duration '{text}' (expected a duration from 1s to 60s, \
                         such as 10s or 5000ms)"
                    )
                })?;
        }
        if config.database_url.is_none() && config.advertise_url.is_some() {
            anyhow::bail!(
                "--advertise-url needs --database-url (nodes share a PostgreSQL database)"
            );
        }
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
        if let Some(text) = args.session_timeout.or(file.session_timeout) {
            config.session_timeout = parse_duration(&text)
                .filter(|d| (MIN_SESSION_TIMEOUT..=MAX_SESSION_TIMEOUT).contains(d))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid session timeout '{text}' (expected a duration from 10s to 1h, \
                         such as 20, 45s or 2m)"
                    )
                })?;
        }
        if let Some(us) = args.writer_spin_us.or(file.writer_spin_us) {
            if us > MAX_WRITER_SPIN_US {
                anyhow::bail!(
                    "invalid writer spin {us} µs (at most {MAX_WRITER_SPIN_US}; 0 disables it)"
                );
            }
            config.writer_spin = std::time::Duration::from_micros(us);
        }
        if let Some(text) = args.project_idle_timeout.or(file.project_idle_timeout) {
            let timeout = parse_duration(&text).ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid project idle timeout '{text}' (expected a duration such as 300, \
                     30s, 5m, 1h or 500ms; 0 keeps projects loaded)"
                )
            })?;
            config.project_idle_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if let Some(days) = args.log_retention_days.or(file.log_retention_days) {
            config.log_retention = retention(days, "log")?;
        }
        if let Some(days) = args.run_retention_days.or(file.run_retention_days) {
            config.run_retention = retention(days, "run")?;
        }
        if let Some(hours) = args.blob_gc_grace_hours.or(file.blob_gc_grace_hours) {
            config.blob_gc_grace = blob_gc_grace(hours)?;
        }
        let s3 = S3Config {
            bucket: args.s3_bucket.or(file.s3_bucket).unwrap_or_default(),
            endpoint: args.s3_endpoint.or(file.s3_endpoint),
            region: args.s3_region.or(file.s3_region),
            prefix: args.s3_prefix.or(file.s3_prefix).unwrap_or_default(),
            allow_http: args.s3_allow_http.or(file.s3_allow_http).unwrap_or(false),
            access_key_id: None,
            secret_access_key: None,
        };
        config.blob_store = blob_store(args.blob_store.or(file.blob_store).as_deref(), s3)?;
        config.auth = match args.auth.or(file.auth) {
            Some(text) => AuthMode::parse(&text).ok_or_else(|| {
                anyhow::anyhow!("invalid auth mode '{text}' (expected 'none' or 'tokens')")
            })?,
            None => AuthMode::default_for(&config.host),
        };
        config.admin_token = match (
            args.admin_token,
            args.admin_token_file.or(file.admin_token_file),
        ) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read the admin token file {}: {e}", path.display())
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ),
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

/// A duration: a number of seconds, or a number followed by `ms`, `s`, `m` or `h` (at most
/// 30 days). `None` when it is not one.
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (ms <= 30 * 24 * 3_600_000).then(|| std::time::Duration::from_millis(ms))
}

/// `--log-retention-days`, `--run-retention-days`: 0 keeps them forever.
fn retention(days: u64, what: &str) -> anyhow::Result<Option<std::time::Duration>> {
    if days == 0 {
        return Ok(None);
    }
    let days = u32::try_from(days)
        .ok()
        .filter(|d| *d <= 100 * 365)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid {what} retention of {days} days (at most 36500)")
        })?;
    Ok(Some(DAY * days))
}

/// `--blob-gc-grace-hours`: 0 disables blob garbage collection.
fn blob_gc_grace(hours: u64) -> anyhow::Result<Option<std::time::Duration>> {
    if hours == 0 {
        return Ok(None);
    }
    let hours = u32::try_from(hours)
        .ok()
        .filter(|h| *h <= 100 * 365 * 24)
        .ok_or_else(|| {
            anyhow::anyhow!("invalid blob GC grace of {hours} hours (at most 876000)")
        })?;
    Ok(Some(HOUR * hours))
}

/// `--blob-store` with the `--s3-*` settings.
fn blob_store(kind: Option<&str>, s3: S3Config) -> anyhow::Result<BlobStoreConfig> {
    let s3_given = !s3.bucket.is_empty()
        || s3.endpoint.is_some()
        || s3.region.is_some()
        || !s3.prefix.is_empty();
    match kind.unwrap_or("local") {
        "local" if s3_given => {
            anyhow::bail!("the --s3-* settings need --blob-store s3")
        }
        "local" => Ok(BlobStoreConfig::Local),
        "s3" if s3.bucket.is_empty() => anyhow::bail!("--blob-store s3 needs --s3-bucket"),
        "s3" => Ok(BlobStoreConfig::S3(s3)),
        other => anyhow::bail!("invalid blob store '{other}' (expected 'local' or 's3')"),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
