//! The cost of the lease check (fencing) on PostgreSQL: the same one-write batch committed
//! through a project store without a fence and through one whose every transaction first
//! checks the lease (`Fence::Lease`), alternately, several pairs, in one process.
//!
//! ```text
//! cargo bench -p coflux-core --bench pg_fence -- --database-url postgres://…
//! ```
//!
//! Each round commits [`BATCHES`] batches; the figures are the medians over the rounds of the
//! time per batch and the median of the pairs' ratios (with / without), durable (`synchronous_commit` as the server has it) and, to see the check's
//! own cost without the WAL flush, with `synchronous_commit=off` on the bench's connections.
//! The last line of stdout is one JSON object. The bench's schema is dropped at the end.

use std::time::{Duration, Instant};

use coflux_core::model::{
    Environment, EnvironmentId, EnvironmentName, EnvironmentState, TargetRef,
};
use coflux_core::store::postgres::lease::{Acquired, FenceCheck, Leases};
use coflux_core::store::postgres::{Fence, PgLocation, PgStore};
use coflux_core::store::{ProjectStore, Write};

/// Batches per round.
const BATCHES: usize = 100;
/// Rounds of each kind (alternating: the two of a pair see about the same load).
const PAIRS: usize = 20;

fn database_url() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--database-url")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("COFLUX_TEST_DATABASE_URL").ok())
        .expect("pass --database-url URL (or set COFLUX_TEST_DATABASE_URL)")
}

fn limit(max: u32) -> Write {
    Write::PutConcurrencyLimit {
        environment: EnvironmentId(1),
        target: TargetRef::new("bench", "fence"),
        max: Some(max),
    }
}

/// Median time per batch of `rounds`.
fn median(mut rounds: Vec<Duration>) -> f64 {
    rounds.sort();
    rounds[rounds.len() / 2].as_secs_f64() * 1e6 / BATCHES as f64
}

/// Per-batch medians (µs) without and with the fence, over `url`, and the median of the
/// pairs' ratios (with / without).
fn measure(url: &str, schema: &str, leases: &Leases, check: &FenceCheck) -> (f64, f64, f64) {
    let location = PgLocation {
        url: url.to_owned(),
        schema: schema.to_owned(),
    };
    let mut plain = PgStore::open(&location).unwrap();
    let mut fenced = PgStore::open(&location)
        .unwrap()
        .with_fence(Fence::Lease(check.clone()))
        .unwrap();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for pair in 0..=PAIRS {
        leases
            .renew(&[(check.project.clone(), check.epoch)])
            .unwrap();
        for (store, times) in [(&mut plain, &mut without), (&mut fenced, &mut with)] {
            let started = Instant::now();
            for i in 0..BATCHES {
                store.apply(&[limit(i as u32)]).unwrap();
            }
            // The first pair warms the connections up.
            if pair > 0 {
                times.push(started.elapsed());
            }
        }
    }
    let mut ratios: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(w, o)| w.as_secs_f64() / o.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    (median(without), median(with), ratios[ratios.len() / 2])
}

fn main() {
    let url = database_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{}_{nanos}", std::process::id());
    let project = format!("fencebench{id}");
    let schema = format!("cx_fencebench_{id}");
    let location = PgLocation {
        url: url.clone(),
        schema: schema.clone(),
    };
    let mut setup = PgStore::open(&location).unwrap();
    setup
        .apply(&[Write::CreateEnvironment(Environment {
            id: EnvironmentId(1),
            name: EnvironmentName::new("bench").unwrap(),
            parent: None,
            state: EnvironmentState::Active,
            created_at: 0,
        })])
        .unwrap();
    drop(setup);
    let node = format!("http://fence-bench-{id}");
    let leases = Leases::connect(&url, &node, Duration::from_secs(30)).unwrap();
    let Acquired::Owned(epoch) = leases.acquire(&project).unwrap() else {
        panic!("the bench's project is owned elsewhere");
    };
    let check = FenceCheck {
        project: project.clone(),
        node,
        epoch,
        idle_limit: Duration::from_secs(15),
        lease: Duration::from_secs(30),
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let async_url = format!("{url}{separator}options=-c%20synchronous_commit%3Doff");
    let (durable_without, durable_with, durable_ratio) = measure(&url, &schema, &leases, &check);
    let (async_without, async_with, async_ratio) = measure(&async_url, &schema, &leases, &check);
    leases.release(&project, epoch).unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();

    println!(
        "PostgreSQL batch of one write: without / with the lease check ({PAIRS} pairs of {BATCHES})"
    );
    println!(
        "  durable          {durable_without:8.1} µs  {durable_with:8.1} µs  ratio {durable_ratio:.3}"
    );
    println!(
        "  no flush wait    {async_without:8.1} µs  {async_with:8.1} µs  ratio {async_ratio:.3}"
    );
    println!(
        "{}",
        serde_json::json!({
            "batch_us": durable_without,
            "fenced_batch_us": durable_with,
            "fence_ratio": durable_ratio,
            "batch_nosync_us": async_without,
            "fenced_batch_nosync_us": async_with,
            "fence_nosync_ratio": async_ratio,
        })
    );
}
