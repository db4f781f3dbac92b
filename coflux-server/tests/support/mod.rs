//! Helpers of the blob tests: a moto S3 server on 127.0.0.1 (installed by
//! `scripts/setup-s3.sh` on first use) and the app on a real HTTP server.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{HttpServer, web};
use coflux_server::config::S3Config;
use coflux_server::{AppState, ServerConfig, create_app};
use coflux_tests::{Proc, free_port, workspace_root};
use sha2::{Digest, Sha256};

pub const BUCKET: &str = "coflux-blobs";
pub const PREFIX: &str = "tenant/blobs";

/// The `moto_server` of the venv made by `scripts/setup-s3.sh` (run on first use).
pub fn moto_server() -> PathBuf {
    let bin = workspace_root().join("target/s3-venv/bin/moto_server");
    if !bin.exists() {
        let status = Command::new(workspace_root().join("scripts/setup-s3.sh")).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "scripts/setup-s3.sh failed (needs python3 and PyPI)"
        );
    }
    assert!(bin.exists(), "no moto_server at {}", bin.display());
    bin
}

/// A moto S3 server on a free port with one bucket; killed when dropped (through [`Proc`]).
pub struct Moto {
    /// The `moto_server` process.
    pub proc: Proc,
    /// Its URL.
    pub endpoint: String,
}

impl Moto {
    /// Starts it and creates [`BUCKET`].
    pub async fn start() -> Self {
        let port = free_port();
        let proc = Proc::spawn(
            "moto_server",
            Command::new(moto_server())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let created = client()
            .put(format!("{endpoint}/{BUCKET}"))
            .send()
            .await
            .expect("create the bucket");
        assert!(created.status().is_success(), "{}", created.status());
        Self { proc, endpoint }
    }

    /// The settings of an S3 blob store in [`BUCKET`] under [`PREFIX`].
    pub fn config(&self) -> S3Config {
        S3Config {
            bucket: BUCKET.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            prefix: format!("/{PREFIX}/"),
            allow_http: true,
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
        }
    }

    /// Reads an object directly from the bucket (a signed request of its own): its SHA-256,
    /// or `None` if there is no such object.
    pub async fn raw_sha256(&self, name: &str) -> Option<String> {
        use object_store::ObjectStoreExt;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap();
        match store.get(&object_store::path::Path::from(name)).await {
            Ok(result) => Some(sha256(&result.bytes().await.unwrap())),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("reading {name} from the bucket: {e}"),
        }
    }
}

/// An HTTP client with a timeout fit for large transfers.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish()
}

/// The SHA-256 of some content, in hex.
pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The app on a real HTTP server on 127.0.0.1 (two workers, each with its own runtime).
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Stops the server.
    pub handle: actix_web::dev::ServerHandle,
}

/// Opens the state of `config` and serves the app.
pub async fn serve(config: &ServerConfig) -> Served {
    let state = web::Data::new(AppState::open(config).await.unwrap());
    let server = HttpServer::new(move || create_app(state.clone()))
        .workers(2)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Served { base, handle }
}

/// A PostgreSQL database of its own for a test that needs one (on the server of
/// `COFLUX_TEST_DATABASE_URL`, see `scripts/setup-postgres.sh`, through
/// [`coflux_tests::backend::fresh_database`]): what other tests leave there (projects, expired
/// leases a node would take over) stays out of this one. `None` (the test is skipped, saying
/// `what`) without the variable, unless `COFLUX_PG_TESTS=require`.
pub fn pg_database_url(what: &str) -> Option<String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match std::env::var("COFLUX_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(coflux_tests::backend::fresh_database(
                &url,
                &format!("api-{what}-{n}"),
            ))
        }
        _ if std::env::var("COFLUX_PG_TESTS").as_deref() == Ok("require") => {
            panic!("COFLUX_PG_TESTS=require but COFLUX_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!("skipped: {what} (set COFLUX_TEST_DATABASE_URL)");
            None
        }
    }
}
