//! Support for end-to-end tests with real processes on 127.0.0.1: builds the binaries once,
//! starts `coflux-server` on a free port and `coflux-agent`s against it, and talks to the
//! server's HTTP API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

pub mod backend;
pub mod tls;

/// Where the workspace's binaries are (built once per test process). `COFLUX_BIN_DIR` names a
/// directory of already built binaries instead (e.g. copies, to compare two builds).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("COFLUX_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // target/<profile>/deps/<test> → target/<profile>
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet"])
            .args(if release { &["--release"][..] } else { &[][..] })
            .args([
                "-p",
                "coflux-server",
                "-p",
                "coflux-agent",
                "-p",
                "coflux-examples",
                "--bins",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the binaries failed");
        dir
    });
    dir.join(name)
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python interpreter of the test venv (created by `scripts/setup-python.sh`, which runs
/// on first use).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("COFLUX_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join("target/python-venv/bin/python");
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| {
        if !p.exists() {
            // First run on this machine: create the venv (needs PyPI).
            let _ = std::process::Command::new(workspace_root().join("scripts/setup-python.sh"))
                .status();
        }
    });
    assert!(
        p.exists(),
        "no Python venv with coflux 0.12.0 at {}: run scripts/setup-python.sh",
        p.display()
    );
    p
}

