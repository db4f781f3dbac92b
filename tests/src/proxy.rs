//! [`Proxy`]: a TCP proxy that can cut or silently freeze connections (network faults).

use std::net::TcpListener;
use std::time::Duration;

/// A TCP proxy whose connections can be cut, to simulate a network blip between an agent and
/// the server.
pub struct Proxy {
    /// The port agents connect to.
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    blocked: std::sync::atomic::AtomicBool,
    /// While set, bytes (and ends of connections) are held, not forwarded: a silent partition.
    frozen: std::sync::atomic::AtomicBool,
    streams: std::sync::Mutex<Vec<std::net::TcpStream>>,
}

impl Proxy {
    /// Forwards a free local port to `target` on 127.0.0.1.
    pub fn start(target: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState::default());
        let s = std::sync::Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if s.blocked.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(upstream) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut streams = s.streams.lock().unwrap();
                    streams.push(client.try_clone().unwrap());
                    streams.push(upstream.try_clone().unwrap());
                }
                pipe(
                    client.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                    std::sync::Arc::clone(&s),
                );
                pipe(upstream, client, std::sync::Arc::clone(&s));
            }
        });
        Self { port, state }
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        use std::sync::atomic::Ordering;
        self.state.blocked.store(true, Ordering::SeqCst);
        for stream in self.state.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// How many connections were accepted since the last [`Proxy::cut`] (or the start).
    pub fn connections(&self) -> usize {
        self.state.streams.lock().unwrap().len() / 2
    }

    /// A silent partition: connections stay open but nothing goes through (bytes and closes
    /// are held) until [`Proxy::thaw`]; new connections are accepted, and silent too.
    pub fn freeze(&self) {
        use std::sync::atomic::Ordering;
        self.state.frozen.store(true, Ordering::SeqCst);
    }

    /// Ends [`Proxy::freeze`]: what was held goes through.
    pub fn thaw(&self) {
        use std::sync::atomic::Ordering;
        self.state.frozen.store(false, Ordering::SeqCst);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state
            .blocked
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

fn pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    state: std::sync::Arc<ProxyState>,
) {
    use std::io::{Read, Write};
    let held = move || {
        while state.frozen.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            held();
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        held();
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}
