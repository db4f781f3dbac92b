//! The run page's Assets and Metrics tabs through `create_app`: a run returning a persisted
//! asset lists its files with download links that answer the bytes; metrics show as SVG
//! polylines and progress bars; hostile names come back escaped. Compare: a step re-run in a
//! child environment with changed code is marked and diffed against the parent's execution.
//! Memo and cache hits show their badges and link to their source; the workflow page's runs
//! follow the project's live stream.

use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use coflux_core::sdk::{Asset, Failure, Handle, Repository, task, workflow};
use coflux_server::create_app;
use coflux_server::logs::metrics::MetricRecord;
use serde_json::{Value as Json, json};

use crate::pages::*;

/// Persists a two-file asset (one with a hostile name) and returns it.
#[workflow(module = "tabs")]
async fn report() -> Result<Asset, Failure> {
    let dir = tempfile::tempdir().map_err(|e| Failure::new("io", e.to_string()))?;
    std::fs::write(dir.path().join("summary.txt"), "all good\n")
        .and_then(|()| std::fs::write(dir.path().join(HOSTILE_FILE), "a,b\n1,2\n"))
        .and_then(|()| std::fs::write(dir.path().join("plot.png"), "png bytes"))
        .map_err(|e| Failure::new("io", e.to_string()))?;
    Asset::dir(dir.path())
        .name(format!("{XSS_SCRIPT}\u{1b}[31m"))
        .persist()
        .await
        .map_err(|e| Failure::new("asset", e.to_string()))
}

/// A file name with markup (asset paths cannot hold control characters: the name has the
/// terminal escape).
const HOSTILE_FILE: &str = "x<b><img src=x onerror=alert(1)>.csv";

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

    // Assets: one asset, three files, each downloadable.
    let assets_page = fetch!(&app, format!("{base}?tab=assets"));
    snapshot("assets", &assets_page);
    let page = check_page(&assets_page, StatusCode::OK);
    assert_eq!(count(&page, "tab-assets"), 1);
    assert_eq!(count(&page, "asset"), 1, "{}", page.html());
    assert_eq!(count(&page, "asset-file"), 3);
    assert_eq!(
        count(&page, "asset-preview-link"),
        3,
        "text, CSV and an image"
    );
    assert!(text_of(&page, "asset").contains(XSS_SCRIPT));
    let files = text_of(&page, "asset-files");
    assert!(
        files.contains("x<b><img src=x onerror=alert(1)>.csv"),
        "{files}"
    );
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
    assert_eq!(bodies, ["a,b\n1,2\n", "all good\n", "png bytes"]);
    // Previews: text shown (escaped), an image loaded from the blob route.
    let previews: Vec<String> = page
        .select(&sel("[data-testid=asset-preview-link]"))
        .map(|a| a.value().attr("href").unwrap().to_owned())
        .collect();
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for link in &previews {
        let shown = check_page(&fetch!(&app, link), StatusCode::OK);
        texts.push(text_of(&shown, "asset-preview"));
        images.extend(
            shown
                .select(&sel("[data-testid=asset-image]"))
                .map(|i| i.value().attr("src").unwrap().to_owned()),
        );
    }
    texts.sort();
    assert_eq!(texts, ["", "a,b\n1,2\n", "all good\n"]);
    assert_eq!(images.len(), 1);
    assert!(links.contains(&images[0]), "{images:?}");
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

/// Squares `n`, memoised within a run.
#[task(module = "tabs", memo)]
async fn square(n: u32) -> Result<u32, Failure> {
    Ok(n * n)
}

/// Calls [`square`] twice with the same argument: the second call is a memo hit.
#[workflow(module = "tabs")]
async fn twice() -> Result<u32, Failure> {
    Ok(square.call(3).await? + square.call(3).await?)
}

/// Doubles `n`, cached across runs.
#[task(module = "tabs", cache)]
async fn double(n: u32) -> Result<u32, Failure> {
    Ok(2 * n)
}

