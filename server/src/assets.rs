//! The site's static files (wasm, js, css, icons), embedded in the binary at release build
//! time so that `comfydeck` is one self-contained file. Debug builds read them from disk.
//!
//! `scripts/build.sh` also writes a brotli copy at the highest quality beside the wasm, js and
//! css (`comfydeck.wasm.br`, …); a browser that accepts brotli gets that copy as it is, so the
//! response layer's on-the-fly compression (a fast, lower quality) never runs on them. A copy
//! older than its file is ignored.
//!
//! The front is split (`cargo leptos build --split`): beside `comfydeck.wasm` lie one wasm chunk
//! per lazy route and the chunks they share, the loader `__wasm_split.*.js`, and
//! `__wasm_split_manifest.json`, which says which chunks each route needs; all are embedded.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::ArcStoredValue;
use leptos::WasmSplitManifest;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../target/site"]
#[allow_missing = true]
struct SiteAssets;

/// The split front's manifest, the name cargo-leptos gives it, and the chunk loader's name.
const SPLIT_MANIFEST: &str = "__wasm_split_manifest.json";
const SPLIT_LOADER: &str = "__wasm_split.______________________.js";

/// Which wasm chunks each lazy route needs, read once from the embedded manifest; `None` when
/// the front was built without `--split`. Leptos's `HydrationScripts` looks for the manifest
/// on disk under `site-root`, which a self-contained binary does not have; provided as context,
/// it lets the server add a `<link rel="preload">` for each chunk of the route it renders, so
/// the browser fetches them while the main module loads instead of after it.
pub fn split_manifest(pkg_dir: &str) -> Option<WasmSplitManifest> {
    static MANIFEST: OnceLock<Option<WasmSplitManifest>> = OnceLock::new();
    MANIFEST
        .get_or_init(|| {
            let file = SiteAssets::get(&format!("{pkg_dir}/{SPLIT_MANIFEST}"))?;
            let chunks: HashMap<String, Vec<String>> = serde_json::from_slice(&file.data)
                .inspect_err(|e| tracing::warn!("unreadable {SPLIT_MANIFEST}: {e}"))
                .ok()?;
            Some(WasmSplitManifest(ArcStoredValue::new((
                format!("/{pkg_dir}"),
                chunks,
                SPLIT_LOADER.to_string(),
            ))))
        })
        .clone()
}

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
    // A copy older than its file is stale (the front was rebuilt without `scripts/build.sh`).
    let precompressed = accepts_brotli(request_headers)
        .then(|| SiteAssets::get(&format!("{name}.br")))
        .flatten()
        .filter(|br| br.metadata.last_modified() >= file.metadata.last_modified());
    let mime = file.metadata.mimetype().to_string();
    let (file, encoding) = match precompressed {
        Some(br) => (br, Some("br")),
        None => (file, None),
    };
    let etag = format!("\"{}\"", hex_prefix(&file.metadata.sha256_hash()));
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
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Some(response)
}

/// Whether `Accept-Encoding` lists `br` (and not with `q=0`).
fn accepts_brotli(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            coding.eq_ignore_ascii_case("br") && !refused
        })
}

fn hex_prefix(hash: &[u8; 32]) -> String {
    hash[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn brotli_is_chosen_only_when_accepted() {
        assert!(accepts_brotli(&accept("gzip, deflate, br, zstd")));
        assert!(accepts_brotli(&accept("br;q=0.5")));
        assert!(!accepts_brotli(&accept("gzip, br;q=0")));
        assert!(!accepts_brotli(&accept("gzip, brotli")));
        assert!(!accepts_brotli(&HeaderMap::new()));
    }
}
