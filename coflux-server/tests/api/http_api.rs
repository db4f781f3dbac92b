//! The HTTP JSON API, driven through `create_app` as `main` builds it.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use coflux_core::sdk::{Failure, Repository, current_execution, task, workflow};
use coflux_server::{AppState, ServerConfig, create_app};
use serde_json::{Value as Json, json};

/// Adds two numbers through a task.
#[workflow(module = "demo")]
async fn add(a: i64, b: i64) -> Result<i64, Failure> {
    Ok(sum.call(a, b).await?)
}

/// Adds two numbers.
#[task(module = "demo")]
async fn sum(a: i64, b: i64) -> Result<i64, Failure> {
    Ok(a + b)
}

/// Returns an object, to check that results are decoded to plain JSON.
#[workflow(module = "demo")]
async fn describe(name: String) -> Result<serde_json::Value, Failure> {
    Ok(json!({"name": name, "tags": ["a", "b"], "nested": {"ok": true}}))
}

/// Always fails.
#[workflow(module = "demo")]
async fn explode() -> Result<i64, Failure> {
    Err(Failure::new("demo.Boom", "it blew up"))
}

/// Fails on its first attempt; no retries in code (the registered manifest adds them).
#[workflow(module = "demo")]
async fn flaky() -> Result<u32, Failure> {
    let attempt = current_execution().map_or(1, |e| e.attempt);
    if attempt == 1 {
        return Err(Failure::new("demo.Flaky", "first attempt fails"));
    }
    Ok(attempt)
}

/// Sleeps for a long time (to be cancelled).
#[workflow(module = "demo")]
async fn slow() -> Result<(), Failure> {
    actix_rt::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

/// Sends a request to the app; answers its status and JSON body.
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {
        answer(test::call_service($app, ($req).to_request()).await).await
    };
}

/// Creates project `$project` and its environment `$environment` through the API.
macro_rules! create_environment {
    ($app:expr, $project:literal, $environment:literal) => {{
        call!($app, post("/api/projects", json!({ "name": $project })));
        call!(
            $app,
            post(
                concat!("/api/projects/", $project, "/environments"),
                json!({ "name": $environment })
            )
        );
    }};
}

struct Harness {
    dir: tempfile::TempDir,
    state: web::Data<AppState>,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = web::Data::new(
            AppState::open(&ServerConfig::new(dir.path()))
                .await
                .unwrap(),
        );
        Self { dir, state }
    }

    /// The data directory as text, which must never appear in an answer.
    fn data_dir(&self) -> String {
        self.dir.path().display().to_string()
    }
}

async fn answer<B: MessageBody>(resp: ServiceResponse<B>) -> (StatusCode, Json) {
    let status = resp.status();
    let body = test::read_body(resp).await;
    let json = if body.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into_owned()))
    };
    (status, json)
}

