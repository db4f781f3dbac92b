//! The web UI, driven through `create_app` as `main` builds it: every page renders with its
//! key elements, unknown ids give the 404 page, user data comes back escaped, security headers
//! are set, the live stream answers, and the static assets stay within their size budgets.

use std::collections::BTreeMap;
use std::io::Write;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use coflux_core::model::Value;
use coflux_core::sdk::{Failure, Repository, encode_json, task, workflow};
use coflux_server::create_app;
use coflux_server::logs::LogRecord;
use coflux_server::ui::assets;
use serde_json::{Value as Json, json};

use crate::pages::*;

/// Greets, echoing its argument (which the test makes hostile).
#[workflow(module = "ui")]
async fn hello(name: String) -> Result<String, Failure> {
    Ok(format!("hello {name} {XSS_IMG} {XSS_URL}"))
}

/// Fails with a hostile type and message.
#[workflow(module = "ui")]
async fn boom(message: String) -> Result<String, Failure> {
    Err(Failure::new(XSS_IMG, message))
}

/// Opens [`gate`].
static OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Waits until the test opens it.
#[workflow(module = "ui")]
async fn gate() -> Result<u32, Failure> {
    while !OPEN.load(std::sync::atomic::Ordering::SeqCst) {
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(7)
}

/// Calls `leaf` `n` times.
#[workflow(module = "ui")]
async fn fan(n: u32) -> Result<u32, Failure> {
    let mut total = 0;
    for i in 0..n {
        total += leaf.call(i).await?;
    }
    Ok(total)
}

/// One leaf of `fan`.
#[task(module = "ui")]
async fn leaf(i: u32) -> Result<u32, Failure> {
    Ok(i)
}

fn definition(name: &str, kind: &str, parameter: &str) -> Json {
    json!({
        "target": {"module": "ui", "name": name},
        "kind": kind,
        "parameters": [{"name": parameter, "annotation": "str", "default": null}],
        "options": {},
        "instruction": format!("The {name} target. {XSS_SCRIPT}"),
    })
}

#[actix_rt::test]
async fn ui_pages_render_escape_and_answer_404() {
    let h = harness().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    let post = |uri: &str, body: Json| TestRequest::post().uri(uri).set_json(body);

    // An empty server: the projects page with its create form.
    let home = fetch!(&app, "/");
    let page = check_page(&home, StatusCode::OK);
    assert_eq!(count(&page, "create-project"), 1);
    assert_eq!(count(&page, "project"), 0);

    api!(&app, post("/api/projects", json!({"name": "acme"})));
    let envs = "/api/projects/acme/environments";
    api!(&app, post(envs, json!({"name": "production"})));
    api!(
        &app,
        post(envs, json!({"name": "dev", "parent": "production"}))
    );
    api!(
        &app,
        TestRequest::put()
            .uri("/api/projects/acme/environments/production/manifests")
            .set_json(json!({"targets": [
                definition("hello", "workflow", XSS_IMG),
                definition("boom", "workflow", "message"),
                definition("fan", "workflow", "n"),
                definition("leaf", "task", "i"),
            ]}))
    );
    let project = h.state.coflux.existing_project("acme").await.unwrap();
    let repository = Repository::new()
        .with(hello)
        .with(boom)
        .with(fan)
        .with(leaf);
    let _worker = project.serve("production", repository).await.unwrap();

    let runs = "/api/projects/acme/environments/production/runs";
    let submit = |target: &str, arguments: Json| {
        post(
            runs,
            json!({"module": "ui", "target": target, "arguments": arguments}),
        )
    };
    let hostile = format!("{XSS_SCRIPT} \u{1b}[31mred\u{1b}[0m {XSS_URL}");
    let hello_run = api!(&app, submit("hello", json!([hostile])))["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let boom_run = api!(&app, submit("boom", json!([hostile])))["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fan_run = api!(&app, submit("fan", json!([60])))["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for run in [&hello_run, &boom_run, &fan_run] {
        api!(
            &app,
            TestRequest::get().uri(&format!("/api/projects/acme/runs/{run}/result?wait=20"))
        );
        // Until the run's last write is readable.
        for _ in 0..50 {
            let page = fetch!(&app, format!("/projects/acme/runs/{run}"));
            if page.body.contains("data-live=\"false\"") {
                break;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    // A hostile log record on the hello run's initial execution.
    h.state
        .logs
        .append(
            "acme",
            vec![LogRecord {
                execution: format!("{hello_run}:1:1").parse().unwrap(),
                timestamp_ms: 1_700_000_000_000,
                level: 5,
                template: Some(format!("{XSS_SCRIPT} \u{1b}[1mbold\u{1b}[0m {{who}}")),
                values: BTreeMap::from([(
                    "who".to_string(),
                    Value::raw(encode_json(json!(XSS_IMG))),
                )]),
            }],
        )
        .unwrap();
    h.state.logs.flush().await.unwrap();

    // Projects.
    let page = check_page(&fetch!(&app, "/"), StatusCode::OK);
    assert_eq!(count(&page, "project"), 1);

    // The project page: environment tree (dev under production), targets, runs.
    let page = check_page(&fetch!(&app, "/projects/acme"), StatusCode::OK);
    let nested = page
        .select(&sel("[data-environment=production] [data-environment=dev]"))
        .count();
    assert_eq!(nested, 1, "dev is drawn under production");
    assert_eq!(count(&page, "create-environment"), 1);
    assert_eq!(count(&page, "module"), 1);
    assert_eq!(count(&page, "target"), 4);
    assert_eq!(count(&page, "run-row"), 3);
    assert!(count(&page, "pause") >= 2 && count(&page, "archive") >= 2);
    let filtered = check_page(&fetch!(&app, "/projects/acme?status=error"), StatusCode::OK);
    assert_eq!(count(&filtered, "run-row"), 1);
    let by_workflow = check_page(
        &fetch!(&app, "/projects/acme?workflow=ui%2Ffan&env=production"),
        StatusCode::OK,
    );
    assert_eq!(count(&by_workflow, "run-row"), 1);
    let recent = check_page(&fetch!(&app, "/projects/acme?within=1h"), StatusCode::OK);
    assert_eq!(count(&recent, "run-row"), 3, "submitted within the hour");
    let bogus = check_page(&fetch!(&app, "/projects/acme?within=1y"), StatusCode::OK);
    assert_eq!(
        count(&bogus, "run-row"),
        0,
        "an unknown period matches nothing"
    );
    let older = check_page(
        &fetch!(&app, format!("/projects/acme?before={fan_run}")),
        StatusCode::OK,
    );
    assert_eq!(count(&older, "run-row"), 2);
    let dev = check_page(
        &fetch!(&app, "/projects/acme?environment=dev"),
        StatusCode::OK,
    );
    assert_eq!(count(&dev, "no-targets"), 1);

    // The workflow page: instruction (escaped), parameters, run form, recent runs.
    let wf = fetch!(
        &app,
        "/projects/acme/workflows/ui/hello?environment=production"
    );
    let page = check_page(&wf, StatusCode::OK);
    assert!(text_of(&page, "instruction").contains(XSS_SCRIPT));
    assert!(text_of(&page, "parameters").contains(XSS_IMG));
    assert_eq!(count(&page, "run-form"), 1);
    assert_eq!(count(&page, "run-row"), 1);
    let unregistered = check_page(
        &fetch!(&app, "/projects/acme/workflows/ui/ghost"),
        StatusCode::OK,
    );
    assert_eq!(count(&unregistered, "not-registered"), 1);

    // The run pages: graph, timeline, logs, step panel.
    let base = format!("/projects/acme/runs/{hello_run}?environment=production");
    let page = check_page(&fetch!(&app, base), StatusCode::OK);
    assert_eq!(count(&page, "run-header"), 1);
    assert_eq!(count(&page, "graph"), 1);
    assert_eq!(count(&page, "graph-node"), 1);
    assert!(text_of(&page, "status").contains("value"));
    let page = check_page(
        &fetch!(&app, format!("{base}&tab=timeline")),
        StatusCode::OK,
    );
    assert_eq!(count(&page, "timeline-row"), 1);
    let logs_page = fetch!(&app, format!("{base}&tab=logs&step={hello_run}:1"));
    snapshot("logs", &logs_page);
    let page = check_page(&logs_page, StatusCode::OK);
    assert_eq!(count(&page, "log-row"), 1);
    let message = text_of(&page, "log-message");
    assert!(
        message.contains(XSS_SCRIPT) && message.contains(XSS_IMG),
        "{message}"
    );
    assert!(message.contains("bold") && !message.contains('\u{1b}'));
    assert_eq!(count(&page, "logs-only-step"), 1);
    let only = check_page(
        &fetch!(
            &app,
            format!("{base}&tab=logs&step={hello_run}:1&only=step")
        ),
        StatusCode::OK,
    );
    assert_eq!(count(&only, "log-row"), 1);
    assert_eq!(count(&only, "logs-all"), 1);
    let other_step = check_page(
        &fetch!(&app, format!("{base}&tab=logs&step={fan_run}:1&only=step")),
        StatusCode::NOT_FOUND,
    );
    assert_eq!(count(&other_step, "error-page"), 1, "a step of another run");
    let info_only = check_page(
        &fetch!(&app, format!("{base}&tab=logs&level=error")),
        StatusCode::OK,
    );
    assert_eq!(count(&info_only, "log-row"), 1);
    let page = check_page(
        &fetch!(&app, format!("{base}&step={hello_run}:1")),
        StatusCode::OK,
    );
    assert_eq!(count(&page, "step-panel"), 1);
    assert!(text_of(&page, "arguments").contains(XSS_SCRIPT));
    assert!(text_of(&page, "result-value").contains(XSS_URL));
    let options: Vec<String> = page
        .select(&sel("[data-testid=rerun-environment] option"))
        .map(|o| o.value().attr("value").unwrap().to_owned())
        .collect();
    assert_eq!(options, ["production", "dev"]);

    // An error: type, message and no raw markup.
    let error_page = fetch!(
        &app,
        format!("/projects/acme/runs/{boom_run}?step={boom_run}:1")
    );
    snapshot("error", &error_page);
    let page = check_page(&error_page, StatusCode::OK);
    let error = text_of(&page, "result-error");
    assert!(
        error.contains(XSS_IMG) && error.contains(XSS_SCRIPT),
        "{error}"
    );
    assert!(error.contains("red") && !error.contains('\u{1b}'));

    // The fan-out: 60 calls of one target collapse into one group node.
    let page = check_page(
        &fetch!(&app, format!("/projects/acme/runs/{fan_run}")),
        StatusCode::OK,
    );
    assert_eq!(count(&page, "graph-node"), 1);
    let group = page
        .select(&sel("[data-testid=graph-group]"))
        .next()
        .expect("a group node");
    assert_eq!(group.value().attr("data-count"), Some("60"));
    let list = check_page(
        &fetch!(&app, format!("/projects/acme/runs/{fan_run}?view=list")),
        StatusCode::OK,
    );
    assert_eq!(count(&list, "step-row"), 61);

    // Unknown things give the 404 page.
    for uri in [
        "/projects/ghost".to_string(),
        "/projects/acme/runs/R999".to_string(),
        "/projects/acme/runs/not-a-run".to_string(),
        format!("/projects/acme/runs/{hello_run}?step={hello_run}:9"),
        format!("/projects/acme/runs/{hello_run}?step=R1:1&attempt=7"),
        format!("/projects/acme/runs/{hello_run}?step=garbage"),
        "/projects/acme?environment=ghost".to_string(),
        "/projects/ghost/runs/R1/events".to_string(),
        "/no/such/page".to_string(),
        format!("/projects/acme/runs/{hello_run}/events?step={hello_run}:9"),
    ] {
        let a = fetch!(&app, uri);
        let page = check_page(&a, StatusCode::NOT_FOUND);
        assert_eq!(count(&page, "error-page"), 1, "{uri}");
    }
    // The API keeps its JSON 404s.
    let api_404 = fetch!(&app, "/api/nothing");
    assert_eq!(api_404.status, StatusCode::NOT_FOUND);
    assert!(api_404.content_type.starts_with("application/json"));
}

#[actix_rt::test]
async fn ui_live_stream_sends_changed_fragments_then_ends() {
    let h = harness().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    let post = |uri: &str, body: Json| TestRequest::post().uri(uri).set_json(body);
    api!(&app, post("/api/projects", json!({"name": "acme"})));
    api!(
        &app,
        post(
            "/api/projects/acme/environments",
            json!({"name": "production"})
        )
    );
    let project = h.state.coflux.existing_project("acme").await.unwrap();
    let _worker = project
        .serve("production", Repository::new().with(hello))
        .await
        .unwrap();
    let run = api!(
        &app,
        post(
            "/api/projects/acme/environments/production/runs",
            json!({"module": "ui", "target": "hello", "arguments": ["x"]})
        )
    )["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api!(
        &app,
        TestRequest::get().uri(&format!("/api/projects/acme/runs/{run}/result?wait=20"))
    );
    // The result can be known a moment before the run's last write is readable: wait until
    // the page shows the run finished.
    let mut tries = 0;
    let (version, live) = loop {
        let page = fetch!(&app, format!("/projects/acme/runs/{run}"));
        let html = check_page(&page, StatusCode::OK);
        let root = html.select(&sel("[data-testid=run-page]")).next().unwrap();
        let version = root.value().attr("data-version").unwrap().to_owned();
        let live = root.value().attr("data-live").unwrap().to_owned();
        tries += 1;
        if live == "false" || tries == 50 {
            break (version, live);
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(live, "false");

    // An old version: the current fragment, then the end.
    let events = fetch!(
        &app,
        format!("/projects/acme/runs/{run}/events?version=old")
    );
    assert_eq!(events.status, StatusCode::OK);
    assert!(events.content_type.starts_with("text/event-stream"));
    assert!(events.csp.is_some());
    assert!(
        events
            .body
            .starts_with(&format!("id: {version}\nevent: fragment\ndata: ")),
        "{}",
        events.body
    );
    assert!(events.body.contains("data-testid=\"run-main\""));
    assert!(events.body.ends_with("event: done\ndata: \n\n"));
    // The current version (here via Last-Event-ID): nothing to send but the end.
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/projects/acme/runs/{run}/events"))
            .insert_header(("Last-Event-ID", version.as_str()))
            .to_request(),
    )
    .await;
    let same = answer(resp).await;
    assert_eq!(same.body, "event: done\ndata: \n\n");
}

#[actix_rt::test]
async fn ui_assets_are_cached_and_within_budget() {
    let h = harness().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    for asset in assets::ALL {
        let resp = test::call_service(
            &app,
            TestRequest::get().uri(&assets::url(asset)).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let headers = resp.headers().clone();
        assert!(
            headers
                .get("cache-control")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff");
        let etag = headers.get("etag").unwrap().to_str().unwrap().to_owned();
        assert_eq!(test::read_body(resp).await.as_ref(), asset.body);
        let again = test::call_service(
            &app,
            TestRequest::get()
                .uri(&assets::url(asset))
                .insert_header(("If-None-Match", etag))
                .to_request(),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
    let missing = fetch!(&app, "/static/nope.js");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let gzipped = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap().len()
    };
    let js = gzipped(assets::JS.body);
    let css = gzipped(assets::CSS.body);
    println!("ui.js {js} B gzipped, ui.css {css} B gzipped");
    assert!(
        js <= 20 * 1024,
        "ui.js is {js} bytes gzipped (budget 20 KB)"
    );
    assert!(
        js + css <= 60 * 1024,
        "JS + CSS are {} bytes gzipped (budget 60 KB)",
        js + css
    );
}

#[actix_rt::test]
async fn ui_live_stream_follows_a_running_run_to_its_end() {
    let h = harness().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    let post = |uri: &str, body: Json| TestRequest::post().uri(uri).set_json(body);
    api!(&app, post("/api/projects", json!({"name": "acme"})));
    api!(
        &app,
        post(
            "/api/projects/acme/environments",
            json!({"name": "production"})
        )
    );
    let project = h.state.coflux.existing_project("acme").await.unwrap();
    let _worker = project
        .serve("production", Repository::new().with(gate))
        .await
        .unwrap();
    let run = api!(
        &app,
        post(
            "/api/projects/acme/environments/production/runs",
            json!({"module": "ui", "target": "gate", "arguments": []})
        )
    )["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = fetch!(&app, format!("/projects/acme/runs/{run}"));
    let html = check_page(&page, StatusCode::OK);
    let root = html.select(&sel("[data-testid=run-page]")).next().unwrap();
    assert_eq!(root.value().attr("data-live"), Some("true"));
    let version = root.value().attr("data-version").unwrap().to_owned();
    let events = root.value().attr("data-events").unwrap().to_owned();
    assert!(events.starts_with(&format!("/projects/acme/runs/{run}/events")));

    // Open the gate a little later: the stream sends the finished run, then ends.
    actix_rt::spawn(async {
        actix_rt::time::sleep(std::time::Duration::from_millis(400)).await;
        OPEN.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let stream = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let separator = if events.contains('?') { '&' } else { '?' };
        fetch!(&app, format!("{events}{separator}version={version}"))
    })
    .await
    .expect("the stream ends once the run has finished");
    let fragments: Vec<&str> = stream
        .body
        .split("\n\n")
        .filter(|e| e.contains("event: fragment"))
        .collect();
    assert!(!fragments.is_empty(), "{}", stream.body);
    assert!(
        !stream.body.contains(&format!("id: {version}\n")),
        "the page's own version is not sent again"
    );
    let last = fragments.last().unwrap();
    assert!(last.contains("st-value"), "{last}");
    assert!(!last.contains("data-testid=\"cancel-run\""), "{last}");
    assert!(stream.body.ends_with("event: done\ndata: \n\n"));
}

#[actix_rt::test]
async fn ui_project_stream_updates_the_sidebar_and_runs() {
    let h = harness().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    let post = |uri: &str, body: Json| TestRequest::post().uri(uri).set_json(body);
    api!(&app, post("/api/projects", json!({"name": "acme"})));
    let envs = "/api/projects/acme/environments";
    api!(&app, post(envs, json!({"name": "production"})));
    let project = h.state.coflux.existing_project("acme").await.unwrap();
    let _worker = project
        .serve("production", Repository::new().with(hello))
        .await
        .unwrap();

    let page = check_page(&fetch!(&app, "/projects/acme"), StatusCode::OK);
    let root = page
        .select(&sel("[data-testid=project-page]"))
        .next()
        .unwrap();
    let events = root.value().attr("data-events").unwrap().to_owned();
    assert_eq!(events, "/projects/acme/events");
    let resp = test::call_service(
        &app,
        TestRequest::get()
            .uri(&format!("{events}?version=old"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("content-security-policy"));
    let mut body = resp.into_body();
    let first = event_containing(&mut body, "event: fragment").await;
    assert!(first.contains("id=\"project-sidebar\"") && first.contains("id=\"project-runs\""));
    assert!(!first.contains("data-testid=\"run-row\""), "no runs yet");

    // A run submitted now shows up in the open stream.
    let run = api!(
        &app,
        post(
            "/api/projects/acme/environments/production/runs",
            json!({"module": "ui", "target": "hello", "arguments": ["x"]})
        )
    )["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let update = event_containing(&mut body, &format!(">{run}<")).await;
    assert!(update.contains("data-testid=\"run-row\""), "{update}");

    // Unknown projects and environments answer the 404 page, not a stream.
    for uri in [
        "/projects/ghost/events",
        "/projects/acme/events?environment=ghost",
    ] {
        let page = check_page(&fetch!(&app, uri), StatusCode::NOT_FOUND);
        assert_eq!(count(&page, "error-page"), 1, "{uri}");
    }
}
