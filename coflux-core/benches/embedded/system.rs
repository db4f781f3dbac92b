//! What the process itself reports (from `/proc`): memory, CPU time per thread, the data's filesystem.

use std::collections::BTreeMap;
use std::path::Path;

/// A memory figure of this process from `/proc/self/status` (`VmHWM`, `VmRSS`…), in MiB.
pub(crate) fn memory_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Logs the current and peak resident set sizes to stderr.
pub(crate) fn log_memory(after: &str) {
    eprintln!(
        "  memory after {after}: rss {:.1} MiB, peak {:.1} MiB",
        memory_mb("VmRSS"),
        memory_mb("VmHWM")
    );
}

/// CPU time (user + system, in ms) and name of each live thread of this process, by thread id.
pub(crate) fn thread_cpu() -> BTreeMap<u32, (String, f64)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid …": utime and stime are fields 14 and 15, in clock ticks
        // (100 per second on Linux).
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            threads.insert(tid, (name, (user + system) * 10.0));
        }
    }
    threads
}

/// Logs, to stderr, the CPU time each thread spent since `before`, per unit of work. Arbiter
/// threads started since `before` are labelled by creation order (project, then worker).
pub(crate) fn log_thread_cpu(
    label: &str,
    before: &BTreeMap<u32, (String, f64)>,
    units: f64,
    unit: &str,
) {
    let main = std::process::id();
    let mut new_arbiters = 0;
    let mut total = 0.0;
    let mut lines = Vec::new();
    for (tid, (name, cpu)) in thread_cpu() {
        let spent = cpu - before.get(&tid).map_or(0.0, |(_, c)| *c);
        let role = if tid == main {
            "main thread (submits, awaits)".to_owned()
        } else if name.starts_with("actix-rt") && !before.contains_key(&tid) {
            new_arbiters += 1;
            match new_arbiters {
                1 => "project arbiter (actors)".to_owned(),
                2 => "worker arbiter (task bodies)".to_owned(),
                _ => format!("arbiter {name}"),
            }
        } else {
            name
        };
        total += spent;
        if spent > 0.0 {
            lines.push(format!(
                "    {role:<32} {spent:>7.0} ms  {:>7.1} µs/{unit}",
                spent * 1e3 / units
            ));
        }
    }
    eprintln!(
        "  {label} CPU by thread (10 ms resolution): {total:.0} ms, {:.1} µs/{unit}",
        total * 1e3 / units
    );
    for line in lines {
        eprintln!("{line}");
    }
}

/// The filesystem type and mount point holding `path` (from `/proc/self/mountinfo`).
pub(crate) fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let path = path.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            let fs_type = right.split_whitespace().next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.to_owned(), fs_type.to_owned()))
        })
        .max_by_key(|(mount_point, _)| mount_point.len())
        .map(|(m, t)| (t, m))
}
