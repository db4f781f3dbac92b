//! Manifests: registered, read back, and what a submission of a registered workflow waits
//! for.

use super::*;

fn definition(name: &str, kind: &str, options: Json) -> Json {
    json!({
        "target": {"module": "demo", "name": name},
        "kind": kind,
        "parameters": [{"name": "a", "annotation": "int", "default": null}],
        "options": options,
        "instruction": format!("The {name} target."),
    })
}

#[actix_rt::test]
async fn manifests_round_trip_and_submissions_wait_for_an_agent() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    create_environment!(&app, "alpha", "production");

    let path = "/api/projects/alpha/environments/production/manifests";
    let targets = json!([
        definition(
            "main",
            "workflow",
            json!({"retries": {"limit": 2, "backoff_min_ms": 0, "backoff_max_ms": 0}})
        ),
        definition("helper", "task", json!({})),
    ]);
    let put = call!(
        &app,
        TestRequest::put()
            .uri(path)
            .set_json(json!({"targets": targets}))
    );
    assert_eq!(put, (StatusCode::OK, json!({"registered": 2})));
    let (status, got) = call!(&app, get(path));
    assert_eq!(status, StatusCode::OK);
    let mut got: Vec<Json> = got["targets"].as_array().unwrap().clone();
    got.sort_by_key(|t| t["target"]["name"].as_str().unwrap().to_owned());
    assert_eq!(got, vec![targets[1].clone(), targets[0].clone()]);
    let bad_definition = call!(
        &app,
        TestRequest::put()
            .uri(path)
            .set_json(json!({"targets": [{"target": "x"}]})),
    );
    assert_error(&h, &bad_definition, StatusCode::BAD_REQUEST, "invalid_json");
    let unknown_env = call!(
        &app,
        get("/api/projects/alpha/environments/ghost/manifests")
    );
    assert_error(
        &h,
        &unknown_env,
        StatusCode::NOT_FOUND,
        "environment_not_found",
    );

    let runs = "/api/projects/alpha/environments/production/runs";
    let task = call!(
        &app,
        post(
            runs,
            json!({"module": "demo", "target": "helper", "arguments": []})
        )
    );
    assert_error(&h, &task, StatusCode::BAD_REQUEST, "not_a_workflow");

    let submitted = call!(
        &app,
        post(
            runs,
            json!({"module": "demo", "target": "main", "arguments": [{"x": [1, "two"]}, 3], "idempotency_key": "k"})
        ),
    );
    assert_eq!(submitted.0, StatusCode::CREATED, "{}", submitted.1);
    let run_id = submitted.1["run_id"].as_str().unwrap().to_owned();
    assert_eq!(submitted.1["step_id"], format!("{run_id}:1"));
    assert_eq!(submitted.1["execution_id"], format!("{run_id}:1:1"));

    let result_path = format!("/api/projects/alpha/runs/{run_id}/result");
    let pending = call!(&app, get(&format!("{result_path}?wait=0")));
    assert_eq!(
        pending,
        (
            StatusCode::OK,
            json!({"run_id": run_id, "status": "pending"})
        )
    );
    let started = std::time::Instant::now();
    let still = call!(&app, get(&format!("{result_path}?wait=1")));
    assert_eq!(still.1["status"], "pending");
    assert!(started.elapsed() >= Duration::from_millis(900));

    let (_, view) = call!(&app, get(&format!("/api/projects/alpha/runs/{run_id}")));
    assert_eq!(view["run_id"], run_id.as_str());
    assert_eq!(view["environment"], "production");
    let step = &view["steps"][0];
    assert_eq!(step["step_id"], format!("{run_id}:1"));
    assert_eq!(
        (step["module"].as_str(), step["target"].as_str()),
        (Some("demo"), Some("main"))
    );
    assert_eq!(step["kind"], "workflow");
    assert_eq!(step["arguments"], json!([{"x": [1, "two"]}, 3]));
    assert_eq!(step["executions"][0]["state"], "queued");
    assert_eq!(step["executions"][0]["result"], Json::Null);

    let (_, list) = call!(&app, get("/api/projects/alpha/runs?limit=10"));
    assert_eq!(list["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(list["runs"][0]["target"], "main");
    assert_eq!(list["runs"][0]["environment"], "production");

    let unknown_env = call!(
        &app,
        post(
            "/api/projects/alpha/environments/ghost/runs",
            json!({"module": "demo", "target": "main"})
        )
    );
    assert_error(
        &h,
        &unknown_env,
        StatusCode::NOT_FOUND,
        "environment_not_found",
    );
}

/// A submission's refusals, decided by the project in one message, come in a fixed order: the
/// environment, a target registered as a task, the overrides, the idempotency key, then the
/// registration.
#[actix_rt::test]
async fn submission_refusals_come_in_order() {
    let h = Harness::new().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    create_environment!(&app, "alpha", "production");
    let manifests = "/api/projects/alpha/environments/production/manifests";
    let targets = json!([
        definition("main", "workflow", json!({})),
        definition("helper", "task", json!({})),
    ]);
    call!(
        &app,
        TestRequest::put()
            .uri(manifests)
            .set_json(json!({"targets": targets}))
    );
    let bad_requires = json!({"": ["x"]});
    let submit = |env: &str, target: &str, key: &str, requires: &Json| {
        let uri = format!("/api/projects/alpha/environments/{env}/runs");
        let body = json!({"module": "demo", "target": target, "idempotency_key": key,
            "requires": requires});
        post(&uri, body)
    };
    let cases = [
        (
            "ghost",
            "helper",
            StatusCode::NOT_FOUND,
            "environment_not_found",
        ),
        (
            "production",
            "helper",
            StatusCode::BAD_REQUEST,
            "not_a_workflow",
        ),
        (
            "production",
            "mian",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ];
    for (env, target, status, code) in cases {
        let got = call!(&app, submit(env, target, "", &bad_requires));
        assert_error(&h, &got, status, code);
    }
    let got = call!(&app, submit("production", "mian", "", &json!({})));
    assert_error(&h, &got, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(got.1.to_string().contains("idempotency key"), "{}", got.1);
    let got = call!(&app, submit("production", "mian", "k", &json!({})));
    assert_error(&h, &got, StatusCode::NOT_FOUND, "workflow_not_found");
    assert!(got.1.to_string().contains("demo/main"), "{}", got.1);
    let got = call!(&app, submit("production", "main", "k", &json!({})));
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
}
