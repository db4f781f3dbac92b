//! Blobs through the API: verified against their key and confined to their project.

use sha2::{Digest, Sha256};

use super::*;

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[actix_rt::test]
async fn blobs_are_verified_and_confined_to_their_project() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    call!(&app, post("/api/projects", json!({"name": "alpha"})));
    call!(&app, post("/api/projects", json!({"name": "beta"})));

    let content = b"some bytes of a value".repeat(10_000);
    let key = sha256(&content);
    let uri = format!("/api/projects/alpha/blobs/{key}");
    let put = call!(
        &app,
        TestRequest::put().uri(&uri).set_payload(content.clone())
    );
    assert_eq!(
        put,
        (
            StatusCode::CREATED,
            json!({"key": key, "size": content.len()})
        )
    );
    let stored = h
        .dir
        .path()
        .join("blobs")
        .join("alpha")
        .join(&key[..2])
        .join(&key);
    assert_eq!(std::fs::read(&stored).unwrap(), content);

    let resp = test::call_service(&app, get(&uri).to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-length").unwrap(),
        &content.len().to_string()
    );
    assert_eq!(test::read_body(resp).await, content);
    let head = test::call_service(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(&uri)
            .to_request(),
    )
    .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers().get("content-length").unwrap(),
        &content.len().to_string()
    );

    let other_key = sha256(b"other");
    let other_uri = format!("/api/projects/alpha/blobs/{other_key}");
    let mismatch = call!(
        &app,
        TestRequest::put().uri(&other_uri).set_payload("not other")
    );
    assert_error(&h, &mismatch, StatusCode::BAD_REQUEST, "blob_mismatch");
    assert_error(
        &h,
        &call!(&app, get(&other_uri)),
        StatusCode::NOT_FOUND,
        "blob_not_found",
    );
    let head = test::call_service(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(&other_uri)
            .to_request(),
    )
    .await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let leftovers = std::fs::read_dir(h.dir.path().join("blobs/alpha").join(&other_key[..2]))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "a rejected upload leaves nothing behind");

    let beta = call!(&app, get(&format!("/api/projects/beta/blobs/{key}")));
    assert_error(&h, &beta, StatusCode::NOT_FOUND, "blob_not_found");
    let ghost = call!(&app, get(&format!("/api/projects/ghost/blobs/{key}")));
    assert_error(&h, &ghost, StatusCode::NOT_FOUND, "project_not_found");
    let ghost_put = call!(
        &app,
        TestRequest::put()
            .uri(&format!("/api/projects/ghost/blobs/{key}"))
            .set_payload(content.clone())
    );
    assert_error(&h, &ghost_put, StatusCode::NOT_FOUND, "project_not_found");
    assert!(!h.dir.path().join("blobs/ghost").exists());

    for bad in [
        "..",
        "%2e%2e",
        "%2E%2E",
        &key.to_uppercase(),
        &key[..63],
        &format!("{key}0"),
        &format!("{}%00", &key[..63]),
        "..%2f..%2fetc%2fpasswd",
    ] {
        let uri = format!("/api/projects/alpha/blobs/{bad}");
        let got = call!(&app, get(&uri));
        assert_error(&h, &got, StatusCode::BAD_REQUEST, "invalid_blob_key");
        let put = call!(&app, TestRequest::put().uri(&uri).set_payload("x"));
        assert_error(&h, &put, StatusCode::BAD_REQUEST, "invalid_blob_key");
    }
}
