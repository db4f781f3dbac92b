//! Forwarding streams bodies: large uploads and downloads pass through byte-identical while
//! the forwarding node holds a bounded window of them, and an owner that stops mid-stream
//! gives the client an error, not a hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody, SizedStream};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::forward::{FORWARDED_HEADER, Relayed, relay};
use super::relay_body::Meter;

const CHUNK: usize = 64 * 1024;
/// 64 MiB.
const TOTAL: u64 = 1024 * CHUNK as u64;
/// The most the forwarder may have taken beyond what the other end received: the kernel's
/// socket buffers of one hop (the test's are kept small) and a few chunks; a forwarder that
/// buffers whole bodies reaches the full 64 MiB.
const WINDOW: u64 = 16 << 20;
/// The readers pause this long after each MiB, so that the writers run ahead of them.
const PAUSE: Duration = Duration::from_millis(15);

/// Chunk `i` of the generated body (pseudo-random, so a misplaced chunk shows).
fn chunk(i: u64) -> Bytes {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

fn body() -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    futures::stream::iter((0..TOTAL / CHUNK as u64).map(|i| Ok(chunk(i))))
}

fn expected_digest() -> String {
    let mut hash = Sha256::new();
    for i in 0..TOTAL / CHUNK as u64 {
        hash.update(chunk(i));
    }
    hex::encode(hash.finalize())
}

/// A listener whose accepted connections have a small receive buffer (so the kernel's share
/// of the bytes in flight stays small).
fn small_listener() -> std::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(128 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap().into_std().unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// The owner: receives uploads slowly, sends 64 MiB, or breaks off an answer after 1 MiB.
struct Owner {
    meter: Arc<Meter>,
    /// The largest `meter.up` minus the bytes received, sampled on each chunk.
    peak: AtomicU64,
}

async fn owner_upload(
    req: HttpRequest,
    mut payload: web::Payload,
    owner: web::Data<Owner>,
) -> HttpResponse {
    let mut hash = Sha256::new();
    let mut got = 0u64;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.unwrap();
        let before = got;
        got += chunk.len() as u64;
        hash.update(&chunk);
        let ahead = owner.meter.up.load(Ordering::Relaxed).saturating_sub(got);
        owner.peak.fetch_max(ahead, Ordering::Relaxed);
        if before >> 20 != got >> 20 {
            actix_rt::time::sleep(PAUSE).await;
        }
    }
    let by = req
        .headers()
        .get(FORWARDED_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    HttpResponse::Ok().json(serde_json::json!({
        "len": got, "sha": hex::encode(hash.finalize()), "forwarded_by": by,
    }))
}

async fn owner_download() -> HttpResponse {
    HttpResponse::Ok().body(SizedStream::new(TOTAL, body()))
}

async fn owner_broken() -> HttpResponse {
    let first = futures::stream::iter((0..16).map(|i| Ok::<_, std::io::Error>(chunk(i))));
    let broken = futures::stream::once(async { Err(std::io::Error::other("owner stopped")) });
    HttpResponse::Ok().body(SizedStream::new(TOTAL, first.chain(broken)))
}

/// Where the test's forwarder sends everything.
struct OwnerUrl(String);

/// The forwarding middleware's relay, to a fixed owner; requests not sent are served here.
async fn forward_all(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let owner = req.app_data::<web::Data<OwnerUrl>>().unwrap().0.clone();
    match relay(req, &owner, "http://forwarder").await {
        Relayed::Answered(response) | Relayed::NoAnswer(response, _) => Ok(response),
        Relayed::NotSent(req, _) => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Served by the forwarder itself: echoes the body's length, marked as served here.
async fn local(body: Bytes) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "local": body.len() }))
}

/// Starts an owner and a forwarder to it (or to `owner_url`): the forwarder's address.
fn start(owner_url: Option<String>) -> (SocketAddr, Arc<Meter>, web::Data<Owner>) {
    let meter = Arc::new(Meter::default());
    let owner = web::Data::new(Owner {
        meter: Arc::clone(&meter),
        peak: AtomicU64::new(0),
    });
    let data = owner.clone();
    let listener = small_listener();
    let owner_addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(usize::MAX))
            .route("/api/projects/p/blobs/k", web::put().to(owner_upload))
            .route("/api/projects/p/blobs/k", web::get().to(owner_download))
            .route("/api/projects/p/broken", web::get().to(owner_broken))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    let url = owner_url.unwrap_or_else(|| format!("http://{owner_addr}"));
    let shared = web::Data::from(Arc::clone(&meter));
    let listener = small_listener();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::Data::new(OwnerUrl(url.clone())))
            .wrap(actix_web::middleware::from_fn(forward_all))
            .default_service(web::to(local))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (addr, meter, owner)
}

