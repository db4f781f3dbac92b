//! Targets persisting and restoring assets through the Rust SDK (module `examples.assets`),
//! for the end-to-end tests: `produce` runs where `site:a` is provided and `consume` where
//! `site:b` is, so the files travel through the server's blob store; `summarise` and
//! `persist_text` are called from Python (`tests/python/rust_asset_flows.py`). Hosted by the
//! example repository when `COFLUX_EXAMPLE_ASSETS` is set.

use std::collections::BTreeMap;
use std::path::Path;

use coflux_core::sdk::{Asset, Failure, Repository, task, workflow, working_dir};
use serde::{Deserialize, Serialize};

/// What `produce` made.
#[derive(Debug, Serialize, Deserialize)]
pub struct Made {
    /// The agent that ran it (`AGENT_NAME`).
    pub agent: String,
    /// `out.txt`, named `single`.
    pub single: Asset,
    /// The whole `report` directory, named `folder`.
    pub folder: Asset,
    /// `report/data/*.csv`.
    pub csvs: Asset,
    /// The error code of an attempt to persist a file as `../escape.txt`.
    pub escape: String,
}

fn agent() -> String {
    std::env::var("AGENT_NAME").unwrap_or_else(|_| "?".into())
}

fn write(path: &str, text: &str) -> Result<(), Failure> {
    let path = working_dir().join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(std::fs::write(path, text)?)
}

/// The files under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// Writes a file and a directory in its working directory and persists them as assets.
#[task(module = "examples.assets", requires(site = "a"))]
async fn produce(text: String) -> Result<Made, Failure> {
    write("out.txt", &text)?;
    write("report/summary.txt", &format!("summary of {text}"))?;
    write("report/data/one.csv", "1,2\n")?;
    write("report/data/two.csv", "3,4\n")?;
    write("report/notes.md", "# notes\n")?;
    let single = Asset::file("out.txt").name("single").persist().await?;
    let folder = Asset::dir("report")
        .name("folder")
        .metadata("origin", "rust")
        .persist()
        .await?;
    let csvs = Asset::dir("report")
        .matching("data/*.csv")
        .persist()
        .await?;
    let escape = match Asset::builder()
        .file_as("../escape.txt", "out.txt")
        .persist()
        .await
    {
        Ok(_) => "accepted".to_owned(),
        Err(e) => e.code().to_owned(),
    };
    Ok(Made {
        agent: agent(),
        single,
        folder,
        csvs,
        escape,
    })
}

/// Restores what `produce` made, all or in part, on another agent.
#[task(module = "examples.assets", requires(site = "b"))]
async fn consume(made: Made) -> Result<serde_json::Value, Failure> {
    let restored = made.single.restore().await?;
    let subset = made
        .folder
        .restore()
        .matching("data/*.csv")
        .to("subset")
        .await?;
    let summary = made
        .folder
        .restore()
        .paths(["summary.txt"])
        .to("one")
        .await?;
    let entries: BTreeMap<String, _> = made
        .folder
        .entries()
        .await?
        .into_iter()
        .map(|e| (e.path, (e.size, e.metadata)))
        .collect();
    let first = made
        .csvs
        .entry("data/one.csv")
        .await?
        .ok_or_else(|| Failure::msg("no data/one.csv"))?;
    let composed = Asset::builder()
        .entry_as("renamed/one.csv", &first)
        .name("composed")
        .persist()
        .await?;
    let composed_entries: Vec<String> = composed
        .entries()
        .await?
        .into_iter()
        .map(|e| e.path)
        .collect();
    Ok(serde_json::json!({
        "agent": agent(),
        "text": std::fs::read_to_string(working_dir().join("out.txt"))?,
        "restored": restored.keys().collect::<Vec<_>>(),
        "subset": subset.keys().collect::<Vec<_>>(),
        "subset_files": files_under(&working_dir().join("subset")),
        "summary": std::fs::read_to_string(&summary["summary.txt"])?,
        "one_files": files_under(&working_dir().join("one")),
        "entries": entries,
        "folder": [made.folder.name(), made.folder.count(), made.folder.size()],
        "composed_entries": composed_entries,
    }))
}

/// `produce` on one agent, `consume` on another.
#[workflow(module = "examples.assets")]
async fn assets_across_agents(text: String) -> Result<serde_json::Value, Failure> {
    let made = produce.call(text).await?;
    let ids = [made.single.id(), made.folder.id(), made.csvs.id()].map(str::to_owned);
    let summary = serde_json::json!({ "agent": made.agent, "escape": made.escape, "ids": ids });
    let used = consume.call(made).await?;
    Ok(serde_json::json!({ "made": summary, "used": used }))
}

/// Restores an asset by id into the working directory: `restored`, or the error's code; and
/// whether a file appeared next to the working directory.
#[task(module = "examples.assets", requires(site = "b"))]
async fn restore_by_id(asset_id: String) -> Result<serde_json::Value, Failure> {
    let outcome = match Asset::from_id(asset_id)?.restore().await {
        Ok(_) => "restored".to_owned(),
        Err(e) => e.to_string(),
    };
    let escaped = working_dir().join("../escaped.txt").exists();
    Ok(serde_json::json!({ "outcome": outcome, "escaped": escaped }))
}

/// Calls `restore_by_id`.
#[workflow(module = "examples.assets")]
async fn restore_asset(asset_id: String) -> Result<serde_json::Value, Failure> {
    Ok(restore_by_id.call(asset_id).await?)
}

/// Restores an asset (e.g. one a Python task made) into `in/` and gives its files' contents,
/// with what its reference says (name, count, size).
#[task(module = "examples.assets")]
async fn summarise(asset: Asset) -> Result<serde_json::Value, Failure> {
    let restored = asset.restore().to("in").await?;
    let mut contents = BTreeMap::new();
    for (path, local) in restored {
        contents.insert(path, std::fs::read_to_string(local)?);
    }
    Ok(serde_json::json!({
        "contents": contents,
        "reference": [asset.name(), asset.count(), asset.size()],
    }))
}

/// Writes `a.txt`, `b.txt` and `c.log` and persists the text files as an asset named `rust`.
#[task(module = "examples.assets")]
async fn persist_text(text: String) -> Result<Asset, Failure> {
    write("made/a.txt", &text)?;
    write("made/b.txt", &text.to_uppercase())?;
    write("made/c.log", "not a text file")?;
    Ok(Asset::dir("made")
        .matching("*.txt")
        .name("rust")
        .persist()
        .await?)
}

/// The targets of this module.
pub fn repository() -> Repository {
    Repository::new()
        .with(produce)
        .with(consume)
        .with(assets_across_agents)
        .with(restore_by_id)
        .with(restore_asset)
        .with(summarise)
        .with(persist_text)
}
