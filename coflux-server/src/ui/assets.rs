//! The UI's static assets, embedded in the binary: `ui.js` (one ES module) and `ui.css`.
//! They are served under `/static/{name}?v={hash}` with an ETag and a year-long immutable
//! cache: the content hash in the URL changes whenever the file does.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

/// An embedded asset.
pub struct Asset {
    /// Its file name under `/static/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The UI's script.
pub const JS: &Asset = &Asset {
    name: "ui.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("static/ui.js"),
};

/// The UI's stylesheet.
pub const CSS: &Asset = &Asset {
    name: "ui.css",
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("static/ui.css"),
};

/// Every embedded asset.
pub const ALL: [&Asset; 2] = [JS, CSS];

static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ALL.iter()
        .map(|a| hex::encode(&Sha256::digest(a.body)[..8]))
        .collect()
});

/// The content hash of an asset (16 hex digits).
pub fn hash(asset: &Asset) -> &'static str {
    let index = ALL.iter().position(|a| a.name == asset.name).unwrap_or(0);
    &HASHES[index]
}

/// The URL of an asset, with its hash.
pub fn url(asset: &Asset) -> String {
    format!("/static/{}?v={}", asset.name, hash(asset))
}

/// `GET /static/{name}`.
pub(crate) async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = ALL.iter().find(|a| a.name == name.as_str()) else {
        let mut response = HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found");
        super::secure(&mut response);
        return response;
    };
    let etag = format!("\"{}\"", hash(asset));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .content_type(asset.content_type)
            .body(asset.body)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    super::secure(&mut response);
    response
}