/// The log filter of spawned processes: `COFLUX_TEST_LOG`, or warnings only.
pub fn log_level() -> String {
    std::env::var("COFLUX_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Proc {
    child: Option<Child>,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Starts a command with output to the test's stderr.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child: Some(child),
            name: name.into(),
        }
    }

    /// A handle for a process started elsewhere (nothing to kill when dropped).
    pub fn detached(name: &str) -> Self {
        Self {
            child: None,
            name: name.into(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, and wait for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, then wait up to `timeout` for a clean exit; returns whether it exited in time
    /// (it is killed otherwise).
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `coflux-server` process on a free port.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// Its base URL.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts a server on `data_dir` and waits until it answers.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_on(data_dir, free_port(), &[]).await
    }

    /// Starts a server on a given port with extra flags (and the test backend's, see
    /// [`backend`], unless `extra` names a database).
    pub async fn start_on(data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        let database = if extra.contains(&"--database-url") {
            Vec::new()
        } else {
            backend::server_flags(data_dir)
        };
        let proc = Proc::spawn(
            "coflux-server",
            Command::new(bin("coflux-server"))
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--port", &port.to_string()])
                .args(extra)
                .args(&database)
                .env("COFLUX_LOG", log_level()),
        );
        let server = Self {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            port,
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http()
                .get(format!("{}/api/health", server.url))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "the server did not start");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Creates a project and an environment (optionally with a parent).
    pub async fn setup(&self, project: &str, environment: &str, parent: Option<&str>) {
        post(&self.url, "/api/projects", json!({ "name": project })).await;
        post(
            &self.url,
            &format!("/api/projects/{project}/environments"),
            json!({ "name": environment, "parent": parent }),
        )
        .await;
    }

    /// Waits until `target` is registered in the environment's manifest.
    pub async fn wait_registered(&self, project: &str, environment: &str, target: &str) {
        let path = format!("/api/projects/{project}/environments/{environment}/manifests");
        eventually(Duration::from_secs(30), "the manifest", || async {
            let body = get(&self.url, &path).await;
            body["targets"]
                .as_array()?
                .iter()
                .any(|t| t["target"]["name"] == target)
                .then_some(())
        })
        .await
    }

    /// Submits a workflow; returns the run id. The workflow need not be registered yet
    /// (`allow_unregistered`): tests submit right after starting agents, which may not have
    /// connected yet; the run waits for them.
    pub async fn submit(
        &self,
        project: &str,
        environment: &str,
        module: &str,
        target: &str,
        arguments: Json,
    ) -> String {
        let body = post(
            &self.url,
            &format!("/api/projects/{project}/environments/{environment}/runs"),
            json!({ "module": module, "target": target, "arguments": arguments,
                "allow_unregistered": true }),
        )
        .await;
        body["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("submitting {module}/{target} failed: {body}"))
            .to_string()
    }

    /// Waits up to `seconds` for a run's result (`{"status": ..., "value"|"error": ...}`).
    pub async fn result(&self, project: &str, run: &str, seconds: u64) -> Json {
        get(
            &self.url,
            &format!("/api/projects/{project}/runs/{run}/result?wait={seconds}"),
        )
        .await
    }

    /// The run as JSON (steps and executions).
    pub async fn inspect(&self, project: &str, run: &str) -> Json {
        get(&self.url, &format!("/api/projects/{project}/runs/{run}")).await
    }
}

/// An HTTP client with a long timeout.
pub fn http() -> awc::Client {
    coflux_agent::net::client(Duration::from_secs(120))
}

/// POSTs JSON and returns the JSON answer (any status).
pub async fn post(base: &str, path: &str, body: Json) -> Json {
    let mut response = http()
        .post(format!("{base}{path}"))
        .send_json(&body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    response.json().limit(64 << 20).await.unwrap_or(Json::Null)
}

/// GETs JSON.
pub async fn get(base: &str, path: &str) -> Json {
    let mut response = http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    response.json().limit(64 << 20).await.unwrap_or(Json::Null)
}

/// Options of an agent process.
pub struct AgentOptions<'a> {
    /// Project.
    pub project: &'a str,
    /// Environment.
    pub environment: &'a str,
    /// Adapter command.
    pub adapter: String,
    /// Modules to host.
    pub modules: Vec<String>,
    /// Working directory.
    pub directory: PathBuf,
    /// Extra flags.
    pub extra: Vec<String>,
}

/// Starts a `coflux-agent` process.
pub fn agent(server: &Server, options: AgentOptions<'_>) -> Proc {
    Proc::spawn(
        "coflux-agent",
        Command::new(bin("coflux-agent"))
            .args(["--server", &server.url])
            .args(["--project", options.project])
            .args(["--environment", options.environment])
            .args(["--adapter", &options.adapter])
            .arg("--directory")
            .arg(&options.directory)
            .args(&options.extra)
            .args(&options.modules)
            .env("COFLUX_LOG", log_level()),
    )
}

/// An agent hosting the Rust example repository.
pub fn rust_agent(server: &Server, project: &str, environment: &str, extra: &[&str]) -> Proc {
    agent(
        server,
        AgentOptions {
            project,
            environment,
            adapter: bin("coflux-example-repo").display().to_string(),
            modules: vec![],
            directory: workspace_root(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        },
    )
}

/// An agent hosting `module` of the Rust example repository in `production` of `project`.
/// `env` (`NAME=value`) is set for the repository, e.g. `COFLUX_EXAMPLE_SEMANTICS=1` to serve
/// its optional targets; `extra` are more agent flags.
pub fn example_module_agent(
    server: &Server,
    project: &str,
    module: &str,
    env: &[&str],
    extra: &[&str],
) -> Proc {
    agent(
        server,
        AgentOptions {
            project,
            environment: "production",
            adapter: format!(
                "env {} {}",
                env.join(" "),
                bin("coflux-example-repo").display()
            ),
            modules: vec![module.to_owned()],
            directory: workspace_root(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        },
    )
}

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

/// An agent hosting `tests/python/e2e_flows.py` with the test venv's Python.
pub fn python_agent(
    server_url: &str,
    project: &str,
    environment: &str,
    name: &str,
    extra: &[&str],
) -> Proc {
    python_agent_for("e2e_flows", server_url, project, environment, name, extra)
}

/// An agent hosting a module of `tests/python` with the test venv's Python; `AGENT_NAME` is
/// set to `name` in its executors.
pub fn python_agent_for(
    module: &str,
    server_url: &str,
    project: &str,
    environment: &str,
    name: &str,
    extra: &[&str],
) -> Proc {
    Proc::spawn(
        "coflux-agent (python)",
        Command::new(bin("coflux-agent"))
            .args(["--server", server_url])
            .args(["--project", project])
            .args(["--environment", environment])
            .arg("--adapter")
            .arg(format!("{} -m coflux", python().display()))
            .arg("--directory")
            .arg(workspace_root().join("tests/python"))
            .arg("--register")
            .args(extra)
            .arg(module)
            .env("AGENT_NAME", name)
            .env("COFLUX_LOG", log_level()),
    )
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The executions of each step of a run view, as `(target, [states])`.
pub fn step_states(view: &Json) -> Vec<(String, Vec<String>)> {
    view["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    let states = s["executions"]
                        .as_array()
                        .map(|es| {
                            es.iter()
                                .map(|e| e["state"].as_str().unwrap_or("?").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    (s["target"].as_str().unwrap_or("?").to_string(), states)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes, straight into a server's data directory `data_dir`, an asset record of `project`
/// with an entry that escapes the restore directory (`../escaped.txt`, pointing at the blob
/// `blob_key`), as a compromised server could serve it; returns the record's id.
pub fn write_escaping_asset(data_dir: &Path, project: &str, blob_key: &Json) -> &'static str {
    let id = "A0000000000000bad";
    let record = json!({"name": null, "entries": {
        "../escaped.txt": {"blob_key": blob_key, "size": 11, "metadata": {}}
    }});
    if let Some(url) = backend::database_url(data_dir) {
        // Over PostgreSQL the records are rows (the blocking client runs off the test's runtime).
        let (project, record) = (project.to_owned(), record.to_string());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .execute(
                    "INSERT INTO coflux_assets (project, id, record, created_ms) \
                     VALUES ($1, $2, $3, 0)",
                    &[&project, &id, &record],
                )
                .expect("write the tampered asset record");
        })
        .join()
        .expect("writing the tampered asset record panicked");
        return id;
    }
    let file = data_dir.join(format!("assets/{project}/{id}.json"));
    std::fs::write(&file, record.to_string()).expect("write the tampered asset record");
    id
}

/// Asserts that a `restore_asset` example run refused an escaping asset: its outcome is an
/// `invalid_asset_path` error and nothing was written outside its directory.
pub fn assert_escape_refused(result: &Json) {
    let outcome = result["value"]["outcome"].as_str().unwrap_or_default();
    assert!(outcome.starts_with("invalid_asset_path"), "{result}");
    assert_eq!(result["value"]["escaped"], false, "{result}");
}
