//! HTTP helpers: a client, and JSON `GET`/`POST` against a server's API.

use std::time::Duration;

use serde_json::Value as Json;

/// An HTTP client with a long timeout.
pub fn http() -> awc::Client {
    coflux_agent::net::client(Duration::from_secs(120))
}

/// POSTs JSON and returns the JSON answer (any status).
pub async fn post(base: &str, path: &str, body: Json) -> Json {
    let mut response = http()
        .post(format!("{base}{path}"))
        .send_json(&body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    response.json().limit(64 << 20).await.unwrap_or(Json::Null)
}

/// GETs JSON.
pub async fn get(base: &str, path: &str) -> Json {
    let mut response = http()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    response.json().limit(64 << 20).await.unwrap_or(Json::Null)
}
