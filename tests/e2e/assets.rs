//! Assets end to end with the real `coflux` 0.12.0 package: a task on one agent persists files
//! and a directory as assets, a task on another agent (forced by `requires`/`--provides`)
//! restores them, all or a subset, and the CLI inspects and downloads them.

use std::process::Command;

use coflux_tests::{Server, assert_escape_refused, bin, python_agent_for, write_escaping_asset};
use serde_json::{Value as Json, json};

const P: &str = "acme";

/// Runs the `coflux` CLI against the server; its stdout, or a panic with its stderr.
fn cli(server: &Server, args: &[&str]) -> String {
    let output = Command::new(bin("coflux"))
        .args(["--server", &server.url, "-p", P])
        .args(args)
        .output()
        .expect("run coflux");
    assert!(
        output.status.success(),
        "coflux {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[actix_rt::test]
async fn assets_persisted_on_one_agent_are_restored_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let module = "asset_flows";
    let _a = python_agent_for(
        module,
        &server.url,
        P,
        "production",
        "a",
        &["--provides", "site:a"],
    );
    let _b = python_agent_for(
        module,
        &server.url,
        P,
        "production",
        "b",
        &["--provides", "site:b"],
    );

    let run = server
        .submit(
            P,
            "production",
            module,
            "assets_across_agents",
            json!(["hello asset"]),
        )
        .await;
    let result = server.result(P, &run, 90).await;
    assert_eq!(result["status"], "value", "{result}");
    let made = &result["value"]["made"];
    let used = &result["value"]["used"];
    assert_eq!(
        (&made["agent"], &used["agent"]),
        (&json!("a"), &json!("b")),
        "{result}"
    );

    // A single file, restored into the consumer's own working directory.
    assert_eq!(used["text"], "hello asset");
    assert_eq!(used["restored"], json!({"out.txt": "out.txt"}));
    // A directory: every file, relative to it, with its size and media type.
    assert_eq!(
        used["entries"],
        json!({
            "data/one.csv": [4, {"type": "text/csv"}],
            "data/two.csv": [4, {"type": "text/csv"}],
            "notes.md": [8, {"type": "text/markdown"}],
            "summary.txt": [22, {"type": "text/plain"}],
        }),
        "{result}"
    );
    // A subset restore writes only the matching files.
    assert_eq!(used["subset"], json!(["data/one.csv", "data/two.csv"]));
    assert_eq!(
        used["subset_files"],
        json!(["data/one.csv", "data/two.csv"])
    );
    assert_eq!(used["csvs"], json!(["data/one.csv", "data/two.csv"]));
    assert_eq!(used["head"], "summary");
    assert_eq!(used["composed_entries"], json!(["renamed/one.csv"]));
    assert_eq!(used["missing"], false);
    // A path escaping the asset is refused by the agent, and the task sees why.
    let escape = made["escape"].as_str().unwrap();
    assert!(escape.starts_with("invalid_asset_path"), "{escape}");

    // The CLI: inspect the directory asset, then download part of it.
    let folder = made["ids"][1].as_str().unwrap();
    let inspected: Json =
        serde_json::from_str(&cli(&server, &["-o", "json", "assets", "inspect", folder])).unwrap();
    assert_eq!(
        (&inspected["name"], &inspected["count"], &inspected["size"]),
        (&json!("folder"), &json!(4), &json!(38))
    );
    let text = cli(&server, &["assets", "inspect", folder]);
    assert!(
        text.contains("summary.txt") && text.contains("text/csv"),
        "{text}"
    );
    let to = dir.path().join("download");
    let to_arg = to.display().to_string();
    cli(
        &server,
        &["assets", "download", folder, "--to", &to_arg, "data"],
    );
    assert_eq!(
        std::fs::read_to_string(to.join("data/two.csv")).unwrap(),
        "3,4\n"
    );
    assert!(!to.join("summary.txt").exists());
    // `--match GLOB` narrows both.
    let csvs: Json = serde_json::from_str(&cli(
        &server,
        &[
            "-o", "json", "assets", "inspect", folder, "--match", "**/*.csv",
        ],
    ))
    .unwrap();
    let names: Vec<&String> = csvs["entries"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["data/one.csv", "data/two.csv"]);
    let text = cli(&server, &["assets", "inspect", folder, "--match", "*.md"]);
    assert!(
        text.contains("notes.md") && text.contains("matched 1 of 4 files"),
        "{text}"
    );
    let matched = dir.path().join("matched");
    let matched_arg = matched.display().to_string();
    cli(
        &server,
        &[
            "assets",
            "download",
            folder,
            "--to",
            &matched_arg,
            "--match",
            "*.txt",
        ],
    );
    assert!(matched.join("summary.txt").exists() && !matched.join("notes.md").exists());
    cli(&server, &["assets", "download", folder, "--to", &to_arg]);
    assert_eq!(
        std::fs::read_to_string(to.join("summary.txt")).unwrap(),
        "summary of hello asset"
    );
    // A tampered record with an escaping path (as a compromised server could send) is
    // refused by the agent when restoring and by the CLI when downloading.
    let single = made["ids"][0].as_str().unwrap();
    let single: Json =
        serde_json::from_str(&cli(&server, &["-o", "json", "assets", "inspect", single])).unwrap();
    let key = &single["entries"]["out.txt"]["blob_key"];
    let tampered = write_escaping_asset(dir.path(), P, key);
    let run = server
        .submit(P, "production", module, "restore_asset", json!([tampered]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_escape_refused(&result);
    let inner = dir.path().join("inner");
    let refused = Command::new(bin("coflux"))
        .args([
            "--server",
            &server.url,
            "-p",
            P,
            "assets",
            "download",
            tampered,
        ])
        .arg("--to")
        .arg(&inner)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(!dir.path().join("escaped.txt").exists() && !inner.exists());

    // An id that is not one is refused before anything is asked or written.
    let bad = Command::new(bin("coflux"))
        .args([
            "--server",
            &server.url,
            "-p",
            P,
            "assets",
            "download",
            "../x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
