//! The web UI in a real browser: headless Chromium driven over WebDriver (`fantoccini` against
//! `chromedriver`), the app served by a real HTTP server on 127.0.0.1 with in-process workers.
//! Each test starts its own chromedriver on a free port; one browser runs at a time. A failed
//! test saves a screenshot to `target/ui-screenshots/<test>.png`.
//!
//! Without `chromedriver` (Debian: `chromium chromium-driver`) the tests print a message and
//! pass, unless `COFLUX_UI_TESTS=require` is set.

use crate::ui_tree;
use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpServer, web};
use anyhow::{Context as _, anyhow, bail};
use coflux_core::sdk::{Failure, Repository, workflow};
use coflux_core::{Project, Worker};
use coflux_server::logs::LogRecord;
use coflux_server::{AppState, ServerConfig, create_app};
use coflux_tests::{Proc, free_port};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value as Json, json};

/// Says hello.
#[workflow(module = "web")]
async fn hello(name: String) -> Result<String, Failure> {
    Ok(format!("hello {name}"))
}

/// Says hello after a while (long enough to see it running).
#[workflow(module = "web")]
async fn greet(name: String) -> Result<String, Failure> {
    actix_rt::time::sleep(Duration::from_millis(3_000)).await;
    Ok(format!("hello {name}"))
}

/// Runs until cancelled.
#[workflow(module = "web")]
async fn forever() -> Result<u32, Failure> {
    loop {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens [`gate`].
static OPEN: AtomicBool = AtomicBool::new(false);

/// Waits until the test opens it.
#[workflow(module = "web")]
async fn gate() -> Result<u32, Failure> {
    while !OPEN.load(Ordering::SeqCst) {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(1)
}

/// One browser at a time (the machine has two cores).
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a wait for the page lasts.
const WAIT: Duration = Duration::from_secs(30);

/// An executable on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `chromedriver` and the browser, or `None` (then the test is skipped, or fails when
/// `COFLUX_UI_TESTS=require`).
fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let found =
        on_path(&["chromedriver"]).zip(on_path(&["chromium", "chromium-browser", "google-chrome"]));
    if found.is_none() {
        let required = std::env::var("COFLUX_UI_TESTS").is_ok_and(|v| v == "require");
        assert!(
            !required,
            "{test}: chromedriver or chromium not installed and COFLUX_UI_TESTS=require"
        );
        println!(
            "{test}: skipped: chromedriver not installed (apt-get install chromium chromium-driver)"
        );
    }
    found
}

/// Runs `body` with a fresh headless browser; on failure saves a screenshot, then fails.
async fn scenario<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Some((driver, chromium)) = tools(test) else {
        return;
    };
    let _one = BROWSER.lock().await;
    let port = free_port();
    let _driver = Proc::spawn(
        "chromedriver",
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://{address}"))
        .await
        .expect("a chromedriver session");
    let outcome = std::panic::AssertUnwindSafe(body(client.clone()))
        .catch_unwind()
        .await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(panic) => Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()),
        ),
    };
    if failure.is_some() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("ui-screenshots");
        if let Ok(png) = client.screenshot().await {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("{test}.png")), png);
            eprintln!("screenshot: {}", dir.join(format!("{test}.png")).display());
        }
    }
    let _ = client.close().await;
    if let Some(message) = failure {
        panic!("{test}: {message}");
    }
}

/// The app on a real HTTP server, a project `acme` with `production` and its child `dev`,
/// each served by an in-process worker.
struct Site {
    base: String,
    state: web::Data<AppState>,
    project: Project,
    _workers: Vec<Worker>,
    _dir: tempfile::TempDir,
}

