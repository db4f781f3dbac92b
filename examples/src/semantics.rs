//! Targets exercising the orchestration semantics through the Rust SDK (module
//! `examples.semantics`): suspension, recurrence (with a checkpoint), defer, `wait_for`,
//! workflows calling workflows and run-level memo. Hosted by the example repository when
//! `COFLUX_EXAMPLE_SEMANTICS` is set.

use std::time::Duration;

use coflux_core::sdk::{
    Checkpoint, Failure, Handle, Metric, Repository, Stream, StreamOptions, current_execution,
    flush, progress, stream, stream_with, suspend, suspense, task, workflow,
};
use futures::{StreamExt, TryStreamExt};

/// The running total of `accumulates` (step state, read back by each occurrence).
static TOTAL: Checkpoint<u32> = Checkpoint::new("total", 0);

/// Adds one (the child that a suspended workflow must not run twice).
#[task(module = "examples.semantics")]
async fn plus_one(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

/// Calls `plus_one`, suspends for 300 ms on its first attempt, and finishes on the second
/// (which gets the same child instead of calling it again).
#[workflow(module = "examples.semantics")]
async fn suspends_once(x: u64) -> Result<String, Failure> {
    let value = plus_one.call(x).await?;
    let attempt = current_execution().map_or(0, |e| e.attempt);
    if attempt == 1 {
        suspend(Some(Duration::from_millis(300))).await?;
    }
    Ok(format!("{value} on attempt {attempt}"))
}

/// Counts its executions in the file `counter`; returns nothing (so it runs again 100 ms
/// later) until the third.
#[workflow(module = "examples.semantics", recurrent, delay_ms = 100)]
async fn countdown(counter: String) -> Result<Option<u32>, Failure> {
    let count = std::fs::read_to_string(&counter)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&counter, count.to_string())?;
    Ok((count >= 3).then_some(count))
}

/// Adds one to a checkpoint each occurrence; returns the total once it reaches `goal`.
#[workflow(module = "examples.semantics", recurrent, delay_ms = 100)]
async fn accumulates(goal: u32) -> Result<Option<u32>, Failure> {
    let fail = |e: coflux_core::sdk::CheckpointError| Failure::new(e.code(), e.to_string());
    let total = TOTAL.update(|t| t + 1).map_err(fail)?;
    flush().await.map_err(fail)?;
    Ok((total >= goal).then_some(total))
}

/// A large piece of step state (stored as a blob past 64 KiB under an agent).
static NOTES: Checkpoint<String> = Checkpoint::new("notes", String::new());

/// Writes `n` bytes of notes and fails on its first attempt; the retry returns how many bytes
/// it read back.
#[workflow(module = "examples.semantics", retries(limit = 1))]
async fn keeps_big_notes(n: usize) -> Result<usize, Failure> {
    let fail = |e: coflux_core::sdk::CheckpointError| Failure::new(e.code(), e.to_string());
    let notes = NOTES.get().map_err(fail)?;
    if notes.is_empty() {
        NOTES.set(&"n".repeat(n)).map_err(fail)?;
        flush().await.map_err(fail)?;
        return Err(Failure::msg("first attempt"));
    }
    Ok(notes.len())
}

/// Debounced: pending calls with the same key collapse into the latest.
#[task(module = "examples.semantics", defer, delay_ms = 300)]
async fn debounced(key: String) -> Result<String, Failure> {
    Ok(format!("ran {key}"))
}

/// Calls `debounced("k")` twice; one execution serves both.
#[workflow(module = "examples.semantics")]
async fn debounce() -> Result<Vec<String>, Failure> {
    let first = debounced.submit("k".into());
    let second = debounced.submit("k".into());
    Ok(vec![first.result().await?, second.result().await?])
}

/// Takes a while, then multiplies by ten.
#[task(module = "examples.semantics")]
async fn slow_value(x: u64) -> Result<u64, Failure> {
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    Ok(x * 10)
}

/// After `pause_ms`, appends `tag` as a line to the file named by `COFLUX_SIDE_EFFECTS` (if
/// set): a side effect that tests count, to see that no execution ran twice.
#[task(module = "examples.semantics")]
async fn effect(tag: String, pause_ms: u64) -> Result<String, Failure> {
    effect_body(tag, pause_ms).await
}

async fn effect_body(tag: String, pause_ms: u64) -> Result<String, Failure> {
    actix_rt::time::sleep(Duration::from_millis(pause_ms)).await;
    if let Some(path) = std::env::var_os("COFLUX_SIDE_EFFECTS") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(format!("{tag}\n").as_bytes())?;
    }
    Ok(tag)
}

