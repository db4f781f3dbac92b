//! A project whose data directory cannot be written for a while (injected `SQLITE_FULL`):
//! new runs are refused, accepted ones wait, and everything resumes by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::sdk::{Failure, Repository, task, workflow};
use crate::{Coflux, Error, Project};

static RELEASED: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Finishes once the test releases it.
#[task(crate = "crate")]
async fn held(x: u64) -> Result<u64, Failure> {
    STARTED.store(true, Ordering::SeqCst);
    while !RELEASED.load(Ordering::SeqCst) {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(x + 1)
}

#[task(crate = "crate")]
async fn triple(x: u64) -> Result<u64, Failure> {
    Ok(x * 3)
}

/// `held(x)`, then `triple` of that: a second child submitted after the first result.
#[workflow(crate = "crate")]
async fn chain(x: u64) -> Result<u64, Failure> {
    let y = held.call(x).await?;
    Ok(triple.call(y).await?)
}

#[workflow(crate = "crate")]
async fn quick(x: u64) -> Result<u64, Failure> {
    Ok(triple.call(x).await?)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    actix_rt::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn until(what: &str, project: &Project, done: impl Fn(&Project) -> bool) {
    within(what, async {
        while !done(project) {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_full_disk_refuses_new_runs_and_accepted_runs_finish_once_it_has_space() {
    let dir = tempfile::tempdir().unwrap();
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("p").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let repository = Repository::new()
        .with(held)
        .with(triple)
        .with(chain)
        .with(quick);
    let _worker = project.serve("production", repository).await.unwrap();

    // A run in progress: its task is held, and what led there is committed (the writer has
    // gone quiet), so the next write to fail is the submission below.
    let running = project.submit("production", &chain, (1,)).await.unwrap();
    within("the held task starts", async {
        while !STARTED.load(Ordering::SeqCst) {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    within("the writer goes quiet", async {
        loop {
            let commits = project.writer_stats().commits;
            actix_rt::time::sleep(Duration::from_millis(100)).await;
            if project.writer_stats().commits == commits {
                break;
            }
        }
    })
    .await;

    // The disk fills. A run submitted now is accepted (nothing failed yet) and waits.
    project.inject_disk_full(true);
    let accepted = actix_rt::spawn({
        let project = project.clone();
        async move {
            let run = project.submit("production", &quick, (5,)).await?;
            run.result::<u64>().await
        }
    });
    until("the writer stalls", &project, |p| p.writer_stats().stalled).await;
    // The held task finishes: its result (and the child it leads to) wait for the store too.
    RELEASED.store(true, Ordering::SeqCst);

    // New runs are refused at once (not queued behind the store), with the unavailable error.
    let refused = actix_rt::time::timeout(
        Duration::from_secs(5),
        project.submit("production", &quick, (7,)),
    )
    .await
    .expect("a new run is refused at once, not queued");
    let Err(error @ Error::Unavailable(_)) = refused else {
        panic!("expected unavailable, got {:?}", refused.map(|r| r.run));
    };
    assert_eq!(error.code(), "unavailable");
    assert!(error.to_string().contains("disk full"), "{error}");
    until("the writer retries", &project, |p| {
        p.writer_stats().failures >= 3
    })
    .await;
    if accepted.is_finished() {
        panic!("the accepted run waits, but it ended: {:?}", accepted.await);
    }
    assert!(project.writer_stats().stalled);

    // Space returns: everything accepted finishes with its result, nothing was dropped.
    project.inject_disk_full(false);
    let accepted = within("the accepted run", accepted).await.unwrap();
    assert_eq!(accepted.unwrap(), 15);
    let result = actix_rt::time::timeout(Duration::from_secs(30), running.result::<u64>()).await;
    let Ok(result) = result else {
        let view = project.inspect_run(running.run, None).await;
        panic!("timed out: the running run: {view:#?}");
    };
    assert_eq!(result.unwrap(), 6);
    until("the writer recovers", &project, |p| {
        !p.writer_stats().stalled
    })
    .await;

    // Scheduling resumes by itself: a new run is assigned and finishes.
    let later = project.submit("production", &quick, (10,)).await.unwrap();
    let result = within("a new run", later.result::<u64>()).await;
    assert_eq!(result.unwrap(), 30);
}
