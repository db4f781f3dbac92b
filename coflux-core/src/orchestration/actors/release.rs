//! Frees a retired run's state off the arbiter thread: dropping the state of a run with
//! 100,000 steps takes tens of milliseconds of allocator work, during which every actor of
//! the projects sharing that arbiter would wait (a request to the project made right after
//! such a run finished waited 60–170 ms).

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

/// Runs with more steps than this are freed on the release thread; smaller ones in place
/// (cheaper than handing them over).
pub const LARGE_RUN_STEPS: usize = 1_000;

type Garbage = Box<dyn Send>;

/// Drops `value` on the release thread (started on first use, shared by every project), or
/// in place if that thread cannot be started.
pub fn release<T: Send + 'static>(value: T) {
    static QUEUE: OnceLock<Option<Mutex<Sender<Garbage>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (send, receive) = channel::<Garbage>();
        std::thread::Builder::new()
            .name("coflux-release".into())
            .spawn(move || {
                while let Ok(garbage) = receive.recv() {
                    drop(garbage);
                }
            })
            .ok()
            .map(|_| Mutex::new(send))
    });
    let garbage: Garbage = Box::new(value);
    let refused = match queue {
        Some(queue) => match queue.lock() {
            Ok(sender) => sender.send(garbage).err().map(|e| e.0),
            Err(_) => Some(garbage),
        },
        None => Some(garbage),
    };
    drop(refused);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Sets its flag when dropped, and says on which thread.
    struct Flag(Arc<AtomicBool>, Arc<Mutex<Option<String>>>);

    impl Drop for Flag {
        fn drop(&mut self) {
            *self.1.lock().unwrap() = std::thread::current().name().map(str::to_owned);
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_released_value_is_dropped_on_the_release_thread() {
        let dropped = Arc::new(AtomicBool::new(false));
        let thread = Arc::new(Mutex::new(None));
        super::release(Flag(dropped.clone(), thread.clone()));
        let started = Instant::now();
        while !dropped.load(Ordering::SeqCst) {
            assert!(started.elapsed() < Duration::from_secs(10), "never dropped");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(thread.lock().unwrap().as_deref(), Some("coflux-release"));
    }
}
