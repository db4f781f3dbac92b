//! The assets tab: the assets the run's steps received or returned (asset references in their
//! arguments and results), each with its files, sizes and download links through the blob
//! route (`GET /api/projects/{p}/blobs/{key}`); the record itself through the asset route.
//! `file=BLOB_KEY` previews one file below its row: text (its first [`PREVIEW_BYTES`]) or an
//! image.

use std::collections::HashSet;

use coflux_core::model::{ExecutionResult, Reference, StepId, Value};
use maud::{Markup, html};

use super::RunCtx;
use crate::http::assets::read;
use crate::http::existing_project;
use crate::state::AppState;
use crate::ui::{UiError, enc};

/// Assets listed at most.
const MAX_ASSETS: usize = 100;
/// Files listed at most per asset.
const MAX_FILES: usize = 200;
/// Bytes of a text file previewed.
const PREVIEW_BYTES: usize = 64 * 1024;

/// How a file can be previewed, from its type (or else its extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preview {
    Text,
    Image,
}

fn preview_kind(path: &str, mime: Option<&str>) -> Option<Preview> {
    if let Some(m) = mime {
        if m.starts_with("image/") && m != "image/svg+xml" {
            return Some(Preview::Image);
        }
        if m.starts_with("text/") || m == "application/json" {
            return Some(Preview::Text);
        }
    }
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some(
            "txt" | "csv" | "tsv" | "json" | "md" | "log" | "yaml" | "yml" | "toml" | "py" | "rs"
            | "html" | "xml" | "sql",
        ) => Some(Preview::Text),
        Some("png" | "jpg" | "jpeg" | "gif" | "webp") => Some(Preview::Image),
        _ => None,
    }
}

/// The preview of one file (text read here, an image loaded by the browser).
async fn preview(
    state: &AppState,
    ctx: &RunCtx<'_>,
    key: &str,
    path: &str,
    kind: Preview,
) -> Result<Markup, UiError> {
    let url = format!("/api/projects/{}/blobs/{}", enc(ctx.project), enc(key));
    Ok(match kind {
        Preview::Image => html! {
            img.preview data-testid="asset-image" src=(url) alt=(path);
        },
        Preview::Text => {
            match crate::http::blobs::read_prefix(state, ctx.project, key, PREVIEW_BYTES).await? {
                None => html! { p.warning { "The file's content was not found." } },
                Some((data, size)) => html! {
                    pre.preview data-testid="asset-preview" { (String::from_utf8_lossy(&data)) }
                    @if size > data.len() as u64 { p.muted { "First " (bytes(data.len() as u64)) " of " (bytes(size)) "." } }
                },
            }
        }
    })
}

/// One asset reference found in the run.
struct Found<'a> {
    id: &'a str,
    name: Option<&'a str>,
    step: StepId,
    attempt: Option<u32>,
}

fn references(value: &Value) -> &[Reference] {
    match value {
        Value::Raw { references, .. } | Value::Blob { references, .. } => references,
    }
}

/// The run's asset references, first occurrence of each id, in step order.
fn found<'a>(ctx: &'a RunCtx<'_>) -> Vec<Found<'a>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for step in &ctx.view.steps {
        let arguments = step.arguments.iter().map(|v| (None, v));
        let results = step.executions.iter().filter_map(|e| match &e.result {
            Some(ExecutionResult::Value { value }) => Some((Some(e.id.attempt), value)),
            _ => None,
        });
        for (attempt, value) in arguments.chain(results) {
            for reference in references(value) {
                if let Reference::Asset { id, name, .. } = reference
                    && seen.insert(id.as_str())
                {
                    out.push(Found {
                        id,
                        name: name.as_deref(),
                        step: step.id,
                        attempt,
                    });
                }
            }
        }
    }
    out
}

/// A byte count for people (`512 B`, `1.5 KB`, `3.2 MB`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The tab's content.
pub(crate) async fn render(ctx: &RunCtx<'_>, state: &AppState) -> Result<Markup, UiError> {
    let all = found(ctx);
    let project = existing_project(state, ctx.project).await?;
    let p = enc(ctx.project);
    let mut sections = Vec::new();
    for f in all.iter().take(MAX_ASSETS) {
        let record = read(state, &project, f.id).await?;
        // The previewed file, when it is one of this asset's.
        let shown = match (ctx.q.file.as_deref(), &record) {
            (Some(key), Some(r)) => match r.entries.iter().find(|(_, e)| e.blob_key == key) {
                Some((path, e)) => {
                    let mime = e.metadata.get("type").and_then(|t| t.as_str());
                    match preview_kind(path, mime) {
                        Some(kind) => Some((key, preview(state, ctx, key, path, kind).await?)),
                        None => None,
                    }
                }
                None => None,
            },
            _ => None,
        };
        let target = ctx
            .view
            .step(f.step)
            .map(|s| s.target.to_string())
            .unwrap_or_default();
        sections.push(html! {
            section.asset data-testid="asset" data-asset=(f.id) {
                h3 {
                    span.mono { (f.id) }
                    @if let Some(name) = record.as_ref().and_then(|r| r.name.as_deref()).or(f.name) {
                        " " (name)
                    }
                    @if let Some(r) = &record {
                        span.muted {
                            " · " (r.entries.len()) " files, "
                            (bytes(r.entries.values().map(|e| e.size).sum()))
                        }
                    }
                }
                p.muted {
                    @if f.attempt.is_some() { "returned by " } @else { "passed to " }
                    a href=(ctx.step_query(f.step)) { span.mono { (target) } " (" (f.step) ")" }
                    " · "
                    a href={ "/api/projects/" (p) "/assets/" (enc(f.id)) } data-testid="asset-record" { "record (JSON)" }
                }
                @match &record {
                    None => p.warning data-testid="asset-missing" { "The asset's record was not found." },
                    Some(r) => table.steps data-testid="asset-files" {
                        thead { tr { th { "Path" } th { "Size" } th { "Type" } th {} } }
                        tbody {
                            @for (path, entry) in r.entries.iter().take(MAX_FILES) {
                                tr data-testid="asset-file" {
                                    td.mono { (path) }
                                    td { (bytes(entry.size)) }
                                    td.muted { (entry.metadata.get("type").and_then(|t| t.as_str()).unwrap_or("")) }
                                    td {
                                        @if preview_kind(path, entry.metadata.get("type").and_then(|t| t.as_str())).is_some() {
                                            a data-testid="asset-preview-link" href=(ctx.href(&[("file", Some(&entry.blob_key))])) { "preview" } " "
                                        }
                                        a data-testid="asset-download"
                                            href={ "/api/projects/" (p) "/blobs/" (enc(&entry.blob_key)) }
                                            download=(path.rsplit('/').next().unwrap_or(path)) { "download" }
                                    }
                                }
                                @if let Some((_, markup)) = shown.as_ref().filter(|(k, _)| *k == entry.blob_key) {
                                    tr { td colspan="4" { (markup) } }
                                }
                            }
                        }
                    }
                }
                @if let Some(more) = record.as_ref().map(|r| r.entries.len()).filter(|n| *n > MAX_FILES) {
                    p.muted { "… and " (more - MAX_FILES) " more files" }
                }
            }
        });
    }
    Ok(html! {
        @if all.is_empty() {
            p.empty data-testid="assets-empty" { "No assets in this run's arguments or results." }
        }
        @for section in &sections { (section) }
        @if all.len() > MAX_ASSETS {
            p.muted { "… and " (all.len() - MAX_ASSETS) " more assets" }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn ui_asset_sizes_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KB");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MB");
    }
}
