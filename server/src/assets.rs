//! The site's static files (wasm, js, css, icons), embedded in the binary at release build
//! time so that `comfydeck` is one self-contained file. Debug builds read them from disk.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../target/site"]
#[allow_missing = true]
struct SiteAssets;

/// Whether `path` (as requested, with its leading slash) names an embedded file.
pub fn exists(path: &str) -> bool {
    let name = path.trim_start_matches('/');
    !name.is_empty() && SiteAssets::get(name).is_some()
}

/// Serves an embedded file with an ETag; `None` when there is no such file.
pub fn serve(path: &str, request_headers: &HeaderMap) -> Option<Response> {
    let name = path.trim_start_matches('/');
    if name.is_empty() {
        return None;
    }
    let file = SiteAssets::get(name)?;
    let etag = format!("\"{}\"", hex_prefix(&file.metadata.sha256_hash()));
    let mime = file.metadata.mimetype().to_string();
    // The wasm, js and css keep fixed names across builds, so browsers must revalidate them
    // (a cheap 304 thanks to the ETag); icons can be cached for a day.
    let cache = if name.starts_with("pkg/") {
        "no-cache"
    } else {
        "public, max-age=86400"
    };
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).ok()?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    Some(response)
}

fn hex_prefix(hash: &[u8; 32]) -> String {
    hash[..12].iter().map(|b| format!("{b:02x}")).collect()
}
