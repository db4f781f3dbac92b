//! The cost of a reader's commit-sequence check on PostgreSQL: while this process holds the
//! project's writer, a reader store checks in each read transaction that the database is not
//! behind the writer (a crash of PostgreSQL may have lost commits the writer acknowledged;
//! the sequence is read in the round trip of the BEGIN, once per connection: see
//! `store/postgres/catch_up.rs`). The writer store's own reads do not check. The same small
//! read (the runs list of an empty project, `list_runs`: the check's share is largest there)
//! through both, alternately, several pairs, in one process.
//!
//! ```text
//! cargo bench -p coflux-core --bench pg_read -- --database-url postgres://…
//! ```
//!
//! The figures are the medians over the rounds of the time per read, and the median of the
//! pairs' ratios (checked / unchecked). The last line of stdout is one JSON object. The
//! bench's schema is dropped at the end.

use std::time::{Duration, Instant};

use coflux_core::model::{Environment, EnvironmentId, EnvironmentName, EnvironmentState};
use coflux_core::store::postgres::{PgLocation, PgStore};
use coflux_core::store::{Durability, ProjectStore, Write};

/// Reads per round.
const READS: usize = 200;
/// Rounds of each kind.
const PAIRS: usize = 20;

fn database_url() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--database-url")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("COFLUX_TEST_DATABASE_URL").ok())
        .expect("pass --database-url URL (or set COFLUX_TEST_DATABASE_URL)")
}

/// Median time per read of `rounds` (µs).
fn median(mut rounds: Vec<Duration>) -> f64 {
    rounds.sort();
    rounds[rounds.len() / 2].as_secs_f64() * 1e6 / READS as f64
}

fn main() {
    let url = database_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("cx_readbench_{}_{nanos}", std::process::id());
    let location = PgLocation {
        url: url.clone(),
        schema: schema.clone(),
    };
    let mut writer = PgStore::open(&location)
        .unwrap()
        .with_durability(Durability::Normal);
    writer
        .apply(&[Write::CreateEnvironment(Environment {
            id: EnvironmentId(1),
            name: EnvironmentName::new("bench").unwrap(),
            parent: None,
            state: EnvironmentState::Active,
            created_at: 0,
        })])
        .unwrap();
    let reader = PgStore::open_reader(&location).unwrap();
    let (mut unchecked, mut checked) = (Vec::new(), Vec::new());
    for pair in 0..=PAIRS {
        for (store, times) in [(&writer, &mut unchecked), (&reader, &mut checked)] {
            let started = Instant::now();
            for _ in 0..READS {
                store.list_runs(None, 20).unwrap();
            }
            // The first pair warms the connections up.
            if pair > 0 {
                times.push(started.elapsed());
            }
        }
    }
    let mut ratios: Vec<f64> = checked
        .iter()
        .zip(&unchecked)
        .map(|(c, u)| c.as_secs_f64() / u.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let (unchecked, checked) = (median(unchecked), median(checked));
    drop(reader);
    drop(writer);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();

    println!("PostgreSQL read (runs list): unchecked / checked ({PAIRS} pairs of {READS})");
    println!("  {unchecked:8.1} µs  {checked:8.1} µs  ratio {ratio:.3}");
    println!(
        "{}",
        serde_json::json!({
            "read_us": unchecked,
            "checked_read_us": checked,
            "check_ratio": ratio,
        })
    );
}
