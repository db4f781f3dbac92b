//! Latency tuning: how long threads poll for their next piece of work before they sleep, and
//! the polling itself (used by the store writers and the in-process workers' arbiters).
//!
//! Waking a sleeping thread costs tens of microseconds on small virtual machines (an idle
//! virtual CPU halts and must be interrupted), which dominates a chain of dependent tasks: each
//! task waits for the previous one's commit. Spinning briefly trades a little CPU, only while a
//! project is busy, for that latency (see docs/performance.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::Arbiter;

/// The spins of a process. [`Tuning::default`] suits an embedded orchestrator;
/// [`Tuning::server`] a server whose tasks run on remote agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// How long each project's store writer keeps polling for work after a commit before it
    /// sleeps (zero never spins).
    pub writer_spin: Duration,
    /// How long the thread of an in-process worker keeps polling for its next reply or
    /// execution before it sleeps (zero never spins). While it spins, a task's timers and I/O
    /// events that fall due are noticed at the end of the spin (at most this much later).
    pub worker_spin: Duration,
}

impl Tuning {
    /// The longest spin a server accepts (10 ms).
    pub const MAX_SPIN: Duration = Duration::from_millis(10);

    /// For a server: a sequential task's round trip through an agent takes a few hundred
    /// microseconds, so the writer spins longer (250 µs) to still be awake for the next
    /// commit (1,000 sequential remote tasks: ~0.5 s without, ~0.3 s with it, on a 2-core VM).
    pub const fn server() -> Self {
        Self {
            writer_spin: Duration::from_micros(250),
            ..Self::EMBEDDED
        }
    }

    /// In-process workers answer within tens of microseconds: 150 µs of writer spin covers a
    /// chain of dependent tasks; 200 µs of worker spin covers a commit (1,000 sequential tasks
    /// embedded: ~75 → ~40 ms on a 2-core VM).
    const EMBEDDED: Self = Self {
        writer_spin: Duration::from_micros(150),
        worker_spin: Duration::from_micros(200),
    };
}

impl Default for Tuning {
    /// For an embedded orchestrator: writer 150 µs, worker 200 µs.
    fn default() -> Self {
        Self::EMBEDDED
    }
}

/// Calls `poll` until it returns something or `spin` has passed (then `None`; at once when
/// `spin` is zero), pausing with [`spin_pause`] between calls.
pub(crate) fn spin_until<T>(spin: Duration, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    if spin.is_zero() {
        return None;
    }
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        if let Some(found) = poll() {
            return Some(found);
        }
        if start.elapsed() >= spin {
            return None;
        }
        polls = spin_pause(polls);
    }
}

/// One pause of a polling loop; returns the updated poll count. Every few polls it yields the
/// CPU, so a spinning thread that shares its core with another runnable thread (another
/// spinner, or the thread it waits for) lets it run instead of holding the core for its
/// whole time slice.
fn spin_pause(polls: u32) -> u32 {
    if polls % 32 == 31 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
    polls.wrapping_add(1)
}

/// Rung when work is handed to the arbiters watching it: the router rings it after it hands a
/// reply or a command to an in-process worker, whose thread, instead of sleeping as soon as it
/// runs out of work, watches it for up to [`Tuning::worker_spin`] first.
#[derive(Debug, Default)]
pub struct Doorbell {
    rings: AtomicU64,
}

impl Doorbell {
    /// Signals that work was queued (call it after queueing).
    pub fn ring(&self) {
        self.rings.fetch_add(1, Ordering::Release);
    }

    fn rings(&self) -> u64 {
        self.rings.load(Ordering::Acquire)
    }
}

/// Starts an arbiter (timers and I/O enabled, as a plain one) whose thread, once out of work,
/// watches `bell` for up to `spin` before it sleeps. Zero: it sleeps at once. While it spins,
/// timers and I/O events that fall due are noticed at the end of the spin.
pub fn spinning_arbiter(bell: Arc<Doorbell>, spin: Duration) -> Arbiter {
    if spin.is_zero() {
        return Arbiter::new();
    }
    Arbiter::with_tokio_rt(move || {
        // Building a current-thread runtime only fails when the OS refuses its resources (no
        // file descriptor for the I/O driver), and the arbiter cannot run without one.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || {
                // Returns once the doorbell rings or `spin` has passed.
                let before = bell.rings();
                spin_until(spin, || (bell.rings() != before).then_some(()));
            })
            .build()
            .expect("the worker's runtime could not be created")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spinning_arbiter_runs_what_it_is_given_and_idles_again() {
        let system = actix_rt::System::new();
        system.block_on(async {
            let bell = Arc::new(Doorbell::default());
            let arbiter = spinning_arbiter(Arc::clone(&bell), Duration::from_micros(200));
            for i in 0..50u32 {
                let (tx, rx) = tokio::sync::oneshot::channel();
                assert!(arbiter.spawn(async move {
                    let _ = tx.send(i * 2);
                }));
                bell.ring();
                let got = actix_rt::time::timeout(Duration::from_secs(5), rx).await;
                assert_eq!(got.expect("the arbiter ran the task").unwrap(), i * 2);
                if i % 10 == 0 {
                    // Long enough for the spin to end and the thread to sleep: the next task
                    // must wake it.
                    actix_rt::time::sleep(Duration::from_millis(2)).await;
                }
            }
            arbiter.stop();
        });
    }

    #[test]
    fn spinning_returns_what_the_poll_finds_or_gives_up() {
        let mut calls = 0;
        let found = spin_until(Duration::from_millis(50), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(found, Some(3));
        assert_eq!(
            spin_until(Duration::ZERO, || Some(1)),
            None,
            "zero never polls"
        );
        let start = Instant::now();
        assert_eq!(spin_until(Duration::from_millis(2), || None::<()>), None);
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