/// Calls `effect` `n` times, one after the other (tags `name:0`, `name:1`, ...).
#[workflow(module = "examples.semantics")]
async fn effects(name: String, n: u64, pause_ms: u64) -> Result<Vec<String>, Failure> {
    let mut tags = Vec::new();
    for i in 0..n {
        tags.push(effect.call(format!("{name}:{i}"), pause_ms).await?);
    }
    Ok(tags)
}

/// `effect` with a retry policy: an attempt abandoned when its agent dies is retried (chaos).
#[task(
    module = "examples.semantics",
    retries(limit = 3, backoff_min_ms = 10, backoff_max_ms = 100)
)]
async fn retried_effect(tag: String, pause_ms: u64) -> Result<String, Failure> {
    effect_body(tag, pause_ms).await
}

/// `effects` whose steps and itself are retried (tags `name:0`, `name:1`, ...).
#[workflow(
    module = "examples.semantics",
    retries(limit = 3, backoff_min_ms = 10, backoff_max_ms = 100)
)]
async fn retried_effects(name: String, n: u64, pause_ms: u64) -> Result<Vec<String>, Failure> {
    let mut tags = Vec::new();
    for i in 0..n {
        tags.push(retried_effect.call(format!("{name}:{i}"), pause_ms).await?);
    }
    Ok(tags)
}

/// Not started before the execution behind `upstream` has finished.
#[task(module = "examples.semantics", wait_for = ["upstream"])]
async fn downstream(upstream: Handle<u64>) -> Result<u64, Failure> {
    Ok(upstream.result().await? + 1)
}

/// Hands a running execution to `downstream`, which waits for it.
#[workflow(module = "examples.semantics")]
async fn waits() -> Result<u64, Failure> {
    let upstream = slow_value.submit(4);
    Ok(downstream.call(upstream).await?)
}

/// Adds one, as a workflow of its own.
#[workflow(module = "examples.semantics")]
async fn inner(x: u64) -> Result<u64, Failure> {
    Ok(x + 1)
}

/// Calls the `inner` workflow: it runs as a spawned run linked to this execution.
#[workflow(module = "examples.semantics")]
async fn outer(x: u64) -> Result<u64, Failure> {
    Ok(inner.call(x).await? * 2)
}

/// Memoises its calls: the repeated `plus_one(1)` runs once.
#[workflow(module = "examples.semantics", memo)]
async fn memo_run() -> Result<Vec<u64>, Failure> {
    let first = plus_one.submit(1);
    let second = plus_one.submit(1);
    Ok(vec![first.result().await?, second.result().await?])
}

/// The targets of this module.
/// A text of `n` bytes (large values travel as blobs, not inline).
#[task(module = "examples.semantics")]
async fn big_text(n: usize) -> Result<String, Failure> {
    Ok("x".repeat(n))
}

/// The length of a text.
#[task(module = "examples.semantics")]
async fn text_length(text: String) -> Result<usize, Failure> {
    Ok(text.len())
}

/// A large result, then the same value as another task's argument.
#[workflow(module = "examples.semantics")]
async fn big_round_trip(n: usize) -> Result<usize, Failure> {
    let text = big_text.call(n).await?;
    Ok(text_length.call(text).await?)
}