/// Asserts an error answer: status, code, a message, and no filesystem path.
fn assert_error(h: &Harness, (status, body): &(StatusCode, Json), want: StatusCode, code: &str) {
    assert_eq!(*status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(!message.is_empty());
    let text = body.to_string();
    assert!(!text.contains(&h.data_dir()), "leaks the data dir: {text}");
    assert!(!text.contains(".sqlite") && !text.contains(".db"), "{text}");
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

fn post(uri: &str, body: Json) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

#[path = "http_api/limits.rs"]
mod limits;
#[path = "http_api/runs_list.rs"]
mod runs_list;

#[path = "http_api/blobs.rs"]
mod blobs;
#[path = "http_api/manifests.rs"]
mod manifests;
#[path = "http_api/run_retention.rs"]
mod run_retention;

#[actix_rt::test]
async fn health_reports_the_version() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    let (status, body) = call!(&app, get("/api/health"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
}

#[actix_rt::test]
async fn projects_and_environments_lifecycle() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;

    assert_eq!(call!(&app, get("/api/projects")).1, json!({"projects": []}));
    let created = call!(&app, post("/api/projects", json!({"name": "alpha"})));
    assert_eq!(created, (StatusCode::CREATED, json!({"name": "alpha"})));
    let again = call!(&app, post("/api/projects", json!({"name": "alpha"})));
    assert_eq!(again.0, StatusCode::CREATED, "creating twice is idempotent");
    assert_eq!(
        call!(&app, get("/api/projects")).1,
        json!({"projects": [{"name": "alpha"}]})
    );

    let bad = call!(&app, post("/api/projects", json!({"name": "Bad Name"})));
    assert_error(&h, &bad, StatusCode::BAD_REQUEST, "invalid_input");
    let traversal = call!(&app, post("/api/projects", json!({"name": "../x"})));
    assert_error(&h, &traversal, StatusCode::BAD_REQUEST, "invalid_input");

    let envs = "/api/projects/alpha/environments";
    let prod = call!(&app, post(envs, json!({"name": "production"})));
    assert_eq!(prod.0, StatusCode::CREATED, "{}", prod.1);
    assert_eq!(prod.1["name"], "production");
    assert_eq!(prod.1["state"], "active");
    assert_eq!(prod.1["parent"], Json::Null);
    let dev = call!(
        &app,
        post(envs, json!({"name": "dev", "parent": "production"}))
    );
    assert_eq!(dev.0, StatusCode::CREATED, "{}", dev.1);
    assert_eq!(dev.1["parent"], "production");

    let duplicate = call!(&app, post(envs, json!({"name": "production"})));
    assert_error(&h, &duplicate, StatusCode::CONFLICT, "environment_exists");
    let bad_env = call!(&app, post(envs, json!({"name": "a b"})));
    assert_error(&h, &bad_env, StatusCode::BAD_REQUEST, "invalid_input");
    let missing_parent = call!(&app, post(envs, json!({"name": "x", "parent": "nope"})));
    assert_eq!(
        missing_parent.0,
        StatusCode::NOT_FOUND,
        "{}",
        missing_parent.1
    );

    let (_, list) = call!(&app, get(envs));
    let names: Vec<&str> = list["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["production", "dev"]);

    let paused = call!(&app, post(&format!("{envs}/dev/pause"), json!({})));
    assert_eq!(
        (paused.0, paused.1["state"].clone()),
        (StatusCode::OK, json!("paused"))
    );
    let resumed = call!(&app, post(&format!("{envs}/dev/resume"), json!({})));
    assert_eq!(resumed.1["state"], "active");
    let blocked = call!(&app, post(&format!("{envs}/production/archive"), json!({})));
    assert_error(
        &h,
        &blocked,
        StatusCode::CONFLICT,
        "environment_has_children",
    );
    let archived = call!(&app, post(&format!("{envs}/dev/archive"), json!({})));
    assert_eq!(archived.1["state"], "archived", "{}", archived.1);
    let unknown_env = call!(&app, post(&format!("{envs}/ghost/pause"), json!({})));
    assert_error(
        &h,
        &unknown_env,
        StatusCode::NOT_FOUND,
        "environment_not_found",
    );

    let unknown_project = call!(&app, get("/api/projects/ghost/environments"));
    assert_error(
        &h,
        &unknown_project,
        StatusCode::NOT_FOUND,
        "project_not_found",
    );
    let bad_project = call!(&app, get("/api/projects/..%2f..%2fetc/environments"));
    assert!(bad_project.0.is_client_error(), "{bad_project:?}");
    assert!(!bad_project.1.to_string().contains(&h.data_dir()));
}

#[actix_rt::test]
async fn malformed_requests_get_json_errors() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    call!(&app, post("/api/projects", json!({"name": "alpha"})));

    let malformed = TestRequest::post()
        .uri("/api/projects")
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"name\": ");
    assert_error(
        &h,
        &call!(&app, malformed),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let missing_field = call!(&app, post("/api/projects", json!({"nom": "x"})));
    assert_error(&h, &missing_field, StatusCode::BAD_REQUEST, "invalid_json");
    let not_json = TestRequest::post()
        .uri("/api/projects")
        .insert_header(("content-type", "text/plain"))
        .set_payload("name=x");
    assert_error(
        &h,
        &call!(&app, not_json),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let bad_limit = call!(&app, get("/api/projects/alpha/runs?limit=lots"));
    assert_error(&h, &bad_limit, StatusCode::BAD_REQUEST, "invalid_query");
    let bad_run = call!(&app, get("/api/projects/alpha/runs/X1"));
    assert_error(&h, &bad_run, StatusCode::BAD_REQUEST, "invalid_id");
    let unknown_run = call!(&app, get("/api/projects/alpha/runs/R99"));
    assert_error(&h, &unknown_run, StatusCode::NOT_FOUND, "run_not_found");
    let unknown_result = call!(&app, get("/api/projects/alpha/runs/R99/result?wait=1"));
    assert_error(&h, &unknown_result, StatusCode::NOT_FOUND, "run_not_found");
    let bad_step = call!(
        &app,
        post("/api/projects/alpha/steps/R1:0/rerun", json!({}))
    );
    assert_error(&h, &bad_step, StatusCode::BAD_REQUEST, "invalid_id");
    let bad_execution = call!(
        &app,
        post("/api/projects/alpha/executions/R1/cancel", json!({}))
    );
    assert_error(&h, &bad_execution, StatusCode::BAD_REQUEST, "invalid_id");
    let unknown_execution = call!(
        &app,
        post("/api/projects/alpha/executions/R5:1:1/cancel", json!({}))
    );
    assert_error(
        &h,
        &unknown_execution,
        StatusCode::NOT_FOUND,
        "run_not_found",
    );

    let no_route = call!(&app, get("/api/nothing/here"));
    assert_error(&h, &no_route, StatusCode::NOT_FOUND, "not_found");
    let wrong_method = call!(&app, TestRequest::delete().uri("/api/projects"));
    assert_error(
        &h,
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[actix_rt::test]
async fn workflows_run_to_completion_and_can_be_rerun_and_cancelled() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    create_environment!(&app, "alpha", "production");
    let project = h.state.coflux.existing_project("alpha").await.unwrap();
    let repository = Repository::new()
        .with(add)
        .with(sum)
        .with(describe)
        .with(explode)
        .with(flaky)
        .with(slow);
    let _worker = project.serve("production", repository).await.unwrap();

    let runs = "/api/projects/alpha/environments/production/runs";
    let submit = |target: &str, arguments: Json| {
        post(
            runs,
            json!({"module": "demo", "target": target, "arguments": arguments}),
        )
    };
    let result = |run: &Json| {
        format!(
            "/api/projects/alpha/runs/{}/result?wait=5",
            run.as_str().unwrap()
        )
    };

    let (_, submitted) = call!(&app, submit("add", json!([1, 2])));
    let run = submitted["run_id"].clone();
    let (status, body) = call!(&app, get(&result(&run)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"run_id": run, "status": "value", "value": 3}));
    let again = call!(&app, get(&result(&run).replace("wait=5", "wait=0")));
    assert_eq!(again.1["value"], 3, "a finished run answers at once");

    let (_, view) = call!(
        &app,
        get(&format!(
            "/api/projects/alpha/runs/{}",
            run.as_str().unwrap()
        ))
    );
    let steps = view["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{view}");
    let root = &steps[0]["executions"][0];
    assert_eq!(root["state"], "value");
    assert_eq!(root["result"], json!({"type": "value", "value": 3}));
    assert!(root["duration_ms"].is_i64());
    assert_eq!(steps[1]["target"], "sum");
    assert_eq!(steps[1]["parent"], format!("{}:1:1", run.as_str().unwrap()));
    assert_eq!(
        (view["total_steps"].clone(), view["next_offset"].clone()),
        (json!(2), Json::Null)
    );

    // Steps come in pages with `offset` and `limit`.
    let page = |query: &str| {
        get(&format!(
            "/api/projects/alpha/runs/{}?{query}",
            run.as_str().unwrap()
        ))
    };
    let (_, first) = call!(&app, page("limit=1"));
    assert_eq!(first["steps"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["steps"][0]["target"], "add");
    assert_eq!(
        (first["total_steps"].clone(), first["next_offset"].clone()),
        (json!(2), json!(1))
    );
    let (_, second) = call!(&app, page("offset=1&limit=1"));
    assert_eq!(second["steps"][0]["target"], "sum", "{second}");
    assert_eq!(second["next_offset"], Json::Null);
    let (_, beyond) = call!(&app, page("offset=5"));
    assert_eq!(beyond["steps"], json!([]), "{beyond}");
    // A page read on its own (no environment) shows its steps exactly as the whole run does,
    // and as the same page seen from the run's environment.
    assert_eq!(first["steps"][0], view["steps"][0]);
    assert_eq!(second["steps"][0], view["steps"][1]);
    let (_, from_env) = call!(&app, page("environment=production&offset=1&limit=1"));
    assert_eq!(from_env, second);
    let (_, past) = call!(&app, page("offset=5&limit=3"));
    assert_eq!(
        (
            past["steps"].clone(),
            past["total_steps"].clone(),
            past["next_offset"].clone()
        ),
        (json!([]), json!(2), Json::Null)
    );

    let step = format!("{}:1", run.as_str().unwrap());
    let rerun = call!(
        &app,
        post(
            &format!("/api/projects/alpha/steps/{step}/rerun"),
            json!({})
        )
    );
    assert_eq!(
        rerun,
        (
            StatusCode::OK,
            json!({"execution_id": format!("{step}:2"), "attempt": 2})
        )
    );
    let rerun_empty_body = call!(
        &app,
        TestRequest::post().uri(&format!("/api/projects/alpha/steps/{step}/rerun"))
    );
    assert_eq!(rerun_empty_body.1["attempt"], 3, "{}", rerun_empty_body.1);
    let (_, after) = call!(&app, get(&result(&run)));
    assert_eq!(after["value"], 3);

    let (_, submitted) = call!(&app, submit("describe", json!(["ada"])));
    let (_, body) = call!(&app, get(&result(&submitted["run_id"])));
    assert_eq!(
        body["value"],
        json!({"name": "ada", "tags": ["a", "b"], "nested": {"ok": true}})
    );

    let (_, submitted) = call!(&app, submit("explode", json!([])));
    let (_, body) = call!(&app, get(&result(&submitted["run_id"])));
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["type"], "demo.Boom");
    assert_eq!(body["error"]["message"], "it blew up");
    assert!(body.get("value").is_none());

    // Without a manifest the flaky workflow fails; registered with retries it recovers.
    let (_, submitted) = call!(&app, submit("flaky", json!([])));
    let (_, body) = call!(&app, get(&result(&submitted["run_id"])));
    assert_eq!(body["status"], "error", "{body}");
    let manifest = json!({"targets": [{
        "target": {"module": "demo", "name": "flaky"}, "kind": "workflow", "parameters": [],
        "options": {"retries": {"limit": 1, "backoff_min_ms": 0, "backoff_max_ms": 0}},
    }]});
    let put = call!(
        &app,
        TestRequest::put()
            .uri("/api/projects/alpha/environments/production/manifests")
            .set_json(manifest)
    );
    assert_eq!(put.0, StatusCode::OK, "{}", put.1);
    let (_, submitted) = call!(&app, submit("flaky", json!([])));
    let (_, body) = call!(&app, get(&result(&submitted["run_id"])));
    assert_eq!(body["status"], "value", "{body}");
    assert_eq!(body["value"], 2, "the value of the retry");

    let (_, submitted) = call!(&app, submit("slow", json!([])));
    let execution = submitted["execution_id"].as_str().unwrap().to_owned();
    let cancel = call!(
        &app,
        post(
            &format!("/api/projects/alpha/executions/{execution}/cancel"),
            json!({})
        )
    );
    assert_eq!(cancel, (StatusCode::ACCEPTED, json!({})));
    let (_, body) = call!(&app, get(&result(&submitted["run_id"])));
    assert_eq!(
        body,
        json!({"run_id": submitted["run_id"], "status": "cancelled"})
    );
}

#[actix_rt::test]
async fn concurrent_submissions_with_one_idempotency_key_create_one_run() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    call!(&app, post("/api/projects", json!({"name": "acme"})));
    for env in ["production", "staging"] {
        call!(
            &app,
            post("/api/projects/acme/environments", json!({ "name": env }))
        );
    }
    let submit = |env: &str| {
        post(
            &format!("/api/projects/acme/environments/{env}/runs"),
            json!({"module": "m", "target": "w", "arguments": [], "idempotency_key": "order-42",
                "allow_unregistered": true}),
        )
    };
    let answers =
        futures::future::join_all((0..100).map(|_| async { call!(&app, submit("production")) }))
            .await;
    let runs: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(runs.len(), 1, "one run for 100 submissions: {runs:?}");
    let (_, listed) = call!(&app, get("/api/projects/acme/runs"));
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1);
    // Keys are scoped to the environment.
    let (_, other) = call!(&app, submit("staging"));
    assert!(!runs.contains(other["run_id"].as_str().unwrap()));
    // An empty key is refused.
    let bad = call!(
        &app,
        post(
            "/api/projects/acme/environments/production/runs",
            json!({"module": "m", "target": "w", "idempotency_key": ""}),
        )
    );
    assert_error(&h, &bad, StatusCode::BAD_REQUEST, "invalid_input");
}
