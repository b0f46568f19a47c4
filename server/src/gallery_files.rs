//! The gallery's files, behind the login: originals (with Range, so videos seek, and
//! conditional requests) and cached thumbnails. Every path is checked by the engine: inside
//! the output folder, no `..`, not absolute, no symlink out.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::model::ErrorKind;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::AppError;
use crate::AppState;

/// `GET /api/gallery/file/{*path}`: the original output file.
pub async fn original(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let caller = match crate::auth::caller_of(request.extensions()) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match state.engine.gallery().original(&caller, &path).await {
        // The URL names a path, and a file there can be replaced: revalidate each time (a
        // 304 when unchanged).
        Ok(file) => serve(file, request, "private, no-cache").await,
        Err(e) => AppError::from_service(&e, &state.engine).into_response(),
    }
}

/// `GET /api/gallery/thumb/{*path}?v=<mtime>`: a small JPEG of an output image, made on the
/// first request and cached on the volume.
pub async fn thumbnail(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let caller = match crate::auth::caller_of(request.extensions()) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match state.engine.gallery().thumbnail(&caller, &path).await {
        // The page puts the file's mtime in the URL: a changed file gets a new URL.
        Ok(file) => serve(file, request, "private, max-age=31536000, immutable").await,
        Err(e) => AppError::from_service(&e, &state.engine).into_response(),
    }
}

async fn serve(file: std::path::PathBuf, request: Request, cache: &'static str) -> Response {
    let mut response = match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(e) => {
            return AppError::new(ErrorKind::Internal, e.to_string()).into_response();
        }
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}
