//! `PATCH /api/projects/{p}/environments/{env}`: re-basing an environment through the API,
//! refusing cycles (409 `environment_cycle`), and the new parent surviving a restart.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};

async fn open(dir: &std::path::Path) -> web::Data<AppState> {
    web::Data::new(AppState::open(&ServerConfig::new(dir)).await.unwrap())
}

macro_rules! call {
    ($app:expr, $req:expr) => {{
        let resp = test::call_service($app, $req.to_request()).await;
        let status = resp.status();
        let body: Json = serde_json::from_slice(&test::read_body(resp).await).unwrap();
        (status, body)
    }};
}

fn patch(env: &str, body: Json) -> TestRequest {
    TestRequest::patch()
        .uri(&format!("/api/projects/acme/environments/{env}"))
        .set_json(body)
}

#[actix_rt::test]
async fn environments_are_re_based_durably_and_cycles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let state = open(dir.path()).await;
        let app = test::init_service(create_app(state.clone())).await;
        call!(
            &app,
            TestRequest::post()
                .uri("/api/projects")
                .set_json(json!({"name": "acme"}))
        );
        for (name, parent) in [("production", Json::Null), ("staging", json!("production"))] {
            let (status, _) = call!(
                &app,
                TestRequest::post()
                    .uri("/api/projects/acme/environments")
                    .set_json(json!({"name": name, "parent": parent}))
            );
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, body) = call!(&app, patch("production", json!({"parent": "staging"})));
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "environment_cycle");
        let (status, body) = call!(&app, patch("staging", json!({"parent": "staging"})));
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        let (status, body) = call!(&app, patch("staging", json!({})));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["parent"], "production", "{{}} changes nothing");
        let (status, body) = call!(&app, patch("staging", json!({"parent": null})));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["parent"], Json::Null);
        let (status, body) = call!(&app, patch("production", json!({"parent": "staging"})));
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["parent"], "staging");

        let (status, body) = call!(&app, patch("nowhere", json!({"parent": null})));
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = call!(&app, patch("staging", json!({"parents": "x"})));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // After a restart the new lineage holds.
    let state = open(dir.path()).await;
    let app = test::init_service(create_app(state)).await;
    let (_, body) = call!(
        &app,
        TestRequest::get().uri("/api/projects/acme/environments")
    );
    let parents: Vec<(Json, Json)> = body["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].clone(), e["parent"].clone()))
        .collect();
    assert_eq!(
        parents,
        [
            (json!("production"), json!("staging")),
            (json!("staging"), Json::Null)
        ]
    );
}