impl Site {
    async fn start(repository: fn() -> Repository) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let state = web::Data::new(AppState::open(&ServerConfig::new(dir.path())).await?);
        let project = state.coflux.project("acme").await?;
        project.ensure_environment("production", None).await?;
        project
            .ensure_environment("dev", Some("production"))
            .await?;
        let mut workers = Vec::new();
        for environment in ["production", "dev"] {
            project
                .register_manifests(environment, repository().definitions())
                .await?;
            workers.push(project.serve(environment, repository()).await?);
        }
        let s = state.clone();
        let server = HttpServer::new(move || create_app(s.clone()))
            .workers(1)
            .bind(("127.0.0.1", 0))?;
        let base = format!("http://{}", server.addrs()[0]);
        actix_rt::spawn(server.run());
        Ok(Self {
            base,
            state,
            project,
            _workers: workers,
            _dir: dir,
        })
    }

    fn run_url(&self, run: &str, query: &str) -> String {
        format!(
            "{}/projects/acme/runs/{run}?environment=production{query}",
            self.base
        )
    }
}

/// Evaluates a JavaScript expression in the page.
async fn eval(client: &Client, expression: &str) -> anyhow::Result<Json> {
    Ok(client
        .execute(&format!("return ({expression});"), Vec::new())
        .await?)
}