/// A GET through a socket with a small receive buffer, read slowly: the status, the
/// declared length, and the body's length and digest so far (`Err` if the connection broke).
async fn slow_get(
    addr: SocketAddr,
    path: &str,
    meter: &Meter,
    peak: &AtomicU64,
) -> (u16, u64, u64, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(128 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let body_start = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the answer's head");
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_lowercase();
    let status = text[9..12].parse().unwrap();
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut hash = Sha256::new();
    hash.update(&head[body_start..]);
    let mut got = (head.len() - body_start) as u64;
    while got < length {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let before = got;
        got += n as u64;
        hash.update(&buf[..n]);
        let ahead = meter.down.load(Ordering::Relaxed).saturating_sub(got);
        peak.fetch_max(ahead, Ordering::Relaxed);
        if before >> 20 != got >> 20 {
            actix_rt::time::sleep(PAUSE).await;
        }
    }
    (status, length, got, hex::encode(hash.finalize()))
}

#[actix_rt::test]
async fn cluster_forwarding_streams_a_large_upload_in_a_bounded_window() {
    let (addr, meter, owner) = start(None);
    let client = awc::Client::builder().disable_timeout().finish();
    let mut response = client
        .put(format!("http://{addr}/api/projects/p/blobs/k"))
        .send_body(SizedStream::new(TOTAL, body()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["len"], TOTAL);
    assert_eq!(answer["sha"], expected_digest());
    assert_eq!(answer["forwarded_by"], "http://forwarder");
    assert_eq!(meter.up.load(Ordering::Relaxed), TOTAL);
    let peak = owner.peak.load(Ordering::Relaxed);
    assert!(
        peak <= WINDOW,
        "the forwarder ran {peak} bytes ahead of the owner"
    );
}

#[actix_rt::test]
async fn cluster_forwarding_streams_a_chunked_upload() {
    let (addr, _meter, owner) = start(None);
    let client = awc::Client::builder().disable_timeout().finish();
    let mut response = client
        .put(format!("http://{addr}/api/projects/p/blobs/k"))
        .send_stream(body())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["len"], TOTAL);
    assert_eq!(answer["sha"], expected_digest());
    assert!(owner.peak.load(Ordering::Relaxed) <= WINDOW);
}

#[actix_rt::test]
async fn cluster_forwarding_streams_a_large_download_in_a_bounded_window() {
    let (addr, meter, _owner) = start(None);
    let peak = AtomicU64::new(0);
    let (status, length, got, digest) =
        slow_get(addr, "/api/projects/p/blobs/k", &meter, &peak).await;
    assert_eq!((status, length, got), (200, TOTAL, TOTAL));
    assert_eq!(digest, expected_digest());
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= WINDOW,
        "the forwarder ran {peak} bytes ahead of the client"
    );
}

#[actix_rt::test]
async fn cluster_forwarding_an_answer_the_owner_breaks_off_fails_the_client() {
    let (addr, meter, _owner) = start(None);
    let peak = AtomicU64::new(0);
    let get = slow_get(addr, "/api/projects/p/broken", &meter, &peak);
    let (status, length, got, _) = tokio::time::timeout(Duration::from_secs(60), get)
        .await
        .expect("the client was left hanging");
    assert_eq!((status, length), (200, TOTAL));
    assert!(
        got < TOTAL,
        "the connection must end short of the declared length"
    );
}

#[actix_rt::test]
async fn cluster_forwarding_an_upload_the_owner_stops_reading_fails_the_client() {
    // An owner that reads 1 MiB of the body and goes away.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let owner = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < 1 << 20 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
    });
    let (addr, _meter, _owner) = start(Some(format!("http://{owner}")));
    let client = awc::Client::builder().disable_timeout().finish();
    let put = client
        .put(format!("http://{addr}/api/projects/p/blobs/k"))
        .send_body(SizedStream::new(TOTAL, body()));
    let result = tokio::time::timeout(Duration::from_secs(60), put)
        .await
        .expect("the client was left hanging");
    // The forwarder answers 502 (or closes the connection while the client still sends).
    eprintln!("STOP {:?}", result.as_ref().map(|r| r.status()));
    if let Ok(mut response) = result {
        assert_eq!(response.status(), 502);
        let body = response.body().await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("node_unreachable"), "{text}");
        assert!(
            !text.contains("127.0.0.1"),
            "no internals in the answer: {text}"
        );
    }
}

#[actix_rt::test]
async fn cluster_forwarding_to_a_node_that_cannot_be_reached_serves_the_body_here() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (addr, _meter, _owner) = start(Some(url));
    let client = awc::Client::default();
    let mut response = client
        .put(format!("http://{addr}/api/projects/p/blobs/k"))
        .send_body(vec![7u8; 100_000])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        answer["local"], 100_000,
        "the untouched body is served here"
    );
}