/// Calls [`double`]: its second run takes the first run's result from the cache.
#[workflow(module = "tabs")]
async fn lookup() -> Result<u32, Failure> {
    Ok(double.call(5).await?)
}

/// Adds one to a result it waits for before starting.
#[task(module = "tabs", wait_for = ["n"])]
async fn plus_one(n: Handle<u32>) -> Result<u32, Failure> {
    Ok(n.result().await? + 1)
}

/// Hands a running [`double`] to [`plus_one`]: a dependency edge between two children.
#[workflow(module = "tabs")]
async fn chained() -> Result<u32, Failure> {
    let doubled = double.submit(4);
    Ok(plus_one.call(doubled).await?)
}

/// The `href` of every `[data-testid=execution-link]` inside `scope`.
fn execution_links(page: &scraper::Html, scope: &str) -> Vec<String> {
    page.select(&sel(&format!(
        "[data-testid={scope}] [data-testid=execution-link]"
    )))
    .map(|a| a.value().attr("href").unwrap().to_owned())
    .collect()
}

#[actix_rt::test]
async fn ui_memo_and_cache_hits_show_badges_and_their_source() {
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
    let repository = Repository::new()
        .with(square)
        .with(twice)
        .with(double)
        .with(lookup)
        .with(plus_one)
        .with(chained);
    let _worker = project.serve("production", repository).await.unwrap();

    // Memo: one `square` step, reused by the root's second call.
    let run = project.submit("production", &twice, ()).await.unwrap();
    assert_eq!(run.result::<u32>().await.unwrap(), 18);
    let base = format!("/projects/acme/runs/{}", run.run);
    let page = check_page(&fetch!(&app, base), StatusCode::OK);
    assert_eq!(count(&page, "graph-node"), 2);
    assert_eq!(count(&page, "memo-badge"), 1, "the reused step is marked");
    let square_step = format!("{}:2", run.run);
    let root = format!("{}:1:1", run.run);
    let panel = check_page(
        &fetch!(&app, format!("{base}?step={square_step}")),
        StatusCode::OK,
    );
    assert_eq!(count(&panel, "memo-badge"), 2, "graph node and panel");
    assert!(text_of(&panel, "options").contains("Memoall parameters"));
    let callers = execution_links(&panel, "memo-callers");
    assert_eq!(callers.len(), 1);
    assert!(
        callers[0].contains(&format!("step={}%3A1&attempt=1", run.run)),
        "{callers:?}"
    );
    let caller_panel = check_page(
        &fetch!(&app, format!("{base}?step={}:1", run.run)),
        StatusCode::OK,
    );
    assert!(text_of(&caller_panel, "memo-reuses").contains(&format!("{square_step}:1")));
    assert!(!text_of(&panel, "memo-callers").is_empty() && root.ends_with(":1:1"));
    let list = check_page(&fetch!(&app, format!("{base}?view=list")), StatusCode::OK);
    assert_eq!(count(&list, "memo-badge"), 1);

    // A dependency: `plus_one` waited for `double`, drawn as a dependency edge.
    let run = project.submit("production", &chained, ()).await.unwrap();
    assert_eq!(run.result::<u32>().await.unwrap(), 9);
    let page = check_page(
        &fetch!(&app, format!("/projects/acme/runs/{}", run.run)),
        StatusCode::OK,
    );
    assert_eq!(count(&page, "graph-node"), 3);
    let dependency = page
        .select(&sel("path.dependency"))
        .next()
        .expect("a dependency edge");
    assert_eq!(
        dependency.value().attr("d").unwrap().matches('M').count(),
        1
    );

    // Cache: the second run's `double` step is a cache hit on the first run's execution.
    let first = project.submit("production", &lookup, ()).await.unwrap();
    assert_eq!(first.result::<u32>().await.unwrap(), 10);
    let second = project.submit("production", &lookup, ()).await.unwrap();
    assert_eq!(second.result::<u32>().await.unwrap(), 10);
    let source = format!("{}:2:1", first.run);
    let base = format!("/projects/acme/runs/{}", second.run);
    let page = check_page(&fetch!(&app, base), StatusCode::OK);
    assert_eq!(count(&page, "cached-badge"), 1);
    let node = page
        .select(&sel("[data-testid=graph-node][data-source]"))
        .next()
        .expect("a node with its cache source");
    assert_eq!(node.value().attr("data-source"), Some(source.as_str()));
    let panel = check_page(
        &fetch!(&app, format!("{base}?step={}:2", second.run)),
        StatusCode::OK,
    );
    assert_eq!(count(&panel, "cache-key"), 1, "the step's cache key");
    let links = execution_links(&panel, "cache-source");
    assert_eq!(
        links,
        [format!(
            "/projects/acme/runs/{}?step={}%3A2&attempt=1",
            first.run, first.run
        )]
    );
    let list = check_page(&fetch!(&app, format!("{base}?view=list")), StatusCode::OK);
    assert_eq!(count(&list, "cached-badge"), 1);
    assert!(text_of(&list, "step-list").contains(&source));
    // The status filter: the cache hit and its caller in the graph, the hit alone in the list.
    let hits = check_page(&fetch!(&app, format!("{base}?show=cached")), StatusCode::OK);
    assert_eq!(count(&hits, "graph-node"), 2);
    assert_eq!(text_of(&hits, "shown-count"), " (2 of 2 steps)");
    let hits = check_page(
        &fetch!(&app, format!("{base}?show=cached&view=list")),
        StatusCode::OK,
    );
    assert_eq!(count(&hits, "step-row"), 1);
    let none = check_page(&fetch!(&app, format!("{base}?show=active")), StatusCode::OK);
    assert_eq!(
        count(&none, "graph-node"),
        0,
        "nothing active: completed steps hidden"
    );
    // The source answers: the link leads somewhere real.
    let target = check_page(&fetch!(&app, links[0]), StatusCode::OK);
    assert_eq!(count(&target, "step-panel"), 1);
}

