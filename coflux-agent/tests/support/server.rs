//! A real server on 127.0.0.1 (started in-process on its own thread and actix system) and the
//! `coflux` binary run against it.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::thread::JoinHandle;

use actix_web::{HttpServer, dev::ServerHandle, web};
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::Value as Json;

pub struct TestServer {
    pub url: String,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with project `project`; `setup` prepares it (environments, in-process
    /// workers) before the server listens.
    pub fn start_with<F, Fut>(project: &'static str, setup: F) -> Self
    where
        F: FnOnce(coflux_core::Project) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, ServerHandle)>();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let state =
                    web::Data::new(AppState::open(&ServerConfig::new(&data_dir)).await.unwrap());
                setup(state.coflux.project(project).await.unwrap()).await;
                let app_state = state.clone();
                let server = HttpServer::new(move || create_app(app_state.clone()))
                    .workers(1)
                    .disable_signals()
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                server.await.unwrap();
            });
        });
        let (addr, handle) = rx.recv().unwrap();
        Self {
            url: format!("http://{addr}"),
            handle,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Runs `coflux` with `args` against this server.
    pub fn coflux(&self, args: &[&str]) -> Output {
        coflux_at(&self.url, args)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        futures::executor::block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn coflux_at(server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coflux"))
        .args(args)
        .env("COFLUX_SERVER", server)
        .env_remove("COFLUX_PROJECT")
        .env_remove("COFLUX_ENVIRONMENT")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

pub fn json_of(output: Output) -> Json {
    let text = ok(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

/// Greets someone (the `demo` module's workflow most CLI tests call).
#[coflux_core::sdk::workflow(module = "demo")]
pub async fn greet(name: String) -> Result<String, coflux_core::sdk::Failure> {
    Ok(format!("Hello, {name}!"))
}

/// Always fails.
#[coflux_core::sdk::workflow(module = "demo")]
pub async fn fail() -> Result<String, coflux_core::sdk::Failure> {
    Err(coflux_core::sdk::Failure::new("demo.Boom", "it blew up"))
}

/// A server with project `demo` and environment `production`, where [`greet`] and [`fail`]
/// are served in-process.
pub fn start_demo() -> TestServer {
    TestServer::start_with("demo", |project| async move {
        project
            .create_environment("production", None)
            .await
            .unwrap();
        let repository = coflux_core::sdk::Repository::new().with(greet).with(fail);
        project.serve("production", repository).await.unwrap();
    })
}
