//! The report on stdout: the table against the targets, ratios to a raw commit, the JSON line.

use coflux_core::store::Durability;

use crate::measure::{Cut, round};
use crate::scenarios::Figures;
use crate::{FANOUT_TASKS, SEQ_CALLS};

fn check(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

/// Prints the report of `f`; its last line is one JSON object with the figures.
pub(crate) fn print(f: &Figures, durability: Durability, fs: Option<&(String, String)>) {
    let raw_commit_us = 1e6 / f.sqlite_commits_per_s;
    let seq_task_us = f.seq_1000_ms * 1e3 / SEQ_CALLS as f64;
    let fanout_task_us = f.fanout_10000_ms * 1e3 / FANOUT_TASKS as f64;
    let latency_us = f.latency_p50_ms * 1e3;

    println!(
        "Coflux embedded benchmark — durability {durability:?}, store on {}",
        fs.map_or_else(|| "?".to_owned(), |(t, m)| format!("{t} ({m})"))
    );
    println!();
    println!("{:<22} {:>12}  {:<14} met", "metric", "value", "target");
    println!("{}", "-".repeat(54));
    let rows: [(&str, String, String, &str); 7] = [
        (
            "seq_1000_ms",
            format!("{:.1}", f.seq_1000_ms),
            "≤ 100".into(),
            check(f.seq_cut != Cut::Timeout && f.seq_1000_ms <= 100.0),
        ),
        (
            "fanout_10000_ms",
            format!("{:.1}", f.fanout_10000_ms),
            "—".into(),
            "",
        ),
        (
            "fanout_tasks_per_s",
            format!("{:.0}", f.fanout_tasks_per_s),
            "≥ 20,000".into(),
            check(f.fanout_cut != Cut::Timeout && f.fanout_tasks_per_s >= 20_000.0),
        ),
        (
            "latency_p50_ms",
            format!("{:.3}", f.latency_p50_ms),
            "≤ 0.5".into(),
            check(f.latency_cut != Cut::Timeout && f.latency_p50_ms <= 0.5),
        ),
        (
            "latency_p99_ms",
            format!("{:.3}", f.latency_p99_ms),
            "—".into(),
            "",
        ),
        (
            "peak_rss_mb",
            format!("{:.1}", f.peak_rss_mb),
            "—".into(),
            "",
        ),
        (
            "sqlite_commits_per_s",
            format!("{:.0}", f.sqlite_commits_per_s),
            "(reference)".into(),
            "",
        ),
    ];
    for (name, value, target, mark) in &rows {
        println!("{name:<22} {value:>12}  {target:<14} {mark}");
    }
    println!();
    println!("Relative to one raw SQLite commit ({raw_commit_us:.1} µs):");
    println!(
        "  seq:     {seq_task_us:.1} µs per sequential task = {:.1} raw commits",
        seq_task_us / raw_commit_us
    );
    println!(
        "  fan-out: {fanout_task_us:.1} µs per task = {:.2} raw commits",
        fanout_task_us / raw_commit_us
    );
    println!(
        "  latency: {latency_us:.1} µs per 1-task run (p50) = {:.1} raw commits",
        latency_us / raw_commit_us
    );
    let notes = [
        f.seq_cut.note("seq_1000"),
        f.fanout_cut.note("fanout_10000"),
        f.latency_cut.note("latency"),
    ];
    for note in notes.iter().flatten() {
        println!("note: {note}");
    }
    println!();

    let json = serde_json::json!({
        "seq_1000_ms": round(f.seq_1000_ms, 1),
        "fanout_10000_ms": round(f.fanout_10000_ms, 1),
        "fanout_tasks_per_s": round(f.fanout_tasks_per_s, 0),
        "latency_p50_ms": round(f.latency_p50_ms, 3),
        "latency_p99_ms": round(f.latency_p99_ms, 3),
        "peak_rss_mb": round(f.peak_rss_mb, 1),
        "sqlite_commits_per_s": round(f.sqlite_commits_per_s, 0),
    });
    println!("{json}");
}
