//! Disk full: the server's data directory is a size-limited tmpfs that fills up (a filler
//! file takes the last byte) while runs are in flight, then gets its space back. New runs are
//! refused with a clear 503, nothing acknowledged is lost, accepted runs (and the agents'
//! child submissions) wait rather than fail, and scheduling resumes by itself.
//!
//! Mounting needs root (`CAP_SYS_ADMIN`); elsewhere the scenario fails, saying so, unless
//! `COFLUX_CHAOS_DISK_FULL=skip`. The same faults without a mount (an injected `SQLITE_FULL`,
//! in process) are covered by `coflux-core`'s `disk_full_tests`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use coflux_tests::{AgentOptions, Proc, Server, agent, free_port, http, python, workspace_root};
use serde_json::json;

use crate::agents::semantics_agent;
use crate::{await_values, checker, setting, start_server_with};

const P: &str = "acme";
/// The tmpfs's size: room for the databases, small enough to fill at once.
const SIZE_MB: u64 = 64;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size_mb: u64) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut written = 0u64;
    // Large writes first, then single bytes: the last free block goes too.
    for size in [chunk.len(), 4096, 1] {
        while let Ok(n) = file.write(&chunk[..size]) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
    }
    let _ = file.sync_all();
    written
}

/// Submits `effects(name, 4, pause)` in `module`: the run's id, or the refusal's status and
/// body.
async fn try_submit(
    server: &Server,
    module: &str,
    name: &str,
    pause: &serde_json::Value,
) -> Result<String, (u16, String)> {
    let body = json!({"module": module, "target": "effects",
                      "arguments": [name, 4, pause], "allow_unregistered": true});
    let answer = coflux_agent::net::client(Duration::from_secs(15))
        .post(format!(
            "{}/api/projects/{P}/environments/production/runs",
            server.url
        ))
        .send_json(&body)
        .await;
    let mut response = answer.map_err(|e| (0, e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response.body().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    match json["run_id"].as_str() {
        Some(run) if status < 300 => Ok(run.to_owned()),
        _ => Err((status, String::from_utf8_lossy(&bytes).into_owned())),
    }
}

/// PUTs `content` as a blob of the project; the answer's status and body.
async fn put_blob(server: &Server, content: &[u8]) -> (u16, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), content).unwrap();
    let out = Command::new("sha256sum").arg(file.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let answer = coflux_agent::net::client(Duration::from_secs(15))
        .put(format!("{}/api/projects/{P}/blobs/{key}", server.url))
        .send_body(content.to_vec())
        .await;
    match answer {
        Ok(mut response) => {
            let body = response.body().await.unwrap_or_default();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        Err(e) => (0, e.to_string()),
    }
}

/// One in five runs on the Python agent.
fn module_of(i: u64) -> (&'static str, serde_json::Value) {
    if i.is_multiple_of(5) {
        ("e2e_flows", json!(0.05))
    } else {
        ("examples.semantics", json!(50))
    }
}

#[actix_rt::test]
#[ignore = "the chaos suite: cargo test -p coflux-tests --test chaos -- --include-ignored"]
async fn chaos_disk_full_while_runs_are_in_flight() {
    let runs = setting("COFLUX_CHAOS_DISK_RUNS", 20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _mount = match Mount::tmpfs(&data, SIZE_MB) {
        Ok(mount) => mount,
        Err(error) if std::env::var("COFLUX_CHAOS_DISK_FULL").as_deref() == Ok("skip") => {
            println!("chaos disk-full: skipped (cannot mount a tmpfs: {error})");
            return;
        }
        Err(error) => panic!(
            "the disk-full scenario mounts a tmpfs (needs root): {error}; \
             COFLUX_CHAOS_DISK_FULL=skip skips it"
        ),
    };
    let effects = dir.path().join("side-effects.txt");
    let effects_env = format!("COFLUX_SIDE_EFFECTS={}", effects.display());
    let log = dir.path().join("server.log");
    let port = free_port();
    let (mut server_proc, _) = start_server_with(&data, port, &log, &[]).await;
    let server = Server {
        proc: Proc::detached("coflux-server"),
        url: format!("http://127.0.0.1:{port}"),
        port,
        data_dir: data.clone(),
    };
    server.setup(P, "production", None).await;
    let mut agents = vec![
        semantics_agent(&server, &effects_env),
        agent(
            &server,
            AgentOptions {
                project: P,
                environment: "production",
                adapter: format!("env {effects_env} {} -m coflux", python().display()),
                modules: vec!["e2e_flows".into()],
                directory: workspace_root().join("tests/python"),
                extra: vec!["--register".into(), "--concurrency".into(), "8".into()],
            },
        ),
    ];
    server.wait_registered(P, "production", "effects").await;

    // Runs in flight (each calls four tasks in sequence), then the disk fills.
    let mut acknowledged = Vec::new();
    for i in 0..runs {
        let name = format!("d{i}");
        let (module, pause) = module_of(i);
        let run = try_submit(&server, module, &name, &pause)
            .await
            .expect("submitted before the disk fills");
        acknowledged.push((run, name));
    }
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let filler = data.join("filler");
    let filled = fill(&filler);
    println!("chaos disk-full: {filled} bytes fill the data directory");

    // Submissions go on until one is refused (the first few may be accepted: the store has
    // not failed yet, and they wait like the runs in flight).
    let mut violations = Vec::new();
    let mut accepted_while_full = 0;
    let started = Instant::now();
    let refusal = loop {
        let name = format!("f{accepted_while_full}");
        let (module, pause) = module_of(accepted_while_full);
        match try_submit(&server, module, &name, &pause).await {
            Ok(run) => {
                acknowledged.push((run, name));
                accepted_while_full += 1;
            }
            Err(refused) => break refused,
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no submission was refused in 60 s of a full disk ({accepted_while_full} accepted)"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, body) = &refusal;
    println!("chaos disk-full: refused after {accepted_while_full} accepted: {status} {body}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if *status != 503 || json["error"]["code"] != "unavailable" {
        violations.push(format!(
            "the refusal is not 503 unavailable: {status} {body}"
        ));
    }
    if !json["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("disk full"))
    {
        violations.push(format!("the refusal does not say why: {body}"));
    }
    let lower = body.to_lowercase();
    for leak in ["sqlite", "select ", "insert ", "/tmp", ".sqlite"] {
        if lower.contains(leak) {
            violations.push(format!("the refusal shows {leak:?}: {body}"));
        }
    }

    // Now that the store is known to fail, a new run is refused at once, before it is queued.
    let asked = Instant::now();
    match try_submit(&server, "examples.semantics", "refused", &json!(0)).await {
        Err((503, body)) if body.contains("nothing was done") => {
            if asked.elapsed() > Duration::from_secs(1) {
                violations.push(format!("the refusal took {:?}", asked.elapsed()));
            }
        }
        other => violations.push(format!("a second submission while full: {other:?}")),
    }

    // A blob (a large value an agent uploads) cannot be stored: 503, which agents retry.
    let blob = vec![7u8; 256 * 1024];
    let (status, body) = put_blob(&server, &blob).await;
    if status != 503 || !body.contains("\"unavailable\"") {
        violations.push(format!("a blob upload while full: {status} {body}"));
    }

    // The disk stays full a while: nothing acknowledged fails meanwhile, and reading a run
    // answers (503 while its state cannot be made durable, or still pending), never hangs.
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    for (run, _) in &acknowledged {
        let url = format!("{}/api/projects/{P}/runs/{run}/result?wait=0", server.url);
        let answer = coflux_agent::net::client(Duration::from_secs(10))
            .get(url)
            .send()
            .await;
        let Ok(mut response) = answer else {
            violations.push(format!("reading run {run} while full: {answer:?}"));
            continue;
        };
        let status = response.status().as_u16();
        let json: serde_json::Value = response.json().await.unwrap_or_default();
        let fine = match status {
            200 => json["status"] == "pending" || json["status"] == "value",
            503 => json["error"]["code"] == "unavailable",
            _ => false,
        };
        if !fine {
            violations.push(format!(
                "run {run} while the disk was full: {status} {json}"
            ));
        }
    }
    let health = http()
        .get(format!("{}/api/health", server.url))
        .send()
        .await
        .map(|r| r.status().as_u16());
    if health.as_ref().ok() != Some(&200) {
        violations.push(format!("the server's health while full: {health:?}"));
    }

    // Space returns: new runs are accepted again and everything finishes, by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut resumed = None;
    for i in 0..runs.min(5) {
        let name = format!("a{i}");
        let (module, pause) = module_of(i);
        loop {
            match try_submit(&server, module, &name, &pause).await {
                Ok(run) => {
                    resumed.get_or_insert(freed.elapsed());
                    acknowledged.push((run, name));
                    break;
                }
                Err((503, _)) if freed.elapsed() < Duration::from_secs(30) => {
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                }
                Err(refused) => panic!("refused after space returned: {refused:?}"),
            }
        }
    }
    let values = await_values(&server, P, &acknowledged).await;
    let finished = freed.elapsed();
    let (status, body) = put_blob(&server, &blob).await;
    if !(200..300).contains(&status) {
        violations.push(format!(
            "a blob upload once space returned: {status} {body}"
        ));
    }
    for agent in &mut agents {
        agent.terminate(Duration::from_secs(10));
    }
    server_proc.terminate(Duration::from_secs(10));
    violations.extend(checker::check(P, &data, &effects, &values, &log));
    violations.extend(checker::nothing_repeated(P, &data));
    println!(
        "chaos disk-full: faults injected 1, runs checked {} ({accepted_while_full} accepted \
         while full), violations {}, accepting again after {} ms, all finished {} ms after \
         space returned",
        values.len(),
        violations.len(),
        resumed.unwrap_or_default().as_millis(),
        finished.as_millis()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