/// Reports its progress (`i/n`) and a `loss` series of `1/i` for `i` in `1..=n` (every point
/// sent: no throttle), 20 ms apart; returns `n`.
#[workflow(module = "examples.semantics")]
async fn reports_progress(n: u64) -> Result<u64, Failure> {
    let loss = Metric::new("loss").group("training").throttle(None);
    for i in 1..=n {
        loss.record_at(1.0 / i as f64, Some(i as f64));
        progress((i, n));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(n)
}

/// A stream of the first `n` squares.
#[task(module = "examples.semantics")]
async fn squares(n: u64) -> Result<Stream<u64>, Failure> {
    Ok(stream(futures::stream::iter((0..n).map(|i| i * i))).await?)
}

/// Reads `squares(n)` whole, and its even positions in a child task.
#[workflow(module = "examples.semantics")]
async fn reads_squares(n: u64) -> Result<(Vec<u64>, Vec<u64>), Failure> {
    let stream = squares.call(n).await?;
    let all: Vec<u64> = stream.items().try_collect().await?;
    let even = sum_view.call(stream.partition(2, 0)).await?;
    Ok((all, even))
}

/// The items of a stream view.
#[task(module = "examples.semantics")]
async fn sum_view(view: Stream<u64>) -> Result<Vec<u64>, Failure> {
    Ok(view.items().try_collect().await?)
}

/// Given once `reads_while_produced` has read the first tick.
static FIRST_READ: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Ticks `0..n`; tick 1 is produced only once the first one was read (999 if that did not
/// happen within 10 s: the consumer could not read before the stream was complete).
#[task(module = "examples.semantics")]
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

/// Reads `ticks(n)` as it is produced.
#[workflow(module = "examples.semantics")]
async fn reads_while_produced(n: u64) -> Result<Vec<u64>, Failure> {
    let produced = ticks.call(n).await?;
    let mut items = produced.items();
    let first = futures::StreamExt::next(&mut items).await.transpose()?;
    FIRST_READ.notify_one();
    let rest: Vec<u64> = items.try_collect().await?;
    Ok(first.into_iter().chain(rest).collect())
}

/// Unix time in ms (to compare when items were produced and read).
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A stream of `n` items `(i, when it was produced)`, paced with a buffer of `buffer`.
#[task(module = "examples.semantics")]
async fn paced(n: u64, buffer: u32) -> Result<Stream<(u64, u64)>, Failure> {
    let items = futures::stream::unfold(0, move |i| async move {
        (i < n).then(|| ((i, now_ms()), i + 1))
    });
    Ok(stream_with(items, StreamOptions::buffer(buffer)).await?)
}

/// Reads `paced(n, buffer)` slowly (`pause_ms` after each item): for each item, when it was
/// produced and when it was read.
#[workflow(module = "examples.semantics")]
async fn reads_slowly(n: u64, buffer: u32, pause_ms: u64) -> Result<Vec<(u64, u64)>, Failure> {
    let produced = paced.call(n, buffer).await?;
    let mut items = produced.items();
    let mut seen = Vec::new();
    while let Some((_, produced_at)) = items.try_next().await? {
        seen.push((produced_at, now_ms()));
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    Ok(seen)
}

/// `n` items, then silence: the stream ends as `timeout` once `idle_ms` pass without an item.
#[task(module = "examples.semantics")]
async fn stalls(n: u64, idle_ms: u64) -> Result<Stream<u64>, Failure> {
    let items = futures::stream::iter(0..n).chain(futures::stream::pending());
    let options = StreamOptions::default().with_idle_timeout(Duration::from_millis(idle_ms));
    Ok(stream_with(items, options).await?)
}

/// Reads `stalls(n, idle_ms)`: the items, and the error that ended the stream.
#[workflow(module = "examples.semantics")]
async fn reads_stalled(n: u64, idle_ms: u64) -> Result<(Vec<u64>, String), Failure> {
    let produced = stalls.call(n, idle_ms).await?;
    let mut items = produced.items();
    let mut seen = Vec::new();
    loop {
        match items.next().await {
            Some(Ok(item)) => seen.push(item),
            Some(Err(e)) => return Ok((seen, e.to_string())),
            None => return Ok((seen, "complete".into())),
        }
    }
}

/// Doubles `x` after `pause_ms`.
#[task(module = "examples.semantics")]
async fn slow_double(x: u64, pause_ms: u64) -> Result<u64, Failure> {
    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    Ok(x * 2)
}

/// Waits for a slow child within a zero suspense: the first attempt suspends at once, the next
/// one runs when the child has finished and finds its result at hand.
#[workflow(module = "examples.semantics")]
async fn waits_in_suspense(x: u64) -> Result<String, Failure> {
    let child = slow_double.submit(x, 600);
    let value = suspense(Duration::ZERO, child.result()).await?;
    let attempt = current_execution().map_or(0, |e| e.attempt);
    Ok(format!("{value} on attempt {attempt}"))
}

/// Panics (the run fails with `coflux.Panic` and where it happened).
#[workflow(module = "examples.semantics")]
async fn panics(message: String) -> Result<(), Failure> {
    panic!("{message}");
}

pub fn repository() -> Repository {
    Repository::new()
        .with(ticks)
        .with(reads_while_produced)
        .with(paced)
        .with(reads_slowly)
        .with(stalls)
        .with(reads_stalled)
        .with(keeps_big_notes)
        .with(slow_double)
        .with(waits_in_suspense)
        .with(panics)
        .with(squares)
        .with(reads_squares)
        .with(sum_view)
        .with(reports_progress)
        .with(plus_one)
        .with(suspends_once)
        .with(countdown)
        .with(accumulates)
        .with(debounced)
        .with(debounce)
        .with(slow_value)
        .with(effect)
        .with(effects)
        .with(retried_effect)
        .with(retried_effects)
        .with(downstream)
        .with(waits)
        .with(inner)
        .with(outer)
        .with(memo_run)
        .with(big_text)
        .with(text_length)
        .with(big_round_trip)
}
