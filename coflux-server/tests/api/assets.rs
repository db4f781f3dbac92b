//! The asset API (`POST /api/projects/{p}/assets`, `GET …/assets/{id}`), driven through
//! `create_app`: records, content-derived ids, and every way a path or id could escape.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// Sends a request to the app; answers its status and JSON body.
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {
        answer(test::call_service($app, ($req).to_request()).await).await
    };
}

async fn answer<B: MessageBody>(resp: ServiceResponse<B>) -> (StatusCode, Json) {
    let status = resp.status();
    let body = test::read_body(resp).await;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into_owned()));
    (status, json)
}

async fn state(dir: &tempfile::TempDir) -> web::Data<AppState> {
    web::Data::new(
        AppState::open(&ServerConfig::new(dir.path()))
            .await
            .unwrap(),
    )
}

/// Asserts an error answer: status, code, a message, and nothing of the data directory.
fn assert_error(dir: &tempfile::TempDir, got: &(StatusCode, Json), want: StatusCode, code: &str) {
    let (status, body) = got;
    assert_eq!(*status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    let text = body.to_string();
    assert!(!text.contains(&dir.path().display().to_string()), "{text}");
    assert!(!text.contains(".json\""), "{text}");
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn post(uri: &str, body: Json) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

/// Stores `content` as a blob of `project`; gives its key.
macro_rules! put_blob {
    ($app:expr, $project:expr, $content:expr) => {{
        let content: &[u8] = $content;
        let key = sha256(content);
        let uri = format!("/api/projects/{}/blobs/{key}", $project);
        let (status, body) = call!(
            $app,
            TestRequest::put().uri(&uri).set_payload(content.to_vec())
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        key
    }};
}

/// How many asset records a project has on disk.
fn stored(dir: &tempfile::TempDir, project: &str) -> usize {
    std::fs::read_dir(dir.path().join("assets").join(project))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[actix_rt::test]
async fn assets_are_recorded_with_content_derived_ids_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let app = test::init_service(create_app(state(&dir).await)).await;
    call!(&app, post("/api/projects", json!({"name": "alpha"})));
    let hello = put_blob!(&app, "alpha", b"hello asset");
    let data = put_blob!(&app, "alpha", b"1,2,3\n");
    let body = json!({
        "name": "report",
        "entries": {
            "out.txt": {"blob_key": hello, "size": 11, "metadata": {"type": "text/plain"}},
            "data/nums.csv": {"blob_key": data, "size": 6},
        }
    });
    let (status, created) = call!(&app, post("/api/projects/alpha/assets", body.clone()));
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 17 && id.starts_with('A') && id[1..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        created,
        json!({"id": id, "name": "report", "count": 2, "size": 17})
    );

    let (status, fetched) = call!(&app, get(&format!("/api/projects/alpha/assets/{id}")));
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(
        fetched,
        json!({
            "id": id, "name": "report", "count": 2, "size": 17,
            "entries": {
                "data/nums.csv": {"blob_key": data, "size": 6, "metadata": {}},
                "out.txt": {"blob_key": hello, "size": 11, "metadata": {"type": "text/plain"}},
            }
        })
    );

    // The same content gives the same id (one record); another name, another asset.
    let (status, again) = call!(&app, post("/api/projects/alpha/assets", body.clone()));
    assert_eq!((status, &again["id"]), (StatusCode::CREATED, &json!(id)));
    assert_eq!(stored(&dir, "alpha"), 1);
    let mut renamed = body.clone();
    renamed["name"] = json!("other");
    let (_, other) = call!(&app, post("/api/projects/alpha/assets", renamed));
    assert_ne!(other["id"], json!(id));
    let mut unnamed = body;
    unnamed.as_object_mut().unwrap().remove("name");
    let (status, unnamed) = call!(&app, post("/api/projects/alpha/assets", unnamed));
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(unnamed["name"], Json::Null);
    assert_eq!(stored(&dir, "alpha"), 3);
}

#[actix_rt::test]
async fn entry_paths_that_could_escape_are_rejected_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let app = test::init_service(create_app(state(&dir).await)).await;
    call!(&app, post("/api/projects", json!({"name": "alpha"})));
    call!(&app, post("/api/projects", json!({"name": "beta"})));
    let key = put_blob!(&app, "alpha", b"data");
    let entry = json!({"blob_key": key, "size": 4});
    let uri = "/api/projects/alpha/assets";

    for bad in [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "..",
        ".",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "",
        "a\u{0}b",
        "a\nb",
        "..\\..\\windows",
        &format!("{}y", "x/".repeat(600)),
    ] {
        let got = call!(&app, post(uri, json!({"entries": {bad: entry}})));
        assert_error(&dir, &got, StatusCode::BAD_REQUEST, "invalid_asset_path");
    }
    // A file that is also another entry's directory could not be restored.
    let got = call!(
        &app,
        post(uri, json!({"entries": {"a": entry, "a/b": entry}}))
    );
    assert_error(&dir, &got, StatusCode::BAD_REQUEST, "invalid_asset_path");

    let cases = [
        (json!({"entries": {}}), "empty_asset"),
        (json!({"name": "x"}), "invalid_json"),
        (json!({"entries": {"a": entry}, "extra": 1}), "invalid_json"),
        (
            json!({"entries": {"a": {"blob_key": "../../etc/passwd", "size": 1}}}),
            "invalid_blob_key",
        ),
        (
            json!({"entries": {"a": {"blob_key": sha256(b"missing"), "size": 7}}}),
            "asset_blob_missing",
        ),
        (
            json!({"entries": {"a": {"blob_key": key, "size": 5}}}),
            "asset_size_mismatch",
        ),
        (
            json!({"name": "a\u{0}b", "entries": {"a": entry}}),
            "invalid_asset_name",
        ),
        (
            json!({"name": "n".repeat(300), "entries": {"a": entry}}),
            "invalid_asset_name",
        ),
        (
            json!({"entries": {"a": {"blob_key": key, "size": 4, "metadata": "x"}}}),
            "invalid_json",
        ),
    ];
    for (body, code) in cases {
        let got = call!(&app, post(uri, body.clone()));
        assert_error(&dir, &got, StatusCode::BAD_REQUEST, code);
    }
    // Blobs are per project: alpha's blob cannot be put in a beta asset.
    let got = call!(
        &app,
        post(
            "/api/projects/beta/assets",
            json!({"entries": {"a": entry}})
        )
    );
    assert_error(&dir, &got, StatusCode::BAD_REQUEST, "asset_blob_missing");
    let got = call!(
        &app,
        post(
            "/api/projects/ghost/assets",
            json!({"entries": {"a": entry}})
        )
    );
    assert_error(&dir, &got, StatusCode::NOT_FOUND, "project_not_found");
    assert_eq!(stored(&dir, "alpha") + stored(&dir, "beta"), 0);
    assert!(!dir.path().join("assets/ghost").exists());
}

#[actix_rt::test]
async fn asset_ids_are_validated_and_confined_to_their_project() {
    let dir = tempfile::tempdir().unwrap();
    let app = test::init_service(create_app(state(&dir).await)).await;
    call!(&app, post("/api/projects", json!({"name": "alpha"})));
    call!(&app, post("/api/projects", json!({"name": "beta"})));
    let key = put_blob!(&app, "alpha", b"data");
    let (_, created) = call!(
        &app,
        post(
            "/api/projects/alpha/assets",
            json!({"entries": {"a": {"blob_key": key, "size": 4}}})
        )
    );
    let id = created["id"].as_str().unwrap().to_owned();
    // A file planted next to the records is not reachable through any id.
    std::fs::write(dir.path().join("assets/alpha/evil.json"), "{}").unwrap();

    for bad in [
        "..",
        "%2e%2e",
        "%2E%2E",
        "..%2f..%2fetc%2fpasswd",
        "evil",
        "A0123",
        &id.to_uppercase(),
        &format!("{id}0"),
        &format!("{}%00", &id[..16]),
        &format!("{id}.json"),
    ] {
        let got = call!(&app, get(&format!("/api/projects/alpha/assets/{bad}")));
        assert_error(&dir, &got, StatusCode::BAD_REQUEST, "invalid_asset_id");
    }
    let unknown = call!(&app, get("/api/projects/alpha/assets/A0123456789abcdef"));
    assert_error(&dir, &unknown, StatusCode::NOT_FOUND, "asset_not_found");
    let elsewhere = call!(&app, get(&format!("/api/projects/beta/assets/{id}")));
    assert_error(&dir, &elsewhere, StatusCode::NOT_FOUND, "asset_not_found");
    let ghost = call!(&app, get(&format!("/api/projects/ghost/assets/{id}")));
    assert_error(&dir, &ghost, StatusCode::NOT_FOUND, "project_not_found");
    let delete = call!(
        &app,
        TestRequest::delete().uri(&format!("/api/projects/alpha/assets/{id}"))
    );
    assert_error(
        &dir,
        &delete,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let (status, _) = call!(&app, get(&format!("/api/projects/alpha/assets/{id}")));
    assert_eq!(status, StatusCode::OK);
}
