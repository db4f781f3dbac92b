//! Authentication and authorisation through `create_app` with `--auth tokens`: 401 without a
//! valid token, 403 outside its scope, the scope matrix of the routes by role, the UI cookie
//! for reads only, token management, and the agent endpoint checking the token's project and
//! environments.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{HttpServer, web};
use coflux_server::auth::AuthMode;
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};

const ADMIN: &str = "admin-token-0123456789";

async fn state(dir: &std::path::Path) -> web::Data<AppState> {
    let mut config = ServerConfig::new(dir);
    config.auth = AuthMode::Tokens;
    config.admin_token = Some(ADMIN.into());
    web::Data::new(AppState::open(&config).await.unwrap())
}

/// Sends a request with an optional bearer token; answers the status and JSON body.
macro_rules! send {
    ($app:expr, $request:expr, $token:expr $(,)?) => {{
        let request: TestRequest = $request;
        let token: Option<String> = $token.map(str::to_owned);
        let request = match token {
            Some(token) => request.insert_header(("Authorization", format!("Bearer {token}"))),
            None => request,
        };
        let response = test::call_service($app, request.to_request()).await;
        let status = response.status();
        let body = test::read_body(response).await;
        (
            status,
            serde_json::from_slice::<Json>(&body).unwrap_or(Json::Null),
        )
    }};
}

#[actix_rt::test]
async fn auth_tokens_scope_every_route_by_role_project_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let app = test::init_service(create_app(state(dir.path()).await)).await;
    let post = |path: &str, body: Json| TestRequest::post().uri(path).set_json(body);
    let get = |path: &str| TestRequest::get().uri(path);

    // Health is public; everything else needs a token.
    assert_eq!(send!(&app, get("/api/health"), None).0, StatusCode::OK);
    let (status, body) = send!(&app, get("/api/projects"), None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let bogus = send!(&app, get("/api/projects"), Some("cfx_00_11"));
    assert_eq!(bogus.0, StatusCode::UNAUTHORIZED);

    // The admin token sets up two projects with environments.
    for project in ["acme", "other"] {
        let created = send!(
            &app,
            post("/api/projects", json!({"name": project})),
            Some(ADMIN)
        );
        assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
        for env in ["production", "dev-1"] {
            let path = format!("/api/projects/{project}/environments");
            send!(&app, post(&path, json!({"name": env})), Some(ADMIN));
        }
    }
    let mut tokens = std::collections::HashMap::new();
    for (name, role, envs) in [
        ("user", "user", None),
        ("agent", "agent", Some("dev-*")),
        ("admin", "admin", None),
    ] {
        let (status, body) = send!(
            &app,
            post(
                "/api/projects/acme/tokens",
                json!({"role": role, "environments": envs, "expires_days": 30}),
            ),
            Some(ADMIN),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["token"].as_str().unwrap().starts_with("cfx_"));
        tokens.insert(name, body["token"].as_str().unwrap().to_owned());
    }
    let t = |name: &str| Some(tokens[name].clone());

    // (method, path, token, expected status)
    let manifest = json!({"targets": []});
    let cases: Vec<(TestRequest, Option<String>, StatusCode)> = vec![
        (get("/api/projects/acme/runs"), t("user"), StatusCode::OK),
        (
            get("/api/projects/other/runs"),
            t("user"),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/api/projects/acme/runs"),
            t("agent"),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/api/projects/acme/environments"),
            t("admin"),
            StatusCode::OK,
        ),
        (
            post(
                "/api/projects/acme/environments",
                json!({"name": "staging"}),
            ),
            t("user"),
            StatusCode::CREATED,
        ),
        (
            post("/api/projects/acme/environments", json!({"name": "x"})),
            t("agent"),
            StatusCode::FORBIDDEN,
        ),
        (
            post("/api/projects", json!({"name": "new"})),
            t("admin"),
            StatusCode::FORBIDDEN,
        ),
        (
            TestRequest::put()
                .uri("/api/projects/acme/environments/dev-1/manifests")
                .set_json(manifest.clone()),
            t("agent"),
            StatusCode::OK,
        ),
        (
            TestRequest::put()
                .uri("/api/projects/acme/environments/production/manifests")
                .set_json(manifest.clone()),
            t("agent"),
            StatusCode::FORBIDDEN,
        ),
        (
            TestRequest::get().uri(&format!("/api/projects/acme/blobs/{}", "0".repeat(64))),
            t("agent"),
            StatusCode::NOT_FOUND,
        ),
        (
            get("/api/projects/acme/runs/R1/logs"),
            t("agent"),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/api/projects/acme/tokens"),
            t("user"),
            StatusCode::FORBIDDEN,
        ),
        (get("/api/projects/acme/tokens"), t("admin"), StatusCode::OK),
        (
            get("/api/projects/other/tokens"),
            t("admin"),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/api/projects/other/tokens"),
            Some(ADMIN.into()),
            StatusCode::OK,
        ),
    ];
    for (i, (request, token, expected)) in cases.into_iter().enumerate() {
        let (status, body) = send!(&app, request, token.as_deref());
        assert_eq!(status, expected, "case {i}: {body}");
        if status == StatusCode::FORBIDDEN {
            assert_eq!(body["error"]["code"], "forbidden", "case {i}");
        }
    }

    // A project's token lists its project only.
    let (_, listed) = send!(&app, get("/api/projects"), t("user").as_deref());
    assert_eq!(listed["projects"], json!([{"name": "acme"}]));

    // The UI's cookie works for reads, never for changes.
    let cookie = actix_web::cookie::Cookie::new("coflux_token", tokens["user"].clone());
    let read = send!(
        &app,
        get("/api/projects/acme/runs").cookie(cookie.clone()),
        None
    );
    assert_eq!(read.0, StatusCode::OK);
    // UI pages: a sign-in page without a token; with the cookie, the token's project only.
    let page = |path: &str, cookie: Option<actix_web::cookie::Cookie<'static>>| {
        let request = TestRequest::get().uri(path);
        let request = match cookie {
            Some(c) => request.cookie(c),
            None => request,
        };
        request.to_request()
    };
    let signin = test::call_service(&app, page("/", None)).await;
    assert_eq!(signin.status(), StatusCode::UNAUTHORIZED);
    let body = String::from_utf8(test::read_body(signin).await.to_vec()).unwrap();
    assert!(body.contains("data-testid=\"sign-in\""), "{body}");
    let home = test::call_service(&app, page("/", Some(cookie.clone()))).await;
    assert_eq!(home.status(), StatusCode::OK);
    let body = String::from_utf8(test::read_body(home).await.to_vec()).unwrap();
    assert!(body.contains("/projects/acme") && !body.contains("/projects/other"));
    let other = test::call_service(&app, page("/projects/other", Some(cookie.clone()))).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let write = post("/api/projects/acme/environments", json!({"name": "y"})).cookie(cookie);
    assert_eq!(send!(&app, write, None).0, StatusCode::UNAUTHORIZED);

    // Listing never shows secrets; a revoked token stops working at once.
    let (_, list) = send!(
        &app,
        get("/api/projects/acme/tokens"),
        t("admin").as_deref()
    );
    assert!(
        !list
            .to_string()
            .contains(tokens["user"].rsplit('_').next().unwrap())
    );
    let id = tokens["user"].split('_').nth(1).unwrap().to_owned();
    let revoke = post(&format!("/api/projects/acme/tokens/{id}/revoke"), json!({}));
    assert_eq!(send!(&app, revoke, t("admin").as_deref()).0, StatusCode::OK);
    let after = send!(&app, get("/api/projects/acme/runs"), t("user").as_deref());
    assert_eq!(after.0, StatusCode::UNAUTHORIZED);
    let bad_role = post("/api/projects/acme/tokens", json!({"role": "root"}));
    assert_eq!(
        send!(&app, bad_role, Some(ADMIN)).0,
        StatusCode::BAD_REQUEST
    );
}

