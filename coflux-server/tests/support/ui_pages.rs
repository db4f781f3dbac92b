//! Helpers of the UI tests: the app over a temporary data directory, answers as text, and
//! [`check_page`], which asserts the UI's headers and that no hostile input got through.

#![allow(dead_code)]

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test;
use actix_web::web;
use coflux_server::{AppState, ServerConfig};
use scraper::{Html, Selector};

/// A script element, as a hostile name, argument, message or result.
pub const XSS_SCRIPT: &str = "<script>alert('x')</script>";
/// An image with an event handler.
pub const XSS_IMG: &str = "<img src=x onerror=alert(1)>";
/// A `javascript:` URL.
pub const XSS_URL: &str = "javascript:alert(2)";

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub state: web::Data<AppState>,
}

pub async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let state = web::Data::new(
        AppState::open(&ServerConfig::new(dir.path()))
            .await
            .unwrap(),
    );
    Harness { _dir: dir, state }
}

/// A response: status, headers of interest, body text.
pub struct Answer {
    pub status: StatusCode,
    pub csp: Option<String>,
    pub nosniff: bool,
    pub content_type: String,
    pub body: String,
}

pub async fn answer<B: MessageBody>(resp: ServiceResponse<B>) -> Answer {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = resp.status();
    let csp = header("content-security-policy");
    let nosniff = header("x-content-type-options").as_deref() == Some("nosniff");
    let content_type = header("content-type").unwrap_or_default();
    let body = String::from_utf8_lossy(&test::read_body(resp).await).into_owned();
    Answer {
        status,
        csp,
        nosniff,
        content_type,
        body,
    }
}

macro_rules! fetch {
    ($app:expr, $uri:expr) => {
        answer(test::call_service($app, TestRequest::get().uri(&$uri).to_request()).await).await
    };
}

macro_rules! api {
    ($app:expr, $req:expr) => {{
        let resp = test::call_service($app, ($req).to_request()).await;
        let status = resp.status();
        let bytes = test::read_body(resp).await;
        let body: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        assert!(status.is_success(), "{status}: {body}");
        body
    }};
}

/// Asserts an HTML page: 200 (or `status`), the UI's headers, and no trace of unescaped
/// hostile input: no script but the UI's module, no event handler attributes, no inline
/// styles, no `javascript:` links, no images, no ANSI escapes.
pub fn check_page(a: &Answer, status: StatusCode) -> Html {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(
        a.content_type.starts_with("text/html"),
        "{}",
        a.content_type
    );
    let csp = a.csp.as_deref().expect("a CSP header");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(a.nosniff);
    assert!(!a.body.contains(XSS_SCRIPT), "raw script in {}", a.body);
    assert!(!a.body.contains(XSS_IMG), "raw img in the page");
    assert!(
        !a.body.contains('\u{1b}'),
        "an ANSI escape reached the page"
    );
    let html = Html::parse_document(&a.body);
    let scripts: Vec<_> = html.select(&sel("script")).collect();
    assert_eq!(scripts.len(), 1, "only the UI's module");
    assert!(
        scripts[0]
            .value()
            .attr("src")
            .is_some_and(|s| s.starts_with("/static/ui.js?v="))
    );
    assert!(scripts[0].inner_html().is_empty(), "no inline script");
    // Images only as asset previews, from the project's own blob route.
    for img in html.select(&sel("img")) {
        let v = img.value();
        assert_eq!(
            v.attr("data-testid"),
            Some("asset-image"),
            "an image in the page"
        );
        assert!(
            v.attr("src")
                .is_some_and(|s| s.starts_with("/api/projects/"))
        );
    }
    assert_eq!(html.select(&sel("[style]")).count(), 0, "no inline styles");
    assert_eq!(html.select(&sel("style")).count(), 0, "no style elements");
    for element in html.select(&sel("*")) {
        for (name, _) in element.value().attrs() {
            assert!(!name.starts_with("on"), "event handler attribute {name}");
        }
    }
    for link in html.select(&sel("a[href]")) {
        let href = link.value().attr("href").unwrap();
        assert!(
            href.starts_with('/') || href.starts_with('?') || href.starts_with('#'),
            "unexpected link {href}"
        );
    }
    html
}

/// Writes a page to `$COFLUX_UI_SNAPSHOTS/{name}.html` when that is set (to look at it).
pub fn snapshot(name: &str, a: &Answer) {
    if let Some(dir) = std::env::var_os("COFLUX_UI_SNAPSHOTS") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.html")),
            &a.body,
        )
        .unwrap();
    }
}

pub fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

pub fn count(html: &Html, testid: &str) -> usize {
    html.select(&sel(&format!("[data-testid=\"{testid}\"]")))
        .count()
}

pub fn text_of(html: &Html, testid: &str) -> String {
    html.select(&sel(&format!("[data-testid=\"{testid}\"]")))
        .map(|e| e.text().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a streaming response's events until one contains `needle` (or 10 s pass).
pub async fn event_containing<B>(body: &mut B, needle: &str) -> String
where
    B: actix_web::body::MessageBody + Unpin,
{
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let next = futures::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx));
        match actix_rt::time::timeout(std::time::Duration::from_secs(10), next).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
        if let Some(event) = text.split("\n\n").find(|e| e.contains(needle)) {
            return event.to_owned();
        }
    }
    panic!("no event containing {needle} in {text}");
}
