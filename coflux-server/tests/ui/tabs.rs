//! The run page's Assets and Metrics tabs through `create_app`: a run returning a persisted
//! asset lists its files with download links that answer the bytes; metrics show as SVG
//! polylines and progress bars; hostile names come back escaped. Compare: a step re-run in a
//! child environment with changed code is marked and diffed against the parent's execution.

use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use coflux_core::sdk::{Asset, Failure, Repository, task, workflow};
use coflux_server::create_app;
use coflux_server::logs::metrics::MetricRecord;
use serde_json::{Value as Json, json};

use crate::pages::*;

/// Persists a two-file asset (one with a hostile name) and returns it.
#[workflow(module = "tabs")]
async fn report() -> Result<Asset, Failure> {
    let dir = tempfile::tempdir().map_err(|e| Failure::new("io", e.to_string()))?;
    std::fs::write(dir.path().join("summary.txt"), "all good\n")
        .and_then(|()| std::fs::write(dir.path().join("x<b>.csv"), "a,b\n1,2\n"))
        .map_err(|e| Failure::new("io", e.to_string()))?;
    Asset::dir(dir.path())
        .name(XSS_SCRIPT)
        .persist()
        .await
        .map_err(|e| Failure::new("asset", e.to_string()))
}

/// The "code version" of [`score`]: the test changes it between the run and the re-run.
static VERSION: AtomicU32 = AtomicU32::new(1);

/// Scores `n` with the current code version.
#[task(module = "tabs")]
async fn score(n: u32) -> Result<Json, Failure> {
    let v = VERSION.load(Ordering::SeqCst);
    Ok(json!({"score": n * v, "version": v, "label": XSS_IMG, "same": [1, 2]}))
}

/// Calls [`score`].
#[workflow(module = "tabs")]
async fn pipeline() -> Result<Json, Failure> {
    Ok(score.call(3).await?)
}

