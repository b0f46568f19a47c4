//! The gallery's files, behind the login: originals (with Range, so videos seek, and
//! conditional requests) and cached thumbnails. Every path is checked by the engine: inside
//! the output folder, no `..`, not absolute, no symlink out.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::gallery::GalleryError;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::AppState;

/// `GET /api/gallery/file/{*path}`: the original output file.
pub async fn original(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    match state.engine.gallery().original(&path).await {
        // The URL names a path, and a file there can be replaced: revalidate each time (a
        // 304 when unchanged).
        Ok(file) => serve(file, request, "private, no-cache").await,
        Err(e) => error_response(e),
    }
}

/// `GET /api/gallery/thumb/{*path}?v=<mtime>`: a small JPEG of an output image, made on the
/// first request and cached on the volume.
pub async fn thumbnail(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    match state.engine.gallery().thumbnail(&path).await {
        // The page puts the file's mtime in the URL: a changed file gets a new URL.
        Ok(file) => serve(file, request, "private, max-age=31536000, immutable").await,
        Err(e) => error_response(e),
    }
}

async fn serve(file: std::path::PathBuf, request: Request, cache: &'static str) -> Response {
    let mut response = match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}

fn error_response(error: GalleryError) -> Response {
    let status = match &error {
        GalleryError::UnsafePath(_) | GalleryError::Invalid(_) => StatusCode::BAD_REQUEST,
        GalleryError::NotFound(_) | GalleryError::NoThumbnail(_) => StatusCode::NOT_FOUND,
        GalleryError::Thumbnail { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        GalleryError::Io { .. } | GalleryError::Store(_) => {
            tracing::error!(%error, "gallery file request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    message(status, error.to_string())
}

fn message(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}
