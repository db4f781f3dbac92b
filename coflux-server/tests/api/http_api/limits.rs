//! Bad input stays harmless: bodies over the limit, deeply nested arguments, bad names and
//! blob keys get a clear error in the API's shape, and the server goes on serving.

use super::*;

#[actix_rt::test]
async fn oversized_deep_and_badly_named_input_is_refused_cleanly() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    create_environment!(&app, "acme", "production");
    let runs = "/api/projects/acme/environments/production/runs";

    // A submission body over 4 MiB.
    let big = json!({"module": "m", "target": "t", "arguments": ["x".repeat(5 << 20)]});
    let answer = call!(&app, post(runs, big));
    assert_error(
        &h,
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    // Arguments nested 10,000 deep (the body is small): refused, not a stack overflow.
    let deep = format!(
        r#"{{"module":"m","target":"t","arguments":[{}1{}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let request = TestRequest::post()
        .uri(runs)
        .insert_header(("content-type", "application/json"))
        .set_payload(deep);
    assert_error(
        &h,
        &call!(&app, request),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );

    // Names: too long, a path, control characters.
    for name in [
        "a".repeat(300),
        "../etc".into(),
        "a\u{7}b".into(),
        "".into(),
    ] {
        let answer = call!(&app, post("/api/projects", json!({ "name": name })));
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{name:?}: {}", answer.1);
        assert_error(&h, &answer, StatusCode::BAD_REQUEST, &code_of(&answer.1));
        let answer = call!(
            &app,
            post("/api/projects/acme/environments", json!({ "name": name }))
        );
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{name:?}: {}", answer.1);
    }

    // Blob keys that are not a SHA-256, including a path.
    for key in ["abc", "..%2F..%2Fetc%2Fpasswd", &"G".repeat(64)] {
        let answer = call!(&app, get(&format!("/api/projects/acme/blobs/{key}")));
        assert_error(&h, &answer, StatusCode::BAD_REQUEST, "invalid_blob_key");
    }

    // The server still serves.
    let (status, _) = call!(&app, get("/api/projects/acme/environments"));
    assert_eq!(status, StatusCode::OK);
}

/// The error code of an answer (whatever it is: only its shape is checked).
fn code_of(body: &Json) -> String {
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
