//! A 100 MB blob goes up and down through the agent's blob client and a real HTTP server on
//! 127.0.0.1, over the local backend and then the S3 backend (a moto server), and the
//! process's peak memory (server and client together) grows by far less than the blob: every
//! hop streams with a bounded buffer. Also: a download whose content does not match its key
//! is refused by the agent's client and leaves no file behind.
//!
//! This file holds a single test so that no other test shares the process's peak RSS.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Moto, Served, client, serve};
use coflux_agent::runtime::{BlobClient, hash_file};
use coflux_server::ServerConfig;
use coflux_server::config::BlobStoreConfig;
use serde_json::json;

const SIZE: usize = 100 << 20;
const CHUNK: usize = 1 << 20;
/// The most the peak RSS may grow while 100 MB go up and down (generous for a noisy machine).
const MAX_GROWTH_KB: u64 = 64 * 1024;

/// A `kB` field of `/proc/self/status` (`VmHWM`: the peak resident set; `VmRSS`: the current).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Writes `size` bytes of pseudo-random content, one chunk at a time.
fn write_file(path: &Path, size: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut chunk = vec![0u8; CHUNK];
    let mut written = 0;
    while written < size {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = CHUNK.min(size - written);
        file.write_all(&chunk[..n]).unwrap();
        written += n;
    }
    file.flush().unwrap();
}

/// Moves a 100 MB file up and down through a server with `config`; returns how much the
/// peak RSS grew meanwhile, in kB.
async fn round_trip(label: &str, config: &ServerConfig, dir: &Path) -> u64 {
    let Served { base, handle } = serve(config).await;
    let created = client()
        .post(format!("{base}/api/projects"))
        .send_json(&json!({"name": "big"}))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let client = BlobClient::new(&base, "big");

    // Warm up (connections, worker threads, allocator arenas) with a small blob.
    let small = dir.join("small.bin");
    write_file(&small, 2 * CHUNK);
    let (small_key, _) = client.put_file(&small).await.unwrap();

    let source = dir.join("source.bin");
    write_file(&source, SIZE);
    let peak_before = status_kb("VmHWM");
    let started = Instant::now();
    let (key, size) = client.put_file(&source).await.unwrap();
    assert_eq!(size, SIZE as u64);
    if matches!(config.blob_store, BlobStoreConfig::Local) {
        let stored = config.data_dir.join("blobs/big").join(&key[..2]).join(&key);
        assert_eq!(std::fs::metadata(&stored).unwrap().len(), SIZE as u64);
    }
    let target = dir.join("downloaded.bin");
    client.get_file(&key, &target).await.unwrap();
    assert_eq!(hash_file(&target).await.unwrap(), (key, SIZE as u64));
    let peak_after = status_kb("VmHWM");

    let growth = peak_after.saturating_sub(peak_before);
    eprintln!(
        "{label}: 100 MB up and down in {:?}; peak RSS {peak_before} kB -> {peak_after} kB (+{growth} kB)",
        started.elapsed()
    );
    if matches!(config.blob_store, BlobStoreConfig::Local) {
        // A download whose content does not match its key never takes the target's place.
        let stored = config
            .data_dir
            .join("blobs/big")
            .join(&small_key[..2])
            .join(&small_key);
        std::fs::write(&stored, vec![7u8; 2 * CHUNK]).unwrap();
        let corrupt = dir.join("corrupt.bin");
        let error = client.get_file(&small_key, &corrupt).await.unwrap_err();
        assert!(error.to_string().contains("wrong content"), "{error}");
        assert!(!corrupt.exists());
        assert!(!dir.join("corrupt.bin.partial").exists());
    }
    handle.stop(false).await;
    // Let the workers wind down before the data directory is removed.
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    for file in [small, source, target] {
        std::fs::remove_file(file).unwrap();
    }
    growth
}

#[actix_rt::test]
async fn a_100_mb_blob_streams_through_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let local = ServerConfig::new(dir.path().join("local"));
    let growth = round_trip("local", &local, dir.path()).await;
    assert!(
        growth < MAX_GROWTH_KB,
        "local: peak RSS grew by {growth} kB while moving a {SIZE}-byte blob"
    );

    let moto = Moto::start().await;
    let mut s3 = ServerConfig::new(dir.path().join("s3"));
    s3.blob_store = BlobStoreConfig::S3(moto.config());
    let growth = round_trip("s3", &s3, dir.path()).await;
    assert!(
        growth < MAX_GROWTH_KB,
        "s3: peak RSS grew by {growth} kB while moving a {SIZE}-byte blob"
    );
}
