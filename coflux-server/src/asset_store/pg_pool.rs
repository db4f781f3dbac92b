//! [`PgPool`]: a few idle blocking PostgreSQL connections to the shared `public` tables
//! (asset records, blob uses), taken per call and given back.

use std::sync::{Mutex, PoisonError};

use coflux_core::store::postgres::off_runtime;
use postgres::{Client, NoTls};

/// Idle connections kept.
const IDLE: usize = 4;

/// Blocking connections to one database, `application_name` set to the pool's name.
pub(crate) struct PgPool {
    url: String,
    /// Run on each new connection.
    setup: String,
    idle: Mutex<Vec<Client>>,
}

impl PgPool {
    /// A pool of connections to `url`; none is opened yet. Each new connection runs
    /// `settings` (SQL, may be empty) after setting its `application_name` to `name`.
    pub(crate) fn new(url: &str, name: &'static str, settings: &str) -> Self {
        Self {
            url: url.to_owned(),
            setup: format!("SET application_name TO '{name}'; {settings}"),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The database URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` on a connection (off any async worker); the connection is kept for the next
    /// call unless it failed or was closed.
    pub(crate) fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, postgres::Error> {
        off_runtime(|| {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut client = match idle {
                Some(client) if !client.is_closed() => client,
                _ => {
                    let mut client = Client::connect(&self.url, NoTls)?;
                    client.batch_execute(&self.setup)?;
                    client
                }
            };
            let result = f(&mut client);
            if result.is_ok() && !client.is_closed() {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < IDLE {
                    idle.push(client);
                    return result;
                }
            }
            drop(client);
            result
        })
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // A client owns a runtime, which must not be dropped on an async worker.
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        off_runtime(move || drop(idle));
    }
}