#[actix_rt::test]
async fn ui_compare_marks_and_diffs_a_step_rerun_in_a_child_environment() {
    let h = harness().await;
    let app = test::init_service(create_app(h.state.clone())).await;
    let post = |uri: &str, body: Json| TestRequest::post().uri(uri).set_json(body);
    api!(&app, post("/api/projects", json!({"name": "acme"})));
    let envs = "/api/projects/acme/environments";
    api!(&app, post(envs, json!({"name": "production"})));
    api!(
        &app,
        post(envs, json!({"name": "dev", "parent": "production"}))
    );
    let project = h.state.coflux.existing_project("acme").await.unwrap();
    let repo = || Repository::new().with(pipeline).with(score);
    let _prod = project.serve("production", repo()).await.unwrap();
    let _dev = project.serve("dev", repo()).await.unwrap();
    let run = project.submit("production", &pipeline, ()).await.unwrap();
    run.raw_result().await.unwrap();
    let base = format!("/projects/acme/runs/{}", run.run);
    let score_step = format!("{}:2", run.run);

    // No difference before the re-run; production is offered from dev.
    let page = check_page(
        &fetch!(&app, format!("{base}?environment=dev&compare=production")),
        StatusCode::OK,
    );
    let summary = page
        .select(&sel("[data-testid=compare-summary]"))
        .next()
        .unwrap();
    assert_eq!(summary.value().attr("data-differences"), Some("0"));
    let plain = check_page(
        &fetch!(&app, format!("{base}?environment=dev")),
        StatusCode::OK,
    );
    assert!(text_of(&plain, "compare-chooser").contains("production"));
    assert_eq!(count(&plain, "compare-summary"), 0);

    // "Changed code" re-run in dev.
    VERSION.store(2, Ordering::SeqCst);
    let rerun = project
        .rerun_step(score_step.parse().unwrap(), Some("dev"))
        .await
        .unwrap();
    project.execution_result(rerun).await.unwrap();

    let url = format!("{base}?environment=dev&compare=production&step={score_step}");
    let compare_page = fetch!(&app, url);
    snapshot("compare", &compare_page);
    let page = check_page(&compare_page, StatusCode::OK);
    let summary = page
        .select(&sel("[data-testid=compare-summary]"))
        .next()
        .unwrap();
    assert_eq!(summary.value().attr("data-differences"), Some("1"));
    let marked: Vec<(String, Option<String>)> = page
        .select(&sel("[data-testid=graph-node]"))
        .map(|n| {
            let a = n.value();
            (
                a.attr("data-step").unwrap().to_owned(),
                a.attr("data-differs").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        marked,
        [
            (format!("{}:1", run.run), None),
            (score_step.clone(), Some("different value".to_owned())),
        ]
    );
    let changes: Vec<String> = page
        .select(&sel("[data-testid=diff-change]"))
        .map(|li| li.text().collect())
        .collect();
    assert_eq!(
        changes,
        ["$.score 3 → 6", "$.version 1 → 2"],
        "only what changed"
    );
    let table = text_of(&page, "compare");
    assert!(
        table.contains(&format!("{score_step}:1 in production")),
        "{table}"
    );
    assert!(table.contains(&format!("{score_step}:2 in dev")), "{table}");

    // The parent's view is unchanged, and the step panel there compares with dev.
    let from_prod = check_page(
        &fetch!(&app, format!("{base}?compare=dev&step={score_step}")),
        StatusCode::OK,
    );
    assert!(text_of(&from_prod, "compare").contains(&format!("{score_step}:2 in dev")));
    assert!(text_of(&from_prod, "result-value").contains("\"score\": 3"));

    // An unknown environment is a 404 page; the live stream keeps the comparison.
    let ghost = check_page(
        &fetch!(&app, format!("{base}?compare=ghost")),
        StatusCode::NOT_FOUND,
    );
    assert_eq!(count(&ghost, "error-page"), 1);
    let events = fetch!(
        &app,
        format!("{base}/events?environment=dev&compare=production&version=old")
    );
    assert!(events.body.contains("data-testid=\"compare-summary\""));
}

#[actix_rt::test]
async fn ui_run_tabs_list_assets_and_draw_metrics() {
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
        .serve("production", Repository::new().with(report))
        .await
        .unwrap();
    let run = project.submit("production", &report, ()).await.unwrap();
    run.raw_result().await.unwrap();
    let base = format!("/projects/acme/runs/{}", run.run);

    // Assets: one asset, two files, each downloadable.
    let assets_page = fetch!(&app, format!("{base}?tab=assets"));
    snapshot("assets", &assets_page);
    let page = check_page(&assets_page, StatusCode::OK);
    assert_eq!(count(&page, "tab-assets"), 1);
    assert_eq!(count(&page, "asset"), 1, "{}", page.html());
    assert_eq!(count(&page, "asset-file"), 2);
    assert!(text_of(&page, "asset").contains(XSS_SCRIPT));
    assert!(text_of(&page, "asset-files").contains("x<b>.csv"));
    let links: Vec<String> = page
        .select(&sel("[data-testid=asset-download]"))
        .map(|a| a.value().attr("href").unwrap().to_owned())
        .collect();
    let mut bodies = Vec::new();
    for link in &links {
        let resp = test::call_service(&app, TestRequest::get().uri(link).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK, "{link}");
        bodies.push(String::from_utf8(test::read_body(resp).await.to_vec()).unwrap());
    }
    bodies.sort();
    assert_eq!(bodies, ["a,b\n1,2\n", "all good\n"]);
    let record = page
        .select(&sel("[data-testid=asset-record]"))
        .next()
        .unwrap();
    api!(
        &app,
        TestRequest::get().uri(record.value().attr("href").unwrap())
    );

    // Metrics: none yet, then a series and a progress metric.
    let empty = check_page(&fetch!(&app, format!("{base}?tab=metrics")), StatusCode::OK);
    assert_eq!(count(&empty, "metrics-empty"), 1);
    let execution = run.execution;
    let mut records = vec![MetricRecord::Define {
        execution,
        key: "done".into(),
        definition: json!({"progress": true, "upper": 10}),
        timestamp_ms: 1,
    }];
    for i in 0..5 {
        records.push(MetricRecord::Point {
            execution,
            key: XSS_IMG.into(),
            value: f64::from(i * i),
            at: f64::from(i),
            timestamp_ms: 2 + i as u64,
        });
    }
    records.push(MetricRecord::Point {
        execution,
        key: "done".into(),
        value: 4.0,
        at: 1.0,
        timestamp_ms: 9,
    });
    h.state.logs.append_metrics("acme", records).unwrap();
    h.state.logs.flush().await.unwrap();
    let metrics_page = fetch!(&app, format!("{base}?tab=metrics"));
    snapshot("metrics", &metrics_page);
    let page = check_page(&metrics_page, StatusCode::OK);
    assert_eq!(count(&page, "metrics-execution"), 1);
    assert_eq!(count(&page, "metric-series"), 1);
    let line = page
        .select(&sel("[data-testid=metric-line]"))
        .next()
        .expect("a polyline");
    assert_eq!(
        line.value().attr("points").unwrap().split(' ').count(),
        5,
        "one vertex per point"
    );
    assert!(text_of(&page, "metric-series").contains(XSS_IMG));
    let bar = page
        .select(&sel("[data-testid=metric-progress] rect.done"))
        .next()
        .expect("a progress bar");
    assert_eq!(bar.value().attr("width"), Some("128.0"), "4 of 10");
    // The live stream serves the tab too.
    let events = fetch!(&app, format!("{base}/events?tab=metrics&version=old"));
    assert!(events.body.contains("data-testid=\"metric-line\""));
}
