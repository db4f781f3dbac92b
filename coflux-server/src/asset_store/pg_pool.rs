//! [`PgPool`]: a few blocking PostgreSQL connections to the shared `public` tables (asset
//! records, blob uses), taken per call and given back. At most [`MAX`] are open at once: a
//! burst of calls waits for a connection rather than open one each (and exhaust the
//! database's connections).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use coflux_core::store::postgres::off_runtime;
use postgres::{Client, NoTls};

/// The most connections open at once.
const MAX: usize = 4;

#[derive(Default)]
struct Slots {
    idle: Vec<Client>,
    /// Connections open (idle or in use) or being opened.
    open: usize,
}

/// Blocking connections to one database.
pub(crate) struct PgPool {
    url: String,
    /// Run on each new connection.
    setup: String,
    slots: Mutex<Slots>,
    freed: Condvar,
}

impl PgPool {
    /// A pool of connections to `url`; none is opened yet. Each new connection runs
    /// `settings` (SQL, may be empty) after setting its `application_name` to `name`.
    pub(crate) fn new(url: &str, name: &'static str, settings: &str) -> Self {
        Self {
            url: url.to_owned(),
            setup: format!("SET application_name TO '{name}'; {settings}"),
            slots: Mutex::new(Slots::default()),
            freed: Condvar::new(),
        }
    }

    /// The database URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, or the right to open one (`None`), waiting while [`MAX`] are open.
    fn take(&self) -> Option<Client> {
        let mut slots = self.lock();
        loop {
            if let Some(client) = slots.idle.pop() {
                if !client.is_closed() {
                    return Some(client);
                }
                slots.open -= 1;
                continue;
            }
            if slots.open < MAX {
                slots.open += 1;
                return None;
            }
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Gives a connection back (or only its slot, when it failed or was never opened).
    fn give_back(&self, client: Option<Client>) {
        let mut slots = self.lock();
        match client {
            Some(client) if !client.is_closed() => slots.idle.push(client),
            _ => slots.open -= 1,
        }
        drop(slots);
        self.freed.notify_one();
    }

    /// Runs `f` on a connection (off any async worker); the connection is kept for the next
    /// call unless it failed or was closed.
    pub(crate) fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, postgres::Error> {
        off_runtime(|| {
            let mut client = match self.take() {
                Some(client) => client,
                None => match Client::connect(&self.url, NoTls)
                    .and_then(|mut c| c.batch_execute(&self.setup).map(|()| c))
                {
                    Ok(client) => client,
                    Err(e) => {
                        self.give_back(None);
                        return Err(e);
                    }
                },
            };
            let result = f(&mut client);
            if result.is_ok() {
                self.give_back(Some(client));
            } else {
                // Its state is unknown (e.g. a broken transaction): closed.
                drop(client);
                self.give_back(None);
            }
            result
        })
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // A client owns a runtime, which must not be dropped on an async worker.
        let idle = std::mem::take(&mut self.lock().idle);
        off_runtime(move || drop(idle));
    }
}
