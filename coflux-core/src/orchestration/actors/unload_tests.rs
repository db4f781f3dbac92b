//! Idle projects are unloaded and loaded again on demand, with nothing lost; projects share a
//! bounded set of threads.

use std::time::Duration;

use crate::api::{Coflux, Config};
use crate::sdk::{Failure, Repository, task, workflow};

#[task(crate = "crate")]
async fn double(x: u64) -> Result<u64, Failure> {
    Ok(x * 2)
}

#[workflow(crate = "crate")]
async fn twice(x: u64) -> Result<u64, Failure> {
    Ok(double.call(x).await? + double.call(x + 1).await?)
}

fn repository() -> Repository {
    Repository::new().with(double).with(twice)
}

/// `threads`: 0 for a thread per project, else the size of the shared pools.
async fn open(dir: &std::path::Path, idle: Duration, threads: usize) -> Coflux {
    let mut config = Config::new(dir);
    config.project_idle_timeout = Some(idle);
    config.project_threads = threads;
    Coflux::open_with(config).await.unwrap()
}

/// Waits until `project` is loaded (or not), up to 10 s.
async fn until_loaded(coflux: &Coflux, project: &str, loaded: bool) {
    for _ in 0..1_000 {
        let now = coflux.loaded_projects().await.unwrap();
        if now.iter().any(|p| p == project) == loaded {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("project {project} still not loaded={loaded} after 10 s");
}

#[actix_rt::test]
async fn an_idle_project_is_unloaded_and_works_again_once_reloaded() {
    for threads in [2, 0] {
        unloaded_and_reloaded(threads).await;
    }
}

async fn unloaded_and_reloaded(threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let coflux = open(dir.path(), Duration::from_millis(100), threads).await;
    let first = {
        let project = coflux.project("p").await.unwrap();
        project.ensure_environment("prod", None).await.unwrap();
        let worker = project.serve("prod", repository()).await.unwrap();
        let run = project.submit("prod", &twice, (3,)).await.unwrap();
        assert_eq!(run.result::<u64>().await.unwrap(), 14);
        // Held by a handle and a connected worker: it stays loaded past the timeout.
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(coflux.loaded_projects().await.unwrap(), ["p"]);
        worker.stop();
        run.run
    };
    until_loaded(&coflux, "p", false).await;

    // Loaded again by the next use: its environment and its finished run are there, and a
    // new run completes.
    let project = coflux.existing_project("p").await.unwrap();
    assert_eq!(coflux.loaded_projects().await.unwrap(), ["p"]);
    let envs = project.environments().await.unwrap();
    assert_eq!(
        envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["prod"]
    );
    assert_eq!(project.run(first).result::<u64>().await.unwrap(), 14);
    let _worker = project.serve("prod", repository()).await.unwrap();
    let run = project.submit("prod", &twice, (10,)).await.unwrap();
    assert_eq!(run.result::<u64>().await.unwrap(), 42);
}

#[actix_rt::test]
async fn requests_racing_with_unloading_neither_fail_nor_lose_runs() {
    for threads in [2, 0] {
        racing(threads).await;
    }
}

async fn racing(threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    // So short that many requests arrive while the project is being unloaded.
    let coflux = open(dir.path(), Duration::from_millis(1), threads).await;
    let mut runs = Vec::new();
    let mut unloaded = 0;
    for i in 0..40u64 {
        unloaded += usize::from(coflux.loaded_projects().await.unwrap().is_empty());
        let project = coflux.project("race").await.unwrap();
        project.ensure_environment("prod", None).await.unwrap();
        let worker = project.serve("prod", repository()).await.unwrap();
        let run = project.submit("prod", &twice, (i,)).await.unwrap();
        assert_eq!(run.result::<u64>().await.unwrap(), 4 * i + 2);
        runs.push((run.run, 4 * i + 2));
        worker.stop();
        drop((run, project));
        actix_rt::time::sleep(Duration::from_millis(i % 7)).await;
    }
    assert!(unloaded > 0, "the project was never unloaded");
    // Every run is still there, however often the project was unloaded meanwhile.
    for (run, expected) in runs {
        let project = coflux.existing_project("race").await.unwrap();
        assert_eq!(project.run(run).result::<u64>().await.unwrap(), expected);
        actix_rt::time::sleep(Duration::from_millis(run.0 % 3)).await;
    }
}

#[actix_rt::test]
async fn many_projects_share_a_bounded_set_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.project_threads = 2;
    let coflux = Coflux::open_with(config).await.unwrap();
    let mut projects = Vec::new();
    for i in 0..30 {
        let project = coflux.project(&format!("p{i}")).await.unwrap();
        project.ensure_environment("prod", None).await.unwrap();
        projects.push(project);
    }
    assert_eq!(coflux.loaded_projects().await.unwrap().len(), 30);
    // Thread names are per process: count this supervisor's writers through its pool.
    let writers = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|name| name.starts_with("coflux-writer"))
                })
                .count()
        })
        .unwrap_or(0);
    // Other tests of this process may run their own pools meanwhile; without sharing there
    // would be one writer per project.
    assert!(writers < 30, "{writers} writer threads for 30 projects");
}
