//! Committing a write batch, and what makes [`Durability::Normal`] safe on PostgreSQL.
//!
//! Every batch is one transaction that also moves the project's **commit sequence**
//! (`commit_seq.seq`, one row) from `n` to `n + 1`, so the database itself records which of
//! this writer's batches it holds.
//!
//! With [`Durability::Full`] each COMMIT waits for its WAL flush, as PostgreSQL does by
//! default. With [`Durability::Normal`] it does not (`SET LOCAL synchronous_commit = off`):
//! the commit is acknowledged once it is in PostgreSQL's memory, which a crash of PostgreSQL
//! (`kill -9`, out of memory) loses if its WAL writer had not written it yet. So the store
//! keeps each committed batch whose WAL is not known to be flushed in a **replay buffer**:
//! the COMMIT is pipelined with a query of the WAL insert position (past the commit record)
//! and of the flush position; a batch leaves the buffer once the flush position passes its
//! insert position. When the buffer grows past [`MAX_BUFFERED_BATCHES`] or
//! [`MAX_BUFFERED_WRITES`], the next commit waits for its flush (emptying the buffer).
//!
//! When the connection breaks (PostgreSQL restarted, network), the batch in flight is **in
//! doubt** and the attempt fails; the group-commit writer retries it with backoff. The retry
//! reconnects, reads the persisted sequence, commits the buffered batches past it again in one
//! transaction (under the same fence: a lost lease stops the project instead) whose COMMIT
//! waits for the flush, and empties the buffer; the batch in doubt is then either found
//! committed (the sequence passed it) or applied as a new one. A sequence behind what
//! PostgreSQL reported flushed, or ahead of this writer's, is [`StoreError::Diverged`].

use std::collections::VecDeque;

use super::client::{Kind, Outcome, params};
use super::{Check, Conn, Fence, PgStore, lease, write};
use crate::store::{Durability, StoreError, Write};

/// The replay buffer holds at most this many batches before a commit waits for its flush.
pub(super) const MAX_BUFFERED_BATCHES: usize = 4096;
/// ... or this many writes.
pub(super) const MAX_BUFFERED_WRITES: usize = 65_536;

/// The WAL insert and flush positions (bytes), queried right after an unflushed COMMIT.
const WAL_POSITIONS_SQL: &str = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint, \
     (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint";

/// Moves the commit sequence by one (checked: [`Check::Sequence`]).
const NEXT_SEQ_SQL: &str = "UPDATE commit_seq SET seq = $1 WHERE id = 1 AND seq = $2";

/// The persisted commit sequence.
pub(super) const READ_SEQ_SQL: &str = "SELECT seq FROM commit_seq WHERE id = 1";

/// A committed batch whose WAL is not known to be flushed.
#[derive(Debug)]
struct Buffered {
    seq: i64,
    writes: Vec<Write>,
    /// The WAL insert position right after its COMMIT (`i64::MAX`: unknown).
    lsn: i64,
}

/// A writer store's commit state (see the module documentation).
#[derive(Debug)]
pub(super) struct CommitLog {
    durability: Durability,
    /// The sequence of the last batch known committed.
    seq: i64,
    /// The highest sequence known flushed.
    flushed: i64,
    buffer: VecDeque<Buffered>,
    buffered_writes: usize,
    /// The batch whose commit failed with the connection: committed or not.
    doubt: Option<Buffered>,
    /// The connection failed: reconnect (and replay) before the next commit.
    broken: bool,
    /// Batches committed again after a reconnection (for tests and logs).
    replayed: u64,
    /// Tests: keep every batch buffered until a flushed commit (as if the WAL writer lagged).
    #[cfg(test)]
    hold: bool,
}

impl CommitLog {
    pub(super) fn new(durability: Durability, seq: i64) -> Self {
        Self {
            durability,
            seq,
            flushed: seq,
            buffer: VecDeque::new(),
            buffered_writes: 0,
            doubt: None,
            broken: false,
            replayed: 0,
            #[cfg(test)]
            hold: false,
        }
    }

    pub(super) fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// The batches PostgreSQL may still lose in a crash.
    pub(super) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// How many batches were committed again after reconnections.
    pub(super) fn replayed(&self) -> u64 {
        self.replayed
    }

    /// The sequence of the last batch known committed.
    pub(super) fn seq(&self) -> i64 {
        self.seq
    }

    fn over_cap(&self) -> bool {
        self.buffer.len() >= MAX_BUFFERED_BATCHES || self.buffered_writes >= MAX_BUFFERED_WRITES
    }

    /// Forgets the buffered batches up to WAL position `flushed`.
    fn trim(&mut self, flushed: i64) {
        #[cfg(test)]
        if self.hold {
            return;
        }
        while let Some(front) = self.buffer.front() {
            if front.lsn > flushed {
                break;
            }
            self.flushed = front.seq;
            self.buffered_writes -= front.writes.len();
            self.buffer.pop_front();
        }
    }

    /// Everything up to the last committed batch is flushed.
    fn all_flushed(&mut self) {
        self.buffer.clear();
        self.buffered_writes = 0;
        self.flushed = self.seq;
    }
}

/// Whether `error` means the connection or the server went away (the commit's outcome is
/// then unknown, and the store reconnects), rather than a refusal of this transaction.
pub(crate) fn is_disconnect(error: &StoreError) -> bool {
    let StoreError::Postgres(e) = error else {
        return false;
    };
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Connection exceptions; the server shutting down, crashed, or starting up.
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        // Not an answer of the server: the socket failed or could not connect.
        None => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if s.is::<std::io::Error>() {
                    return true;
                }
                source = s.source();
            }
            false
        }
    }
}