/// Waits until a JavaScript expression is truthy.
async fn until(client: &Client, what: &str, expression: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        // A navigation may be under way: errors count as "not yet".
        let value = eval(client, expression).await.unwrap_or(Json::Null);
        if !matches!(value, Json::Null | Json::Bool(false)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what} ({expression})");
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a page and waits for `ui.js` to be ready; marks the window so a reload shows.
async fn open(client: &Client, url: &str) -> anyhow::Result<()> {
    client.goto(url).await?;
    ready(client).await
}

/// Waits for the ready marker, then marks the window.
async fn ready(client: &Client) -> anyhow::Result<()> {
    until(
        client,
        "ui.js ready",
        "document.documentElement.dataset.ready",
    )
    .await?;
    eval(client, "window.__sameWindow = true").await?;
    Ok(())
}

/// Asserts the page was not reloaded since [`ready`].
async fn not_reloaded(client: &Client) -> anyhow::Result<()> {
    if eval(client, "window.__sameWindow === true").await? != Json::Bool(true) {
        bail!("the page was reloaded");
    }
    Ok(())
}

/// Clicks the element `css` selects, finding it again if a live update replaced it between
/// the find and the click (a stale element reference).
async fn click(client: &Client, css: &str) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        let element = client.find(Locator::Css(css)).await?;
        match element.click().await {
            Ok(()) => return Ok(()),
            Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Accepts the confirm dialog that a click opened.
async fn accept(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.accept_alert().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(anyhow!("no dialog: {e}")),
            Err(_) => actix_rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The run header's status badge (as a JS expression).
const RUN_STATUS: &str =
    "document.querySelector('[data-testid=run-header] [data-testid=status]')?.textContent";

#[actix_rt::test]
async fn ui_browser_submits_a_run_and_watches_it_finish() {
    scenario(
        "ui_browser_submits_a_run_and_watches_it_finish",
        |c| async move {
            let site = Site::start(|| Repository::new().with(greet)).await?;
            let page = format!(
                "{}/projects/acme/workflows/web/greet?environment=production",
                site.base
            );
            open(&c, &page).await?;
            let field = c
                .find(Locator::Css("[data-testid=run-form] [data-argument]"))
                .await?;
            field.send_keys("\"world\"").await?;
            click(&c, "[data-testid=run-submit]").await?;
            until(&c, "the run page", "location.pathname.includes('/runs/')").await?;
            ready(&c).await?;
            let first = eval(&c, RUN_STATUS).await?;
            if first == json!("value") {
                bail!("the run had finished before its page showed (expected it running)");
            }
            until(&c, "the run finished", &format!("{RUN_STATUS} === 'value'")).await?;
            until(
                &c,
                "the stream ended",
                "document.querySelector('.run-page').dataset.live === 'false'",
            )
            .await?;
            not_reloaded(&c).await
        },
    )
    .await;
}

#[actix_rt::test]
async fn ui_browser_reruns_a_step_in_a_child_environment() {
    scenario("ui_browser_reruns_a_step_in_a_child_environment", |c| async move {
        let site = Site::start(|| Repository::new().with(hello)).await?;
        let run = site.project.submit("production", &hello, ("x".to_string(),)).await?;
        let _: String = run.result().await?;
        open(&c, &site.run_url(&run.run.to_string(), &format!("&step={}:1", run.run))).await?;
        let panel = "document.querySelector('[data-testid=step-panel]')";
        until(&c, "the step panel", &format!("{panel}?.dataset.attempt === '1'")).await?;
        click(&c, "[data-testid=rerun-environment] option[value=dev]").await?;
        click(&c, "[data-testid=rerun]").await?;
        accept(&c).await?;
        until(&c, "attempt 2 selected", &format!("{panel}?.dataset.attempt === '2'")).await?;
        not_reloaded(&c).await?;
        let attempts = eval(&c, "document.querySelectorAll('[data-testid=attempt]').length").await?;
        if attempts != json!(2) {
            bail!("expected two attempts, got {attempts}");
        }
        let env = "document.querySelector('[data-testid=step-environment]')?.textContent";
        until(&c, "attempt 2 in dev", &format!("{env} === 'dev'")).await?;
        until(&c, "attempt 2 finished", &format!("{RUN_STATUS} === 'value' && document.querySelector('.run-page').dataset.live === 'false'")).await?;
        // Compare with production: the same code gives the same value.
        click(&c, "[data-testid=compare-with]").await?;
        until(&c, "the comparison", "document.querySelector('[data-testid=compare-summary]')?.dataset.differences === '0'").await?;
        until(&c, "the panel's comparison", "!!document.querySelector('[data-testid=compare] [data-testid=compare-same]')").await?;
        // Selecting the step's other attempt and another tab swaps the page in place.
        click(&c, "[data-testid=attempt]").await?;
        until(&c, "attempt 1 selected", &format!("{panel}?.dataset.attempt === '1'")).await?;
        until(&c, "its URL", "location.search.includes('attempt=1')").await?;
        click(&c, "[data-testid=tab-timeline]").await?;
        until(&c, "the timeline", "!!document.querySelector('[data-testid=timeline]')").await?;
        c.back().await?;
        until(&c, "the graph again", "!!document.querySelector('[data-testid=graph]')").await?;
        not_reloaded(&c).await
    })
    .await;
}

#[actix_rt::test]
async fn ui_browser_cancels_a_running_run() {
    scenario("ui_browser_cancels_a_running_run", |c| async move {
        let site = Site::start(|| Repository::new().with(forever)).await?;
        let run = site.project.submit("production", &forever, ()).await?;
        open(&c, &site.run_url(&run.run.to_string(), "")).await?;
        until(
            &c,
            "the run running",
            &format!("{RUN_STATUS} === 'running'"),
        )
        .await?;
        click(&c, "[data-testid=cancel-run]").await?;
        accept(&c).await?;
        until(
            &c,
            "the run cancelled",
            &format!("{RUN_STATUS} === 'cancelled'"),
        )
        .await?;
        until(
            &c,
            "no cancel button",
            "!document.querySelector('[data-testid=cancel-run]')",
        )
        .await?;
        not_reloaded(&c).await
    })
    .await;
}

#[actix_rt::test]
async fn ui_browser_follows_logs_live() {
    scenario("ui_browser_follows_logs_live", |c| async move {
        let site = Site::start(|| Repository::new().with(gate)).await?;
        let run = site.project.submit("production", &gate, ()).await?;
        open(&c, &site.run_url(&run.run.to_string(), "&tab=logs")).await?;
        let messages = "[...document.querySelectorAll('[data-testid=log-message]')].map(e => e.textContent).join('|')";
        for (i, line) in ["first line", "second line", "third line"].iter().enumerate() {
            site.state.logs.append(
                "acme",
                vec![LogRecord {
                    execution: run.execution,
                    timestamp_ms: 1_700_000_000_000 + i as u64,
                    level: 2,
                    template: Some((*line).to_string()),
                    values: Default::default(),
                }],
            )?;
            site.state.logs.flush().await?;
            until(&c, line, &format!("({messages}).includes('{line}')")).await?;
        }
        let rows = eval(&c, "document.querySelectorAll('[data-testid=log-row]').length").await?;
        if rows != json!(3) {
            bail!("expected 3 log rows, got {rows}");
        }
        // Followed: the frame is scrolled to its end.
        let at_end = "(f => !f || f.scrollHeight - f.scrollTop - f.clientHeight < 8)(document.querySelector('.logs-frame'))";
        until(&c, "the logs scrolled to the end", at_end).await?;
        OPEN.store(true, Ordering::SeqCst);
        until(&c, "the run finished", &format!("{RUN_STATUS} === 'value'")).await?;
        not_reloaded(&c).await
    })
    .await;
}

#[actix_rt::test]
async fn ui_browser_loads_a_thousand_step_run() {
    scenario("ui_browser_loads_a_thousand_step_run", |c| async move {
        let repository = || Repository::new().with(ui_tree::tree).with(ui_tree::node);
        let site = Site::start(repository).await?;
        let run = site.project.submit("production", &ui_tree::tree, (1_000u32,)).await?;
        let steps: u32 = run.result().await.context("the tree run")?;
        assert_eq!(steps, 1_000);
        let url = site.run_url(&run.run.to_string(), "");
        let mut figures = Vec::new();
        let mut paints = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            open(&c, &url).await?;
            let wall = started.elapsed().as_millis();
            // Paint entries are recorded after the frame is presented: wait for two frames.
            c.execute_async(
                "const done = arguments[0]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(null)));",
                Vec::new(),
            )
            .await?;
            let perf = eval(&c, "({ \
                fcp: performance.getEntriesByType('paint') \
                    .find(e => e.name === 'first-contentful-paint')?.startTime ?? null, \
                dcl: performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd ?? null, \
                ready: performance.getEntriesByName('coflux:ready')[0]?.startTime ?? null, \
                nodes: document.querySelectorAll('[data-testid=graph-node]').length })").await?;
            if perf["nodes"] != json!(1_000) {
                bail!("expected 1,000 graph nodes: {perf}");
            }
            let ready = perf["ready"].as_f64().context("a ready mark")?;
            let ms = |key: &str| perf[key].as_f64().map_or("n/a".into(), |f| format!("{f:.0}"));
            println!(
                "1,000-step run page: first contentful paint {} ms, DOMContentLoaded {} ms, \
                 ready {ready:.0} ms, driver wall {wall} ms",
                ms("fcp"),
                ms("dcl")
            );
            figures.push(ready);
            paints.extend(perf["fcp"].as_f64());
        }
        // The best of three first paints, as the ui bench's JSON key (a browser is needed).
        let paint = paints.iter().copied().fold(f64::INFINITY, f64::min);
        println!("{}", json!({ "first_paint_1000_ms": paint.round() }));
        // Generous (the budget is 1 s): the machine is shared and unoptimised here.
        let best = figures.iter().copied().fold(f64::INFINITY, f64::min);
        if best > 5_000.0 {
            bail!("the 1,000-step page became ready after {best:.0} ms at best");
        }
        Ok(())
    })
    .await;
}

#[actix_rt::test]
async fn ui_browser_workflow_page_lists_new_runs_live() {
    scenario(
        "ui_browser_workflow_page_lists_new_runs_live",
        |c| async move {
            let site = Site::start(|| Repository::new().with(greet)).await?;
            let page = format!(
                "{}/projects/acme/workflows/web/greet?environment=production",
                site.base
            );
            open(&c, &page).await?;
            let rows = "document.querySelectorAll('[data-testid=run-row]').length";
            if eval(&c, rows).await? != json!(0) {
                bail!("expected no runs yet");
            }
            // Submitted elsewhere (the API): the open page shows it, running, then finished.
            let run = site
                .project
                .submit("production", &greet, ("web".to_string(),))
                .await?;
            let row = format!(
                "document.querySelector('[data-testid=run-row][data-run={}]')",
                run.run
            );
            until(&c, "the new run listed", &format!("!!{row}")).await?;
            until(
                &c,
                "the run finished",
                &format!("{row}?.querySelector('[data-testid=status]')?.textContent === 'value'"),
            )
            .await?;
            not_reloaded(&c).await
        },
    )
    .await;
}