/// Lets [`held`] finish.
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs until the test releases it.
#[workflow(module = "tabs")]
async fn held() -> Result<u32, Failure> {
    while !RELEASE.load(Ordering::SeqCst) {
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(1)
}

#[actix_rt::test]
async fn ui_workflow_page_follows_its_runs_live() {
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
    let repository = || Repository::new().with(held).with(twice).with(square);
    project
        .register_manifests("production", repository().definitions())
        .await
        .unwrap();
    let _worker = project.serve("production", repository()).await.unwrap();
    let other = project.submit("production", &twice, ()).await.unwrap();
    other.raw_result().await.unwrap();

    let url = "/projects/acme/workflows/tabs/held?environment=production";
    let page = check_page(&fetch!(&app, url), StatusCode::OK);
    assert_eq!(count(&page, "run-row"), 0, "only this workflow's runs");
    let events = page
        .select(&sel("[data-testid=workflow-page]"))
        .next()
        .unwrap()
        .value()
        .attr("data-events")
        .unwrap()
        .to_owned();
    assert_eq!(
        events,
        "/projects/acme/events?environment=production&workflow=tabs%2Fheld"
    );
    let resp = test::call_service(&app, TestRequest::get().uri(&events).to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = event_containing(&mut body, "event: fragment").await;
    assert!(first.contains("id=\"project-runs\""));
    assert!(!first.contains("data-testid=\"run-row\""), "{first}");

    // A run of the workflow shows up in the open stream, then shows its end.
    let run = project.submit("production", &held, ()).await.unwrap();
    let row = event_containing(&mut body, &format!(">{}<", run.run)).await;
    assert!(row.contains("data-testid=\"run-row\""), "{row}");
    assert!(!row.contains("badge st-value"), "{row}");
    assert!(
        !row.contains(&format!(">{}<", other.run)),
        "another workflow's run"
    );
    RELEASE.store(true, Ordering::SeqCst);
    run.raw_result().await.unwrap();
    let done = event_containing(&mut body, "badge st-value").await;
    assert!(done.contains(&format!(">{}<", run.run)), "{done}");
}