impl PgStore {
    /// Commits `writes` as the next batch (see the module documentation).
    pub(super) fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        if self.log.broken {
            self.recover()?;
        }
        if let Some(doubt) = self.log.doubt.take()
            && self.log.seq >= doubt.seq
        {
            if doubt.writes == writes {
                // The retry of the batch in doubt, which had committed.
                return Ok(());
            }
            tracing::warn!(schema = %self.location.schema, seq = doubt.seq, "a batch the writer gave up on had committed");
        }
        let seq = self.log.seq + 1;
        let wait_flush = self.log.durability == Durability::Full || self.log.over_cap();
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let conn = conn.as_mut().ok_or(StoreError::ReadOnly)?;
        let batch = Batch {
            writes,
            seq,
            previous: self.log.seq,
            no_flush_wait: !wait_flush,
            renew_lease: false,
        };
        match commit_batch(conn, &self.fence, batch) {
            Ok(positions) => {
                self.log.seq = seq;
                self.shared
                    .committed
                    .store(seq, std::sync::atomic::Ordering::Release);
                if wait_flush {
                    self.log.all_flushed();
                } else {
                    // Unknown positions (the query failed): kept until a flushed commit.
                    let (lsn, flushed) = positions.unwrap_or((i64::MAX, i64::MIN));
                    self.log.buffered_writes += writes.len();
                    self.log.buffer.push_back(Buffered {
                        seq,
                        writes: writes.to_vec(),
                        lsn,
                    });
                    self.log.trim(flushed);
                    // Committed, but the connection failed right after.
                    self.log.broken = conn.client.is_closed();
                }
                Ok(())
            }
            Err(error) => {
                if is_disconnect(&error) {
                    self.log.broken = true;
                    self.log.doubt = Some(Buffered {
                        seq,
                        writes: writes.to_vec(),
                        lsn: i64::MAX,
                    });
                }
                Err(error)
            }
        }
    }

    /// Reconnects, commits again the buffered batches PostgreSQL lost, and waits for the WAL
    /// flush of everything it holds.
    fn recover(&mut self) -> Result<(), StoreError> {
        let conn = self.fresh_conn()?;
        *self.conn.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(conn);
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let conn = conn.as_mut().ok_or(StoreError::ReadOnly)?;
        let persisted = conn.count(READ_SEQ_SQL, &[])?;
        let log = &mut self.log;
        let ahead = log.seq + i64::from(log.doubt.is_some());
        if persisted > ahead || persisted < log.flushed {
            return Err(StoreError::Diverged(format!(
                "commit sequence {persisted}, expected between {} and {ahead}",
                log.flushed
            )));
        }
        let lost: Vec<&Buffered> = log.buffer.iter().filter(|b| b.seq > persisted).collect();
        let writes: Vec<Write> = lost.iter().flat_map(|b| b.writes.iter().cloned()).collect();
        let last = lost.last().map_or(persisted, |b| b.seq);
        let count = lost.len();
        // One transaction whose COMMIT waits for the flush (of every earlier commit too).
        // These batches committed once on the same rows: a refusal other than the fence's or
        // the connection's means the database is not what the writer thinks.
        let replay = Batch {
            writes: &writes,
            seq: last,
            previous: persisted,
            no_flush_wait: false,
            renew_lease: true,
        };
        commit_batch(conn, &self.fence, replay).map_err(|e| match e {
            StoreError::Fenced { .. } | StoreError::Diverged(_) => e,
            e if is_disconnect(&e) => e,
            e => StoreError::Diverged(format!("replaying batches {}..={last}: {e}", persisted + 1)),
        })?;
        if count > 0 {
            tracing::warn!(schema = %self.location.schema, batches = count, from = persisted + 1, to = last, "PostgreSQL lost committed batches; committed them again");
        }
        log.replayed += count as u64;
        log.seq = last.max(persisted);
        self.shared
            .committed
            .store(log.seq, std::sync::atomic::Ordering::Release);
        log.all_flushed();
        log.broken = false;
        Ok(())
    }

    /// A reader found the database behind this writer (PostgreSQL lost commits in a crash):
    /// reconnects and commits them again now, not on the next batch (an idle project would
    /// otherwise answer no read until something writes). On failure the next batch's commit
    /// tries again (and reports the error), as does the next reader's request.
    pub(super) fn settle_now(&mut self) {
        self.log.broken = true;
        match self.recover() {
            Ok(()) => {
                tracing::info!(schema = %self.location.schema, seq = self.log.seq, "settled the store after a reader found the database behind")
            }
            Err(error) => {
                tracing::warn!(schema = %self.location.schema, %error, "could not settle the store after a reader found the database behind")
            }
        }
    }

    /// Before the store closes: waits until what it committed is flushed (reconnecting and
    /// replaying if needed), so nothing acknowledged depends on its buffer any more.
    pub(super) fn settle(&mut self) {
        if self.read_only || (self.log.buffer.is_empty() && !self.log.broken) {
            return;
        }
        let settled = if self.log.broken {
            self.recover()
        } else {
            let seq = self.log.seq;
            let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
            match conn.as_mut() {
                Some(conn) => commit_batch(conn, &self.fence, Batch::empty(seq)).map(drop),
                None => Ok(()),
            }
            .or_else(|e| {
                if is_disconnect(&e) {
                    self.recover()
                } else {
                    Err(e)
                }
            })
        };
        match settled {
            Ok(()) => self.log.all_flushed(),
            Err(error) => tracing::error!(
                schema = %self.location.schema,
                %error,
                batches = self.log.buffer.len(),
                "closing the store before PostgreSQL confirmed its last commits flushed"
            ),
        }
    }
}

