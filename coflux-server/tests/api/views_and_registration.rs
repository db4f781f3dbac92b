//! Results seen from an environment (a re-run in a child environment changes the child's view
//! only) and submissions of workflows nobody registered, through the HTTP API as `main`
//! builds it.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use coflux_core::api::WorkerSpec;
use coflux_core::model::TargetRef;
use coflux_core::sdk::{Failure, Repository, Target, current_execution, workflow};
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};

/// Tells which attempt it is.
#[workflow(module = "demo")]
async fn which() -> Result<String, Failure> {
    let attempt = current_execution().map_or(0, |e| e.attempt);
    Ok(format!("attempt {attempt}"))
}

macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {
        answer(test::call_service($app, ($req).to_request()).await).await
    };
}

async fn answer<B: MessageBody>(resp: ServiceResponse<B>) -> (StatusCode, Json) {
    let status = resp.status();
    let body = test::read_body(resp).await;
    (status, serde_json::from_slice(&body).unwrap_or(Json::Null))
}

fn post(uri: &str, body: Json) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

/// A server state with project `alpha`, `production` and its child `child`.
async fn state(dir: &tempfile::TempDir) -> web::Data<AppState> {
    let state = web::Data::new(
        AppState::open(&ServerConfig::new(dir.path()))
            .await
            .unwrap(),
    );
    let project = state.coflux.project("alpha").await.unwrap();
    project
        .create_environment("production", None)
        .await
        .unwrap();
    project
        .create_environment("child", Some("production"))
        .await
        .unwrap();
    state
}

#[actix_rt::test]
async fn a_rerun_in_a_child_environment_leaves_the_production_result_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let project = state.coflux.existing_project("alpha").await.unwrap();
    for env in ["production", "child"] {
        project
            .serve(env, Repository::new().with(which))
            .await
            .unwrap();
    }
    let app = test::init_service(create_app(state.clone())).await;
    let (status, submitted) = call!(
        &app,
        post(
            "/api/projects/alpha/environments/production/runs",
            json!({"module": "demo", "target": "which"})
        )
    );
    assert_eq!(status, StatusCode::CREATED, "{submitted}");
    let run = submitted["run_id"].as_str().unwrap().to_owned();
    let result = |query: &str| {
        TestRequest::get().uri(&format!("/api/projects/alpha/runs/{run}/result?{query}"))
    };
    assert_eq!(call!(&app, result("wait=5")).1["value"], "attempt 1");
    let (status, rerun) = call!(
        &app,
        post(
            &format!("/api/projects/alpha/steps/{run}:1/rerun"),
            json!({"environment": "child"})
        )
    );
    assert_eq!((status, &rerun["attempt"]), (StatusCode::OK, &json!(2)));
    assert_eq!(
        call!(&app, result("wait=5&environment=child")).1["value"],
        "attempt 2"
    );

    for (query, want) in [
        ("", "attempt 1"),
        ("&environment=production", "attempt 1"),
        ("&step=1", "attempt 1"),
        ("&step=1&environment=production", "attempt 1"),
        ("&environment=child", "attempt 2"),
        ("&step=1&environment=child", "attempt 2"),
        // An attempt named exactly is that attempt, whatever the view.
        ("&step=1&attempt=2", "attempt 2"),
        ("&step=1&attempt=1&environment=child", "attempt 1"),
    ] {
        for wait in ["wait=5", "wait=0"] {
            let query = format!("{wait}{query}");
            let (status, body) = call!(&app, result(&query));
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            assert_eq!(
                body,
                json!({"run_id": run, "status": "value", "value": want}),
                "{query}"
            );
        }
    }
    // The same view as inspection: production still shows its own attempt only.
    let (_, view) = call!(
        &app,
        TestRequest::get().uri(&format!(
            "/api/projects/alpha/runs/{run}?environment=production"
        ))
    );
    assert_eq!(
        view["steps"][0]["executions"].as_array().map(Vec::len),
        Some(1),
        "{view}"
    );
    let (status, body) = call!(&app, result("wait=5&step=1&attempt=3"));
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "execution_not_found");
    let (status, body) = call!(&app, result("step=0"));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call!(&app, result("environment=ghost"));
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "environment_not_found");
}

#[actix_rt::test]
async fn workflows_nobody_registered_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let project = state.coflux.existing_project("alpha").await.unwrap();
    // `demo/which` is hosted in production by an in-process worker. `demo/offline` was
    // registered by an agent (its manifest) that has since disconnected.
    project
        .serve("production", Repository::new().with(which))
        .await
        .unwrap();
    let offline = TargetRef::new("demo", "offline");
    let mut definition = which.definition();
    definition.target = offline.clone();
    project
        .register_manifests("production", vec![definition])
        .await
        .unwrap();
    let agent = project
        .connect_worker(
            "production",
            WorkerSpec {
                targets: [offline].into_iter().collect(),
                capacity: 1,
                provides: Default::default(),
                accepts: Default::default(),
            },
        )
        .await
        .unwrap();
    project.disconnect_worker(agent.id);
    let app = test::init_service(create_app(state.clone())).await;
    let submit = |env: &str, target: &str, allow: Option<bool>| {
        let mut body = json!({"module": "demo", "target": target});
        if let Some(allow) = allow {
            body["allow_unregistered"] = json!(allow);
        }
        post(
            &format!("/api/projects/alpha/environments/{env}/runs"),
            body,
        )
    };

    let started = std::time::Instant::now();
    let (status, body) = call!(&app, submit("production", "wich", None));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "workflow_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'demo/wich'") && message.contains("environment 'production'"),
        "{message}"
    );
    assert!(message.contains("did you mean 'demo/which'"), "{message}");
    let (status, body) = call!(&app, submit("production", "wich", Some(false)));
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Allowed explicitly, it is queued for an agent to come.
    let (status, queued) = call!(&app, submit("production", "wich", Some(true)));
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    let run = queued["run_id"].as_str().unwrap();
    let (_, pending) = call!(
        &app,
        TestRequest::get().uri(&format!("/api/projects/alpha/runs/{run}/result?wait=0"))
    );
    assert_eq!(pending["status"], "pending");

    for target in ["which", "offline"] {
        let (status, body) = call!(&app, submit("production", target, None));
        assert_eq!(status, StatusCode::CREATED, "{target}: {body}");
    }
    // Registrations are per environment: the child inherits cached results, not workflows.
    let (status, body) = call!(&app, submit("child", "offline", None));
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("environment 'child'"),
        "{body}"
    );
}
