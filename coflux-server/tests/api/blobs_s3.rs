//! The blob routes over the S3 backend, against a real S3-compatible server on 127.0.0.1
//! (moto's server mode, installed by `scripts/setup-s3.sh` on first use), through a real HTTP
//! server built with `create_app`: round trips, HEAD, rejected content, key validation, project
//! isolation, a 20 MB blob streamed both ways (multipart), and errors that never expose the
//! bucket or endpoint.

use crate::support::{BUCKET, Moto, PREFIX, Served, client, serve, sha256};
use bytes::Bytes;
use coflux_server::ServerConfig;
use coflux_server::config::{BlobStoreConfig, S3Config};
use futures::StreamExt;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// The app on a real HTTP server (two workers, each with its own runtime) on 127.0.0.1.
struct App {
    base: String,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start(s3: S3Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path());
        config.blob_store = BlobStoreConfig::S3(s3);
        let Served { base, handle } = serve(&config).await;
        let app = Self {
            base,
            handle,
            _dir: dir,
        };
        for project in ["alpha", "beta"] {
            let (status, _) = app.post("/api/projects", json!({ "name": project })).await;
            assert_eq!(status, 201);
        }
        app
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Json) -> (u16, Json) {
        let mut response = client()
            .post(self.url(path))
            .send_json(&body)
            .await
            .unwrap();
        let json = response.json().await.unwrap_or(Json::Null);
        (response.status().as_u16(), json)
    }

    async fn put(&self, path: &str, body: Vec<u8>) -> (u16, Json) {
        let mut response = client().put(self.url(path)).send_body(body).await.unwrap();
        let json = response.json().await.unwrap_or(Json::Null);
        (response.status().as_u16(), json)
    }

    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut response = client().get(self.url(path)).send().await.unwrap();
        let body = response.body().limit(64 << 20).await.unwrap();
        (response.status().as_u16(), body.to_vec())
    }

    async fn head(&self, path: &str) -> (u16, Option<u64>) {
        let response = client().head(self.url(path)).send().await.unwrap();
        let length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        (response.status().as_u16(), length)
    }
}

/// Asserts an error answer: its code, and that it names neither the bucket nor the endpoint.
fn assert_error(moto: &Moto, (status, body): &(u16, Vec<u8>), want: u16, code: &str) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(*status, want, "{text}");
    let json: Json = serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(json["error"]["code"], code, "{text}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    for secret in [
        BUCKET,
        moto.endpoint.as_str(),
        "127.0.0.1",
        PREFIX,
        "s3",
        "S3",
    ] {
        assert!(!text.contains(secret), "leaks {secret:?}: {text}");
    }
}

/// Deterministic pseudo-random content (incompressible, so nothing can shortcut it).
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[actix_rt::test]
async fn the_s3_backend_serves_the_blob_routes() {
    let moto = Moto::start().await;
    let app = App::start(moto.config()).await;

    // PUT, then GET and HEAD.
    let small = b"a value too large for a message".repeat(100);
    let key = sha256(&small);
    let uri = format!("/api/projects/alpha/blobs/{key}");
    let put = app.put(&uri, small.clone()).await;
    assert_eq!(put, (201, json!({"key": key, "size": small.len()})));
    let (status, body) = app.get(&uri).await;
    assert_eq!((status, sha256(&body)), (200, key.clone()));
    assert_eq!(app.head(&uri).await, (200, Some(small.len() as u64)));
    assert_eq!(
        app.put(&uri, small.clone()).await.0,
        201,
        "PUT is idempotent"
    );
    // The object is under `<prefix>/<project>/<key>` in the bucket.
    let raw = moto.raw_sha256(&format!("{PREFIX}/alpha/{key}")).await;
    assert_eq!(raw.as_deref(), Some(key.as_str()));

    // Project B cannot read project A's blob.
    let beta = format!("/api/projects/beta/blobs/{key}");
    assert_error(&moto, &app.get(&beta).await, 404, "blob_not_found");
    assert_eq!(app.head(&beta).await.0, 404);
    let ghost = format!("/api/projects/ghost/blobs/{key}");
    assert_error(&moto, &app.get(&ghost).await, 404, "project_not_found");

    // Content that does not match its key is rejected and never readable: small (one PUT)
    // and larger than a part (an aborted multipart upload).
    for (seed, len) in [
        (1, 1000),
        (2, coflux_server::http::blobs::PART_SIZE * 3 / 2),
    ] {
        let claimed = sha256(&content(seed + 100, 10));
        let uri = format!("/api/projects/alpha/blobs/{claimed}");
        let (status, body) = app.put(&uri, content(seed, len)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "blob_mismatch");
        assert_error(&moto, &app.get(&uri).await, 404, "blob_not_found");
        assert_eq!(app.head(&uri).await.0, 404);
        let raw = moto.raw_sha256(&format!("{PREFIX}/alpha/{claimed}")).await;
        assert_eq!(raw, None, "nothing is visible in the bucket");
    }

    // Invalid keys are rejected before the store is asked.
    for bad in [
        "..",
        "%2e%2e",
        "%2E%2E",
        "..%2f..%2fetc%2fpasswd",
        &format!("{}%00", &key[..63]),
        &key[..63],
        &format!("{key}0"),
        &key.to_uppercase(),
    ] {
        let uri = format!("/api/projects/alpha/blobs/{bad}");
        assert_error(&moto, &app.get(&uri).await, 400, "invalid_blob_key");
        let put = app.put(&uri, b"x".to_vec()).await;
        assert_eq!(put.0, 400, "{bad}: {}", put.1);
        assert_eq!(put.1["error"]["code"], "invalid_blob_key");
        assert_eq!(app.head(&uri).await.0, 400, "{bad}");
    }
    // A literal `../../etc/passwd` never reaches the blob routes at all.
    let (status, body) = app.get("/api/projects/alpha/blobs/../../etc/passwd").await;
    assert!(status == 400 || status == 404, "{status}");
    assert!(!String::from_utf8_lossy(&body).contains("root:"));

    // A 20 MB blob streams through (uploaded in chunks as a multipart upload, read back as a
    // stream and hashed on the way).
    let big_len: usize = 20 << 20;
    let big = Bytes::from(content(7, big_len));
    let big_key = sha256(&big);
    let chunks = futures::stream::iter((0..big_len).step_by(1 << 20).map(move |start| {
        Ok::<_, std::io::Error>(big.slice(start..(start + (1 << 20)).min(big_len)))
    }));
    let big_uri = app.url(&format!("/api/projects/alpha/blobs/{big_key}"));
    let mut response = client()
        .put(&big_uri)
        .send_stream(Box::pin(chunks))
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.body().await);
    let mut response = client().get(&big_uri).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    while let Some(chunk) = response.next().await {
        let chunk = chunk.unwrap();
        received += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(received, big_len);
    assert_eq!(hex::encode(hasher.finalize()), big_key);
    assert_eq!(
        app.head(&format!("/api/projects/alpha/blobs/{big_key}"))
            .await,
        (200, Some(big_len as u64))
    );

    // When the S3 server is gone the API answers a generic 500 that names nothing of it.
    let mut moto = moto;
    moto.proc.kill9();
    let (status, body) = app.get(&uri).await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("internal_error"), "{text}");
    for secret in [BUCKET, PREFIX, "127.0.0.1", "http://"] {
        assert!(!text.contains(secret), "leaks {secret:?}: {text}");
    }
    app.handle.stop(false).await;
}
