//! Registering manifests (and making sure the project and environment exist) over HTTP.

use std::time::Duration;

use coflux_core::model::TargetDefinition;
use serde_json::json;

/// Creates the project and environment if they are missing, then registers `definitions` as
/// the environment's manifest.
pub async fn register_manifests(
    server: &str,
    project: &str,
    environment: &str,
    definitions: &[TargetDefinition],
) -> anyhow::Result<()> {
    let base = format!("{}/api/projects", server.trim_end_matches('/'));
    let client = crate::net::client(Duration::from_secs(30));
    let response = client
        .post(&base)
        .send_json(&json!({ "name": project }))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {server}: {e}"))?;
    // An agent token may not create projects or environments (401/403): they must exist.
    check(
        response.status(),
        &[200, 201, 401, 403],
        "create the project",
    )?;
    let response = client
        .post(format!("{base}/{project}/environments"))
        .send_json(&json!({ "name": environment }))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {server}: {e}"))?;
    check(
        response.status(),
        &[200, 201, 401, 403, 409],
        "create the environment",
    )?;
    let mut response = client
        .put(format!(
            "{base}/{project}/environments/{environment}/manifests"
        ))
        .send_json(&json!({ "targets": definitions }))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {server}: {e}"))?;
    if !response.status().is_success() {
        let body = response.body().await.unwrap_or_default();
        anyhow::bail!(
            "registering the manifest failed ({}): {}",
            response.status(),
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

fn check(status: awc::http::StatusCode, ok: &[u16], what: &str) -> anyhow::Result<()> {
    if ok.contains(&status.as_u16()) {
        Ok(())
    } else {
        anyhow::bail!("could not {what}: the server answered {status}")
    }
}
