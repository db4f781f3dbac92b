//! The offline checker, shared by every scenario.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;

/// The offline checker: reads the project database, the side-effect log and the process logs;
/// returns what is wrong.
pub fn check(
    project: &str,
    data: &Path,
    effects: &Path,
    values: &HashMap<String, (String, serde_json::Value)>,
    server_log: &Path,
) -> Vec<String> {
    let mut violations = Vec::new();
    let db: PathBuf = data.join("projects").join(project).join("project.sqlite");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    if integrity != "ok" {
        violations.push(format!("integrity_check: {integrity}"));
    }
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let unfinished = count(
        "SELECT count(*) FROM executions e WHERE NOT EXISTS (SELECT 1 FROM results r \
         WHERE r.run_id = e.run_id AND r.step_number = e.step_number AND r.attempt = e.attempt)",
    );
    if unfinished > 0 {
        violations.push(format!("{unfinished} executions without a result"));
    }
    let gaps = count(
        "SELECT count(*) FROM (SELECT run_id, step_number FROM executions \
         GROUP BY run_id, step_number HAVING count(*) != max(attempt))",
    );
    if gaps > 0 {
        violations.push(format!("{gaps} steps whose attempts are not 1..n"));
    }
    for (run, (name, result)) in values {
        let number: u64 = run
            .parse::<coflux_core::model::RunId>()
            .map(|r| r.0)
            .unwrap_or(0);
        let exists = count(&format!("SELECT count(*) FROM runs WHERE id = {number}"));
        if exists != 1 {
            violations.push(format!("acknowledged run {run} is missing"));
        }
        let expected: Vec<String> = (0..4).map(|j| format!("{name}:{j}")).collect();
        if result["value"] != json!(expected) {
            violations.push(format!("run {run} ended with {result}"));
        }
    }
    // Side effects: each at least once, more only for abandoned attempts (of the step, or of
    // the workflow whose retry called it again as a new step), never more than the attempts of
    // the steps with that tag.
    let text = std::fs::read_to_string(effects).unwrap_or_default();
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for line in text.lines() {
        *seen.entry(line).or_default() += 1;
    }
    let mut stmt = conn
        .prepare(
            "SELECT s.arguments, \
             (SELECT count(*) FROM executions e WHERE e.run_id = s.run_id AND e.step_number = s.number), \
             (SELECT count(*) FROM results r WHERE r.run_id = s.run_id AND r.step_number = s.number \
              AND r.kind = 'abandoned'), \
             (SELECT count(*) FROM results r WHERE r.run_id = s.run_id AND r.kind = 'abandoned') \
             FROM steps s WHERE s.target IN ('effect', 'retried_effect')",
        )
        .unwrap();
    let steps: Vec<(String, i64, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, _) in values.values() {
        for j in 0..4 {
            let tag = format!("{name}:{j}");
            let times = seen.get(tag.as_str()).copied().unwrap_or(0);
            let quoted = format!("\"{tag}\"");
            let mine: Vec<_> = steps.iter().filter(|s| s.0.contains(&quoted)).collect();
            if mine.is_empty() {
                violations.push(format!("no step for {tag}"));
                continue;
            }
            let attempts: i64 = mine.iter().map(|s| s.1).sum();
            let abandoned = if mine.len() == 1 {
                mine[0].2
            } else {
                mine[0].3
            };
            if times == 0 {
                violations.push(format!("{tag}: side effect missing"));
            }
            if times as i64 > attempts {
                violations.push(format!("{tag}: {times} side effects, {attempts} attempts"));
            }
            if times > 1 && abandoned == 0 {
                violations.push(format!("{tag}: repeated without an abandoned attempt"));
            }
        }
    }
    // The server's log (the agents' go to the test's output).
    let text = std::fs::read_to_string(server_log).unwrap_or_default();
    if text.contains("panicked") {
        violations.push("a panic in the server's log".into());
    }
    violations
}

/// Steps with more than one execution, and abandoned results, in `project`'s database (for
/// scenarios where nothing may be abandoned).
pub fn repeats(project: &str, data: &Path) -> (i64, i64) {
    let db = data.join("projects").join(project).join("project.sqlite");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    (
        count(
            "SELECT count(*) FROM (SELECT 1 FROM executions GROUP BY run_id, step_number \
             HAVING count(*) > 1)",
        ),
        count("SELECT count(*) FROM results WHERE kind = 'abandoned'"),
    )
}

/// A violation when any step has more than one execution or any result is an abandonment
/// (for scenarios where no attempt should be lost).
pub(crate) fn nothing_repeated(project: &str, data_dir: &Path) -> Option<String> {
    let (repeated, abandoned) = repeats(project, data_dir);
    (repeated > 0 || abandoned > 0).then(|| {
        format!("{repeated} steps with more than one execution, {abandoned} abandoned results")
    })
}
