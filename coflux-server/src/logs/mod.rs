//! Execution logs, kept apart from orchestration so that they never slow it down: one
//! `logs.sqlite` per project (next to its orchestration database), or with `--database-url`
//! tables in PostgreSQL shared by every node ([`backend`]), written by a dedicated
//! thread in batches ([`LogStore`]), read over HTTP as pages or followed as server-sent events,
//! and deleted after the retention period by a background sweep ([`LogStore::start_retention`]).
//! Execution metrics live in the same database ([`metrics`]): [`LogStore::append_metrics`],
//! [`LogStore::query_metrics`].
//!
//! Wiring: the handlers extract `web::Data<LogStore>`; register it with
//! `App::app_data(web::Data::from(arc_of_log_store))` and call [`configure`].

mod backend;
mod http;
pub mod metrics;
mod options;
mod pg_metrics;
mod postgres;
mod record;
mod retention;
mod schema;
mod sqlite;
mod store;
mod writer;

pub use http::{KEEP_ALIVE, configure};
pub use options::{LogStats, LogStoreOptions};
pub use record::{
    LogError, LogFilter, LogPage, LogRecord, MAX_LEVEL, MAX_TEMPLATE_BYTES, MAX_VALUES_BYTES,
    RecordError, StoredLog, display_value,
};
pub use retention::{SweepReport, now_ms};
pub use sqlite::{LOGS_FILE, logs_db_path};
pub use store::{LogStore, MAX_PAGE};
