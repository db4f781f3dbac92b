//! The Rust SDK's streams in the embedded orchestrator: a task returning a stream of serde
//! items, read by its caller as an async stream (whole, and as views) while it is produced.

use std::time::Duration;

use coflux_core::Coflux;
use coflux_core::sdk::{
    Failure, Repository, Stream, StreamError, StreamOptions, stream, stream_with, task, workflow,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: u64,
}

#[task]
async fn readings(n: u64) -> Result<Stream<Reading>, Failure> {
    let items = (0..n).map(|i| Reading {
        sensor: format!("s{}", i % 2),
        value: i * i,
    });
    Ok(stream(futures::stream::iter(items)).await?)
}

#[task]
async fn odd_values(source: Stream<Reading>) -> Result<Vec<u64>, Failure> {
    let odd: Vec<Reading> = source.partition(2, 1).items().try_collect().await?;
    Ok(odd.into_iter().map(|r| r.value).collect())
}

#[workflow]
async fn summarise(n: u64) -> Result<(Vec<u64>, Vec<u64>, Vec<u64>), Failure> {
    let stream = readings.call(n).await?;
    let all: Vec<Reading> = stream.items().try_collect().await?;
    let again: Vec<Reading> = stream.slice(1, Some(3)).items().try_collect().await?;
    let odd = odd_values.call(stream.clone()).await?;
    Ok((
        all.into_iter().map(|r| r.value).collect(),
        again.into_iter().map(|r| r.value).collect(),
        odd,
    ))
}

#[actix_rt::test]
async fn embedded_streams_are_read_as_async_streams() {
    let dir = tempfile::tempdir().unwrap();
    let coflux = Coflux::open(dir.path()).await.unwrap();
    let project = coflux.project("test").await.unwrap();
    project
        .ensure_environment("production", None)
        .await
        .unwrap();
    let repository = Repository::new()
        .with(readings)
        .with(odd_values)
        .with(summarise);
    let _worker = project.serve("production", repository).await.unwrap();
    let run = project
        .submit("production", &summarise, (5,))
        .await
        .unwrap();
    let (all, again, odd) = run
        .result::<(Vec<u64>, Vec<u64>, Vec<u64>)>()
        .await
        .unwrap();
    assert_eq!(all, vec![0, 1, 4, 9, 16]);
    assert_eq!(again, vec![1, 4]);
    assert_eq!(odd, vec![1, 9]);
    let view = run.inspect().await.unwrap();
    let step = view.steps_named("readings").next().unwrap();
    assert_eq!(step.streams.len(), 1);
    assert_eq!(step.streams[0].items, 5);
    assert_eq!(step.streams[0].closed.as_deref(), Some("complete"));
}

#[actix_rt::test]
async fn a_stream_is_made_inside_an_execution_only() {
    let error: StreamError = stream(futures::stream::iter([1u64])).await.unwrap_err();
    assert_eq!(error, StreamError::NotInExecution);
    let handle: Stream<u64> = serde_json::from_value(serde_json::json!(
        {"type": "stream", "id": "R1:2_0"}
    ))
    .unwrap();
    let items: Vec<Result<u64, StreamError>> = futures::StreamExt::collect(handle.items()).await;
    assert_eq!(items, vec![Err(StreamError::NotInExecution)]);
}

/// Given once the consumer has read the first tick.
static FIRST_READ: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Ticks `0..n`; tick 1 is produced only once the first one was read (999 if that did not
/// happen within 10 s, i.e. the consumer could not read before the stream was complete).
#[task]
async fn ticks(n: u64) -> Result<Stream<u64>, Failure> {
    let items = futures::stream::unfold(0, move |i| async move {
        if i >= n {
            return None;
        }
        if i == 1 {
            let read = tokio::time::timeout(Duration::from_secs(10), FIRST_READ.notified()).await;
            return Some((if read.is_ok() { 1 } else { 999 }, 2));
        }
        Some((i, i + 1))
    });
    Ok(stream(items).await?)
}

#[workflow]
async fn reads_while_produced(n: u64) -> Result<Vec<u64>, Failure> {
    let produced = ticks.call(n).await?;
    let mut items = produced.items();
    let first = items.next().await.transpose()?;
    FIRST_READ.notify_one();
    let rest: Vec<u64> = items.try_collect().await?;
    Ok(first.into_iter().chain(rest).collect())
}

#[actix_rt::test]
async fn a_stream_is_read_while_its_producer_still_appends() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(ticks).with(reads_while_produced);
    let (_coflux, project) = super::embedded_semantics::open(&dir, repository).await;
    let run = project
        .submit("production", &reads_while_produced, (4,))
        .await
        .unwrap();
    let read: Vec<u64> = run.result().await.unwrap();
    assert_eq!(read, [0, 1, 2, 3], "tick 1 waited for the first read");
    let view = run.inspect().await.unwrap();
    let step = view.steps_named("ticks").next().unwrap();
    assert_eq!(step.streams[0].items, 4);
    assert_eq!(step.streams[0].closed.as_deref(), Some("complete"));
}

