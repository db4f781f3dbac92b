//! Assets through the Rust SDK under a real `coflux-server` and `coflux-agent`s (the example
//! repository's `examples.assets` targets): a task on one agent persists files, a directory and
//! a glob selection; a task on another agent restores them, all or in part; traversal attempts
//! are refused; and assets pass between Python and Rust in both directions.

use coflux_tests::{
    Proc, Server, assert_escape_refused, example_module_agent, get, python_agent_for,
    write_escaping_asset,
};
use serde_json::json;

const P: &str = "acme";
const M: &str = "examples.assets";

/// An agent serving the example repository with its asset targets; `extra` are more flags.
fn rust_agent(server: &Server, name: &str, extra: &[&str]) -> Proc {
    let name = format!("AGENT_NAME={name}");
    let flags: Vec<&str> = std::iter::once("--register")
        .chain(extra.iter().copied())
        .collect();
    example_module_agent(server, P, M, &["COFLUX_EXAMPLE_ASSETS=1", &name], &flags)
}

#[actix_rt::test]
async fn rust_assets_persisted_on_one_agent_are_restored_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _a = rust_agent(&server, "a", &["--provides", "site:a"]);
    let _b = rust_agent(&server, "b", &["--provides", "site:b"]);
    server.wait_registered(P, "production", "consume").await;

    let run = server
        .submit(
            P,
            "production",
            M,
            "assets_across_agents",
            json!(["hello asset"]),
        )
        .await;
    let result = server.result(P, &run, 90).await;
    assert_eq!(result["status"], "value", "{result}");
    let (made, used) = (&result["value"]["made"], &result["value"]["used"]);
    assert_eq!((&made["agent"], &used["agent"]), (&json!("a"), &json!("b")));

    // A single file, restored into the consumer's own working directory.
    assert_eq!(used["text"], "hello asset");
    assert_eq!(used["restored"], json!(["out.txt"]));
    // A directory: every file, with its size, media type and the metadata given.
    let meta = |t: &str| json!({"type": t, "origin": "rust"});
    assert_eq!(
        used["entries"],
        json!({
            "data/one.csv": [4, meta("text/csv")],
            "data/two.csv": [4, meta("text/csv")],
            "notes.md": [8, meta("text/markdown")],
            "summary.txt": [22, meta("text/plain")],
        }),
        "{result}"
    );
    assert_eq!(used["folder"], json!(["folder", 4, 38]));
    // Subsets: by glob into a directory of its own, and by path.
    assert_eq!(used["subset"], json!(["data/one.csv", "data/two.csv"]));
    assert_eq!(used["subset_files"], used["subset"]);
    assert_eq!(used["summary"], "summary of hello asset");
    assert_eq!(used["one_files"], json!(["summary.txt"]));
    // A new asset made of another asset's entry.
    assert_eq!(used["composed_entries"], json!(["renamed/one.csv"]));
    // A path escaping the asset is refused before anything is sent.
    assert_eq!(made["escape"], "invalid_asset_path");

    // The server recorded the assets (the glob selection holds only the CSV files).
    let csvs = made["ids"][2].as_str().unwrap();
    let record = get(&server.url, &format!("/api/projects/{P}/assets/{csvs}")).await;
    assert_eq!((&record["count"], &record["size"]), (&json!(2), &json!(8)));
    let folder = made["ids"][1].as_str().unwrap();
    let record = get(&server.url, &format!("/api/projects/{P}/assets/{folder}")).await;
    assert_eq!(record["name"], "folder", "{record}");

    // A tampered record with an escaping path (as a compromised server could send) is refused
    // by the agent, and the task sees why; nothing is written outside its directory.
    let single = made["ids"][0].as_str().unwrap();
    let single = get(&server.url, &format!("/api/projects/{P}/assets/{single}")).await;
    let key = &single["entries"]["out.txt"]["blob_key"];
    let tampered = write_escaping_asset(dir.path(), P, key);
    let run = server
        .submit(P, "production", M, "restore_asset", json!([tampered]))
        .await;
    let result = server.result(P, &run, 60).await;
    assert_escape_refused(&result);
}

#[actix_rt::test]
async fn assets_pass_between_python_and_rust() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.setup(P, "production", None).await;
    let _rust = rust_agent(&server, "rust", &[]);
    let module = "rust_asset_flows";
    let _python = python_agent_for(module, &server.url, P, "production", "python", &[]);
    server.wait_registered(P, "production", "summarise").await;
    server
        .wait_registered(P, "production", "cross_language")
        .await;

    let run = server
        .submit(P, "production", module, "cross_language", json!(["hi"]))
        .await;
    let result = server.result(P, &run, 120).await;
    assert_eq!(result["status"], "value", "{result}");
    let value = &result["value"];
    // Python persisted a directory; Rust received its reference and restored it.
    assert_eq!(
        value["rust_read"],
        json!({
            "contents": {"hello.txt": "hi", "sub/data.csv": "1,2\n"},
            "reference": ["python", 2, 6],
        })
    );
    // Rust persisted the text files of a directory; Python restored them.
    assert_eq!(
        value["python_read"],
        json!({
            "contents": {"a.txt": "hi", "b.txt": "HI"},
            "entries": {
                "a.txt": [2, {"type": "text/plain"}],
                "b.txt": [2, {"type": "text/plain"}],
            },
            "metadata": ["rust", 2, 4],
        })
    );
}
