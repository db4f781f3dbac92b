//! Run retention under a steady workload: the database stays bounded and a cached result
//! that a newer run links to keeps resolving.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::model::{RunId, now_millis};
use crate::sdk::{Failure, Repository, task, workflow};
use crate::{Coflux, Error, Project};

static EXPENSIVE_RUNS: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicBool = AtomicBool::new(false);

#[task(crate = "crate", cache)]
async fn expensive(x: u64) -> Result<u64, Failure> {
    EXPENSIVE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(x * 100)
}

#[task(crate = "crate")]
async fn plain(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

/// A cached step (the same for every run) and a step of its own.
#[workflow(crate = "crate")]
async fn cycle(i: u64) -> Result<u64, Failure> {
    Ok(expensive.call(7).await? + plain.call(i).await?)
}

/// A step of its own only (no cached step: the counter above is for the first test).
#[workflow(crate = "crate")]
async fn single(i: u64) -> Result<u64, Failure> {
    Ok(plain.call(i).await?)
}

#[workflow(crate = "crate")]
async fn blocked() -> Result<u64, Failure> {
    while !RELEASED.load(Ordering::SeqCst) {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(1)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    actix_rt::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Project `p` in `dir`, with environment `production` served by `repository`.
async fn open(
    dir: &tempfile::TempDir,
    repository: Repository,
) -> (Coflux, Project, crate::api::Worker) {
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("p").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let worker = project.serve("production", repository).await.unwrap();
    (coflux, project, worker)
}

/// Waits until no run is held in memory (finished runs are retired shortly after).
async fn retired(project: &Project) {
    within("runs retired", async {
        while project.runs_in_memory() > 0 {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn run_cycle(project: &Project, cycle_no: u64) -> (RunId, i64) {
    let mut handles = Vec::new();
    for i in 0..9 {
        handles.push(project.submit("production", &cycle, (cycle_no * 10 + i,)));
    }
    let mut runs = Vec::new();
    for handle in handles {
        runs.push(handle.await.unwrap());
    }
    for run in &runs {
        let waited = actix_rt::time::timeout(Duration::from_secs(30), run.result::<u64>()).await;
        if waited.is_err() {
            let view = project.inspect_run(run.run, None).await;
            panic!("timed out: run {} of cycle {cycle_no}: {view:#?}", run.run);
        }
    }
    actix_rt::time::sleep(Duration::from_millis(3)).await;
    let cutoff = now_millis();
    actix_rt::time::sleep(Duration::from_millis(3)).await;
    // The newest run of the cycle is younger than the cutoff: it survives, linking to the
    // cached execution.
    let last = project
        .submit("production", &cycle, (cycle_no * 10 + 9,))
        .await
        .unwrap();
    within("the last run", last.result::<u64>()).await.unwrap();
    retired(project).await;
    (last.run, cutoff)
}

#[actix_rt::test]
async fn retention_keeps_the_database_bounded_and_linked_cache_results_valid() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new()
        .with(expensive)
        .with(plain)
        .with(cycle)
        .with(blocked);
    let (_coflux, project, _worker) = open(&dir, repository).await;

    // The first run computes the cached value; every later one links to it.
    let first = project.submit("production", &cycle, (1000,)).await.unwrap();
    assert_eq!(within("first", first.result::<u64>()).await.unwrap(), 1701);
    let source = first.run;
    let mut sizes = Vec::new();
    let mut last = source;
    for cycle_no in 0..10 {
        let (newest, cutoff) = run_cycle(&project, cycle_no).await;
        last = newest;
        let report = project.delete_expired_runs(cutoff, 4).await.unwrap();
        // Everything older than the cutoff goes, except the run whose cached execution the
        // newest run links to.
        assert_eq!(report.kept, 1, "cycle {cycle_no}: {report:?}");
        assert!(!report.deleted.contains(&source));
        assert_eq!(report.deleted.len(), if cycle_no == 0 { 9 } else { 10 });
        // The newest run's result still resolves through the kept cached execution.
        let value: u64 = within("newest result", project.run(last).result())
            .await
            .unwrap();
        assert_eq!(value, 700 + cycle_no * 10 + 9 + 1);
        assert!(project.inspect_run(last, None).await.is_ok());
        // A deleted run is gone.
        let gone = report.deleted[0];
        assert_eq!(
            project.inspect_run(gone, None).await.unwrap_err().code(),
            "run_not_found"
        );
        sizes.push(project.database_size().await.unwrap());
    }
    assert_eq!(
        EXPENSIVE_RUNS.load(Ordering::SeqCst),
        1,
        "computed once, then linked"
    );
    for (cycle_no, size) in sizes.iter().enumerate() {
        assert_eq!(size.rows["runs"], 2, "cycle {cycle_no}: {size:?}");
        assert_eq!(
            size.rows["steps"], sizes[1].rows["steps"],
            "cycle {cycle_no}"
        );
        assert_eq!(
            size.rows["results"], sizes[1].rows["results"],
            "cycle {cycle_no}"
        );
    }
    // Freed pages are reused: the file does not grow from cycle to cycle.
    let (early, late) = (&sizes[2], &sizes[9]);
    assert!(
        late.pages <= early.pages + early.pages / 10 + 4,
        "database grew: {} pages at cycle 3, {} at cycle 10",
        early.pages,
        late.pages
    );

    // One run at a time: a linked run is refused, naming who links to it.
    let refused = project.delete_run(source).await.unwrap_err();
    assert_eq!(refused.code(), "run_referenced");
    assert!(refused.to_string().contains(&last.to_string()), "{refused}");
    project.delete_run(last).await.unwrap();
    project.delete_run(source).await.unwrap();
    assert_eq!(
        project.delete_run(source).await.unwrap_err().code(),
        "run_not_found"
    );
    // The cache entry went with it: a new run computes the value again, not a dangling link.
    let again = project.submit("production", &cycle, (1,)).await.unwrap();
    let value: u64 = within("recomputed", again.result()).await.unwrap();
    assert_eq!(value, 702);
    assert_eq!(EXPENSIVE_RUNS.load(Ordering::SeqCst), 2);

    // A running run is refused, and retention passes over it.
    let running = project.submit("production", &blocked, ()).await.unwrap();
    let error = project.delete_run(running.run).await.unwrap_err();
    assert!(matches!(&error, Error::Orchestration(_)), "{error:?}");
    assert_eq!(error.code(), "run_active");
    let report = project
        .delete_expired_runs(now_millis() + 1, 4)
        .await
        .unwrap();
    assert!(!report.deleted.contains(&running.run));
    RELEASED.store(true, Ordering::SeqCst);
    within("the blocked run", running.result::<u64>())
        .await
        .unwrap();
}

#[actix_rt::test]
async fn the_embedded_retention_option_deletes_finished_runs_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::Config::new(dir.path());
    config.run_retention = Some(Duration::from_millis(1));
    config.run_retention_interval = Duration::from_millis(50);
    let coflux = Coflux::open_with(config).await.unwrap();
    let project = coflux.project("p").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let repository = Repository::new().with(plain).with(single);
    let _worker = project.serve("production", repository).await.unwrap();
    let run = project.submit("production", &single, (1,)).await.unwrap();
    assert_eq!(within("single", run.result::<u64>()).await.unwrap(), 2);
    within("deleted by retention", async {
        while project.inspect_run(run.run, None).await.is_ok() {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(project.database_size().await.unwrap().rows["runs"], 0);
}

/// A message for a run that is being deleted is held, not dropped: a caller waiting on the run
/// gets its result if the deletion leaves the run (it became linked meanwhile), and
/// `run_not_found` once it is gone. Dropped, either caller would wait forever.
#[actix_rt::test]
async fn a_wait_on_a_run_being_deleted_is_answered_once_the_deletion_is_decided() {
    use crate::orchestration::messages::{Envelope, Reply};
    use crate::store::Write;

    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(plain).with(single);
    let (_coflux, project, _worker) = open(&dir, repository).await;
    let kept = project.submit("production", &single, (1,)).await.unwrap();
    let gone = project.submit("production", &single, (2,)).await.unwrap();
    assert_eq!(within("kept", kept.result::<u64>()).await.unwrap(), 2);
    assert_eq!(within("gone", gone.result::<u64>()).await.unwrap(), 3);
    retired(&project).await;

    let router = std::sync::Arc::clone(&project.handle().router);
    let both = [kept.run, gone.run];
    assert_eq!(router.begin_delete(&both), both, "retired runs are marked");
    let wait = |run: RunId| {
        let handle = project.run(run);
        actix_rt::spawn(async move { handle.result::<u64>().await })
    };
    let (wait_kept, wait_gone) = (wait(kept.run), wait(gone.run));
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert!(!wait_kept.is_finished() && !wait_gone.is_finished(), "held");

    let (id, committed) = router.expect_reply();
    router.commit(
        vec![Write::DeleteRuns(vec![gone.run])],
        vec![Envelope::Reply(id, Reply::Recorded(Ok(())))],
    );
    within("the deletion", committed).await.unwrap();
    router.end_delete(&both);
    assert_eq!(within("kept run", wait_kept).await.unwrap().unwrap(), 2);
    let error = within("deleted run", wait_gone).await.unwrap().unwrap_err();
    assert_eq!(error.code(), "run_not_found", "{error}");
}
