//! Durability: every run acknowledged by `submit` survives `kill -9` of the process, and after a
//! restart on the same data directory the executions that were running are abandoned and
//! retried, so every run finishes with one result per execution. While a process serves a
//! project, another process cannot open it.
//!
//! The test re-runs its own binary as the child process (the ignored test `durability_child`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coflux_core::Coflux;
use coflux_core::model::{ExecutionResult, ExecutionState, ResultKind, RunId};
use coflux_core::sdk::{Failure, Repository, task, workflow};

const RUNS: u64 = 20;
const DIR_VAR: &str = "COFLUX_DURABILITY_DIR";

/// Set in the child: tasks block until the process is killed.
static BLOCK: AtomicBool = AtomicBool::new(false);

#[task]
async fn work(i: u64) -> Result<u64, Failure> {
    while BLOCK.load(Ordering::SeqCst) {
        actix_rt::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(i * 10)
}

#[workflow(retries = 1)]
async fn job(i: u64) -> Result<u64, Failure> {
    Ok(work.call(i).await?)
}

fn repository() -> Repository {
    Repository::new().with(job).with(work)
}

#[test]
#[ignore = "the child process of acknowledged_runs_survive_kill_9"]
fn durability_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    BLOCK.store(true, Ordering::SeqCst);
    actix_rt::System::new().block_on(async move {
        let coflux = Coflux::open(&dir).await.unwrap();
        let project = coflux.project("durable").await.unwrap();
        project
            .ensure_environment("production", None)
            .await
            .unwrap();
        let _worker = project.serve("production", repository()).await.unwrap();
        let mut runs = Vec::new();
        for i in 0..RUNS {
            let run = project.submit("production", &job, (i,)).await.unwrap();
            println!("ACK {} {i}", run.run);
            runs.push(run);
        }
        // Wait until every run's task is running, then report and hang until killed.
        loop {
            let mut running = 0;
            for run in &runs {
                let view = run.inspect().await.unwrap();
                if view.steps.len() == 2
                    && view.steps[1].executions[0].state == ExecutionState::Assigned
                {
                    running += 1;
                }
            }
            if running == runs.len() {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        println!("READY");
        std::future::pending::<()>().await;
    });
}

#[test]
fn acknowledged_runs_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durability::durability_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked: Vec<(RunId, u64)> = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest may print its own text on the same line before ours.
        if let Some((_, rest)) = line.split_once("ACK ") {
            let (run, i) = rest.split_once(' ').unwrap();
            acked.push((run.parse().unwrap(), i.parse().unwrap()));
        } else if line.ends_with("READY") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not get ready in time"
        );
    }
    assert_eq!(acked.len() as u64, RUNS);
    // While the child serves the project, another process cannot open it (two orchestrators
    // writing one project would each act on runs the other owns).
    actix_rt::System::new().block_on(async {
        let coflux = Coflux::open(dir.path()).await.unwrap();
        match coflux.existing_project("durable").await {
            Err(e) => assert_eq!(e.code(), "store_in_use", "{e}"),
            Ok(_) => panic!("a second process opened a project that another one serves"),
        }
    });
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    actix_rt::System::new().block_on(async move {
        let coflux = Coflux::open(dir.path()).await.unwrap();
        let project = coflux.existing_project("durable").await.unwrap();
        let _worker = project.serve("production", repository()).await.unwrap();
        for (run, i) in acked {
            let handle = project.run(run);
            let value = tokio_timeout(handle.result::<u64>()).await;
            assert_eq!(value, i * 10, "run {run}");
            let view = handle.inspect().await.unwrap();
            let root = &view.steps[0].executions;
            assert_eq!(
                root.len(),
                2,
                "the running workflow was abandoned and retried once"
            );
            assert!(matches!(
                root[0].result,
                Some(ExecutionResult::Abandoned { retry: Some(_) })
            ));
            assert_eq!(root[1].state, ExecutionState::Finished(ResultKind::Value));
            for step in &view.steps {
                for e in &step.executions {
                    assert!(e.result.is_some(), "{} has a result", e.id);
                }
            }
        }
    });
}

async fn tokio_timeout<T>(
    f: impl std::future::Future<Output = Result<T, coflux_core::Error>>,
) -> T {
    match actix_rt::time::timeout(Duration::from_secs(30), f).await {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("timed out waiting for a recovered run"),
    }
}

/// Kills the child process if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
