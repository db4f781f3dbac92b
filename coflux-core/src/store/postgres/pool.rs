//! Idle read-only connections kept for the API's reads ([`take`], [`give_back`]), so that a
//! request does not pay for a connection (TCP, authentication, `search_path`, statement
//! preparation) each time. A few per project schema, a bounded number in all.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::{PgLocation, PgStore};
use crate::store::StoreError;

/// Idle readers kept per project.
const PER_PROJECT: usize = 2;
/// Idle readers kept in all (beyond it, a returned reader is closed).
const TOTAL: usize = 64;

#[derive(Default)]
struct Pool {
    idle: HashMap<PgLocation, Vec<PgStore>>,
    total: usize,
}

fn pool() -> &'static Mutex<Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    pool().lock().unwrap_or_else(|p| p.into_inner())
}

/// An idle reader of `location`, or a new one.
pub(crate) fn take(location: &PgLocation) -> Result<PgStore, StoreError> {
    loop {
        let idle = {
            let mut pool = lock();
            let store = pool.idle.get_mut(location).and_then(Vec::pop);
            if store.is_some() {
                pool.total -= 1;
            }
            store
        };
        match idle {
            Some(store) if store.is_open() => return Ok(store),
            // Closed by the server (restarted, idle timeout): dropped, try the next one.
            Some(store) => drop(store),
            None => return PgStore::open_reader(location),
        }
    }
}

/// Keeps `store` (a reader) for the next [`take`] of its location, or closes it.
pub(crate) fn give_back(store: PgStore) {
    let rejected = {
        let mut pool = lock();
        let total = pool.total;
        let idle = pool.idle.entry(store.location.clone()).or_default();
        if store.is_read_only() && store.is_open() && idle.len() < PER_PROJECT && total < TOTAL {
            idle.push(store);
            pool.total += 1;
            None
        } else {
            Some(store)
        }
    };
    drop(rejected);
}

/// How many idle readers are kept (for tests).
#[cfg(test)]
pub(crate) fn idle(location: &PgLocation) -> usize {
    lock().idle.get(location).map_or(0, Vec::len)
}
