//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use coflux_core::{Coflux, Config};

use crate::agents::sessions::Sessions;
use crate::asset_store::AssetStore;
use crate::auth::{Auth, TokenStore};
use crate::blobs::BlobStore;
use crate::cluster::Cluster;
use crate::config::BlobStoreConfig;
use crate::config::ServerConfig;
use crate::gc::BlobGc;
use crate::logs::{LogStore, LogStoreOptions};
use crate::run_retention::RunRetention;

/// Shared by every HTTP handler and agent connection.
pub struct AppState {
    /// The orchestrator.
    pub coflux: Coflux,
    /// Agent sessions.
    pub sessions: Arc<Sessions>,
    /// Execution logs and metrics: one `logs.sqlite` per project, or PostgreSQL tables with
    /// `--database-url`, written by a dedicated thread.
    pub logs: Arc<LogStore>,
    /// Blobs: a local directory or an S3 bucket (`ServerConfig::blob_store`).
    pub blobs: BlobStore,
    /// Asset records: files in the data directory, or a PostgreSQL table with
    /// `--database-url`.
    pub assets: Arc<AssetStore>,
    /// The blob garbage collector, when enabled (`ServerConfig::blob_gc_grace`); its periodic
    /// sweep runs while this state is alive.
    pub blob_gc: Option<Arc<BlobGc>>,
    /// Run retention, when enabled (`ServerConfig::run_retention`); its periodic sweep runs
    /// while this state is alive.
    pub run_retention: Option<Arc<RunRetention>>,
    /// Authentication: the mode, the admin token and the token store.
    pub auth: Arc<Auth>,
    /// The configuration the server started with.
    pub config: ServerConfig,
    /// With `--database-url`: this node's view of the cluster (routing to projects' owners).
    pub cluster: Option<Arc<Cluster>>,
}

impl AppState {
    /// Opens the data directory and starts the orchestrator.
    pub async fn open(config: &ServerConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut core = Config::new(&config.data_dir);
        core.durability = config.durability;
        core.database_url = config.database_url.clone();
        core.tuning = config.tuning;
        // Executions running when the server stopped stay claimable by reconnecting agents.
        core.recovery_grace = config.reconnect_timeout;
        core.project_idle_timeout = config.project_idle_timeout;
        // Log messages refer to assets too: run retention removes asset records with them.
        core.asset_records_by_host = true;
        // Projects share one arbiter and one writer thread per core.
        core.project_threads = std::thread::available_parallelism().map_or(2, usize::from);
        let cluster = match &config.database_url {
            Some(url) => {
                let node = config.node_url()?;
                let blobs = match config.blob_store {
                    BlobStoreConfig::Local => "local",
                    BlobStoreConfig::S3(_) => "s3",
                };
                let cluster = Cluster::open(url, &node, config.lease_duration, blobs)?;
                core.cluster = Some(coflux_core::api::ClusterConfig {
                    node,
                    lease_duration: config.lease_duration,
                    blobs: blobs.to_owned(),
                });
                Some(Arc::new(cluster))
            }
            None => None,
        };
        let coflux = Coflux::open_with(core).await?;
        let log_options = LogStoreOptions {
            durability: config.durability,
            ..Default::default()
        };
        let logs = Arc::new(match &config.database_url {
            Some(url) => LogStore::open_postgres(url, log_options)?,
            None => LogStore::open_with(&config.data_dir, log_options)?,
        });
        if let Some(retention) = config.log_retention {
            logs.start_retention(retention, config.log_sweep_interval);
        }
        let assets = Arc::new(match &config.database_url {
            Some(url) => AssetStore::postgres(url)?,
            None => AssetStore::files(&config.data_dir),
        });
        let run_retention = config.run_retention.map(|retention| {
            let sweeper = Arc::new(RunRetention::new(
                coflux.clone(),
                Arc::clone(&logs),
                Arc::clone(&assets),
                retention,
            ));
            sweeper.start(config.run_sweep_interval);
            sweeper
        });
        let mut blobs = BlobStore::from_config(&config.data_dir, &config.blob_store)?;
        tracing::info!(backend = blobs.backend_name(), "blob store ready");
        // Over PostgreSQL every node records blob uses there, so whichever node sweeps sees them.
        let blob_gc = match config.blob_gc_grace {
            None => None,
            Some(grace) => {
                blobs = match &config.database_url {
                    Some(url) => blobs.clone().with_shared_usage_tracking(url)?,
                    None => blobs.clone().with_usage_tracking(),
                };
                let gc = Arc::new(BlobGc::new(
                    coflux.clone(),
                    blobs.clone(),
                    Arc::clone(&logs),
                    Arc::clone(&assets),
                    grace,
                ));
                gc.start(config.blob_gc_interval);
                Some(gc)
            }
        };
        config.check_auth()?;
        let tokens = match &config.database_url {
            Some(url) => TokenStore::open_postgres(url)?,
            None => TokenStore::open(&config.data_dir)?,
        };
        let auth = Arc::new(Auth::new(
            config.auth,
            config.admin_token.as_deref(),
            tokens,
        ));
        if config.database_url.is_some() {
            reload_tokens(Arc::downgrade(&auth));
        }
        Ok(Self {
            auth,
            coflux,
            blobs,
            assets,
            blob_gc,
            run_retention,
            logs,
            sessions: Arc::new(Sessions::new(
                config.reconnect_timeout,
                config.session_timeout,
            )),
            config: config.clone(),
            cluster,
        })
    }
}

/// How often a server over PostgreSQL reads the tokens again (to see those created or revoked
/// on other nodes).
const TOKEN_RELOAD: std::time::Duration = std::time::Duration::from_secs(10);

/// Reloads the tokens every [`TOKEN_RELOAD`] while `auth` lives.
fn reload_tokens(auth: std::sync::Weak<Auth>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TOKEN_RELOAD).await;
            let Some(auth) = auth.upgrade() else {
                return;
            };
            let reloaded = tokio::task::spawn_blocking(move || auth.tokens().reload()).await;
            if let Ok(Err(error)) = reloaded {
                tracing::warn!(%error, "could not reload the tokens");
            }
        }
    });
}