#[actix_rt::test]
async fn auth_agent_tokens_connect_only_to_their_project_and_environments() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let project = state.coflux.project("acme").await.unwrap();
    project
        .create_environment("production", None)
        .await
        .unwrap();
    project.create_environment("dev-1", None).await.unwrap();
    let (token, _) = state
        .auth
        .tokens()
        .create(
            "acme",
            Some("dev-*"),
            coflux_server::auth::Role::Agent,
            None,
            0,
        )
        .unwrap();
    let s = state.clone();
    let server = HttpServer::new(move || create_app(s.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let url = format!("ws://{}/agent", server.addrs()[0]);
    actix_rt::spawn(server.run());

    // Without a token the upgrade is refused.
    let refused = awc::Client::new().ws(&url).connect().await;
    assert!(refused.is_err(), "connected without a token");
    let hello = |environment: &str| {
        coflux_core::protocol::agent::AgentFrame::Hello(coflux_core::protocol::agent::Hello {
            version: coflux_core::protocol::agent::PROTOCOL_VERSION,
            project: "acme".into(),
            environment: environment.into(),
            session: None,
            provides: vec![],
            accepts: vec![],
            concurrency: 1,
            targets: vec![],
            claims: vec![],
            previous_session: None,
        })
    };
    for (environment, welcome) in [("dev-1", true), ("production", false)] {
        use futures::{SinkExt, StreamExt};
        let (_, mut socket) = awc::Client::new()
            .ws(&url)
            .bearer_auth(&token)
            .connect()
            .await
            .unwrap();
        let bytes = coflux_core::protocol::codec::encode(&hello(environment)).unwrap();
        socket
            .send(awc::ws::Message::Binary(bytes.into()))
            .await
            .unwrap();
        let frame = socket.next().await.unwrap().unwrap();
        match (frame, welcome) {
            (awc::ws::Frame::Binary(_), true) => {}
            (awc::ws::Frame::Close(reason), false) => {
                let reason = reason.and_then(|r| r.description).unwrap_or_default();
                assert_eq!(reason, "forbidden");
            }
            (other, _) => panic!("{environment}: unexpected {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn auth_a_route_without_a_declared_scope_fails_in_tests() {
    let app = test::init_service(
        actix_web::App::new()
            .wrap(actix_web::middleware::from_fn(coflux_server::auth::audit))
            .route("/open", web::get().to(|| async { "anyone" })),
    )
    .await;
    let (status, body) = send!(&app, TestRequest::get().uri("/open"), None);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "route_without_scope");
}