/// Unix time in ms (to compare when items were produced and read).
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `n` items `(i, when it was produced)`, paced with a buffer of `buffer` (0: unbounded).
#[task]
async fn stamped(n: u64, buffer: u32) -> Result<Stream<(u64, u64)>, Failure> {
    let items = futures::stream::unfold(0, move |i| async move {
        (i < n).then(|| ((i, now_ms()), i + 1))
    });
    let options = match buffer {
        0 => StreamOptions::default(),
        n => StreamOptions::buffer(n),
    };
    Ok(stream_with(items, options).await?)
}

/// Reads `stamped(n, buffer)` slowly: for each item, when it was produced and when it was read.
#[workflow]
async fn reads_stamped_slowly(n: u64, buffer: u32) -> Result<Vec<(u64, u64)>, Failure> {
    let produced = stamped.call(n, buffer).await?;
    let mut items = produced.items();
    let mut seen = Vec::new();
    while let Some((_, produced_at)) = items.try_next().await? {
        seen.push((produced_at, now_ms()));
        actix_rt::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(seen)
}

/// How far the producer ran ahead of its consumer at most: for each item read (the k-th), how
/// many items had been produced by then beyond the k read so far, from `(produced_at,
/// read_at)` pairs in order.
pub fn most_ahead(seen: &[(u64, u64)]) -> usize {
    seen.iter()
        .enumerate()
        .map(|(k, (_, read_at))| {
            let produced = seen.iter().filter(|(at, _)| at <= read_at).count();
            produced.saturating_sub(k + 1)
        })
        .max()
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_producer_with_a_buffer_stays_within_it_of_a_slow_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(stamped).with(reads_stamped_slowly);
    let (_coflux, project) = super::embedded_semantics::open(&dir, repository).await;
    let paced = project
        .submit("production", &reads_stamped_slowly, (6, 2))
        .await
        .unwrap();
    let seen: Vec<(u64, u64)> = paced.result().await.unwrap();
    assert_eq!(seen.len(), 6);
    assert_eq!(most_ahead(&seen), 2, "a buffer of 2, used: {seen:?}");
    // The same measure sees an unbounded producer run ahead.
    let unbounded = project
        .submit("production", &reads_stamped_slowly, (6, 0))
        .await
        .unwrap();
    let seen: Vec<(u64, u64)> = unbounded.result().await.unwrap();
    assert!(most_ahead(&seen) > 2, "{seen:?}");
}

/// `n` items, one every `gap_ms`, then (with `stall`) nothing more, under an idle timeout of
/// `idle_ms`.
#[task]
async fn trickle(n: u64, gap_ms: u64, stall: bool, idle_ms: u64) -> Result<Stream<u64>, Failure> {
    let items = futures::stream::unfold(0, move |i| async move {
        if i >= n {
            if stall {
                futures::future::pending::<()>().await;
            }
            return None;
        }
        actix_rt::time::sleep(Duration::from_millis(gap_ms)).await;
        Some((i, i + 1))
    });
    let options = StreamOptions::default().with_idle_timeout(Duration::from_millis(idle_ms));
    Ok(stream_with(items, options).await?)
}

/// Reads `trickle(…)`: its items, and the error that ended it (`None`: it completed).
#[workflow]
async fn reads_trickle(
    n: u64,
    gap_ms: u64,
    stall: bool,
    idle_ms: u64,
) -> Result<(Vec<u64>, Option<String>), Failure> {
    let produced = trickle.call(n, gap_ms, stall, idle_ms).await?;
    let mut items = produced.items();
    let mut seen = Vec::new();
    loop {
        match items.next().await {
            None => return Ok((seen, None)),
            Some(Ok(item)) => seen.push(item),
            Some(Err(e)) => return Ok((seen, Some(e.to_string()))),
        }
    }
}

#[actix_rt::test]
async fn a_producer_idle_past_its_timeout_ends_the_stream_as_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository::new().with(trickle).with(reads_trickle);
    let (_coflux, project) = super::embedded_semantics::open(&dir, repository).await;
    // An item every 150 ms under a 1 s idle timeout: the timer restarts with each item.
    let steady = project
        .submit("production", &reads_trickle, (4, 150, false, 1000))
        .await
        .unwrap();
    let (items, ended): (Vec<u64>, Option<String>) = steady.result().await.unwrap();
    assert_eq!((items, ended), (vec![0, 1, 2, 3], None));
    // A producer that goes silent: its stream ends as `timeout` after the items it made.
    let stalled = project
        .submit("production", &reads_trickle, (3, 10, true, 300))
        .await
        .unwrap();
    let (items, ended): (Vec<u64>, Option<String>) =
        actix_rt::time::timeout(Duration::from_secs(20), stalled.result())
            .await
            .expect("the stalled stream ends by its idle timeout")
            .unwrap();
    assert_eq!(items, vec![0, 1, 2]);
    assert_eq!(ended.as_deref(), Some("stream ended: timeout"));
}
