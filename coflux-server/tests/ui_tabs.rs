//! The run page's Assets and Metrics tabs through `create_app`: a run returning a persisted
//! asset lists its files with download links that answer the bytes; metrics show as SVG
//! polylines and progress bars; hostile names come back escaped.

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use coflux_core::sdk::{Asset, Failure, Repository, workflow};
use coflux_server::create_app;
use coflux_server::logs::metrics::MetricRecord;
use serde_json::{Value as Json, json};

#[path = "support/ui_pages.rs"]
#[macro_use]
mod pages;
use pages::*;

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