/// Queues the fence check of a write transaction (see [`Fence`]) right after its BEGIN; with
/// `renew`, the check of a replay, which also extends a lease that expired untaken
/// ([`lease::RENEWING_FENCE_SQL`]).
fn check_fence(conn: &mut Conn, fence: &Fence, renew: bool) -> Result<(), StoreError> {
    let Fence::Lease(check) = fence else {
        return Ok(());
    };
    let mut params = params![check.project.clone(), check.node.clone(), check.epoch];
    let sql = if renew {
        let lease = i64::try_from(check.lease.as_millis()).unwrap_or(i64::MAX);
        params.extend(params![lease]);
        lease::RENEWING_FENCE_SQL
    } else {
        lease::FENCE_SQL
    };
    conn.queue(
        sql,
        params,
        Check::Fence {
            project: check.project.clone(),
            epoch: check.epoch,
        },
    )
}

/// One write transaction's content (see [`commit_batch`]).
struct Batch<'a> {
    writes: &'a [Write],
    /// The commit sequence it moves to ...
    seq: i64,
    /// ... from this one.
    previous: i64,
    /// The COMMIT does not wait for the WAL flush.
    no_flush_wait: bool,
    /// A replay: its fence check extends a lease that expired untaken.
    renew_lease: bool,
}

impl Batch<'_> {
    /// No writes: a COMMIT that waits for the flush of everything before it.
    fn empty(seq: i64) -> Self {
        Batch {
            writes: &[],
            seq,
            previous: seq,
            no_flush_wait: false,
            renew_lease: false,
        }
    }
}

/// One write transaction: the fence check, the writes, the sequence moved from
/// `batch.previous` to `batch.seq`, the commit (all or nothing). BEGIN, the fence check and
/// every write go out in one round trip, their results are checked, then COMMIT (or ROLLBACK)
/// in a second one. With `no_flush_wait` the COMMIT does not wait for the WAL flush, and the
/// WAL insert and flush positions right after it are returned (`None` if that query failed).
fn commit_batch(
    conn: &mut Conn,
    fence: &Fence,
    batch: Batch<'_>,
) -> Result<Option<(i64, i64)>, StoreError> {
    let Batch {
        writes,
        seq,
        previous,
        no_flush_wait,
        renew_lease,
    } = batch;
    let queued = conn
        .queue("BEGIN", Vec::new(), Check::None)
        .and_then(|()| {
            if no_flush_wait {
                conn.queue(
                    "SET LOCAL synchronous_commit = off",
                    Vec::new(),
                    Check::None,
                )
            } else {
                Ok(())
            }
        })
        .and_then(|()| check_fence(conn, fence, renew_lease))
        .and_then(|()| {
            let mut writer = write::Writer { conn: &mut *conn };
            writes.iter().try_for_each(|w| writer.apply(w))
        })
        .and_then(|()| {
            conn.queue(
                NEXT_SEQ_SQL,
                params![seq, previous],
                Check::Sequence { seq, previous },
            )
        })
        .and_then(|()| conn.flush());
    if let Err(error) = queued {
        conn.discard();
        if !is_disconnect(&error)
            && let Err(e) = conn.client.batch_execute("ROLLBACK")
        {
            tracing::warn!(error = %e, "could not roll back a failed batch");
        }
        return Err(error);
    }
    if !no_flush_wait {
        conn.client.batch_execute("COMMIT")?;
        return Ok(None);
    }
    let commit = conn.statement("COMMIT")?;
    let positions = conn.statement(WAL_POSITIONS_SQL)?;
    let mut results = conn
        .client
        .pipeline(&[
            (commit, Vec::new(), Kind::Execute),
            (positions, Vec::new(), Kind::QueryPair),
        ])
        .into_iter();
    match results.next() {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(e.into()),
        None => unreachable!("one result per pipelined statement"),
    }
    Ok(match results.next() {
        Some(Ok(Outcome::Pair(lsn, flushed))) => Some((lsn, flushed)),
        _ => None,
    })
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
