//! Images and files from ComfyUI, served by comfydeck behind its login: a prompt's outputs
//! (through ComfyUI's `/view`) and its newest live preview.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use engine::bridge::BridgeError;
use serde::Deserialize;

use crate::error::AppError;
use crate::AppState;

#[derive(Deserialize)]
pub struct ViewQuery {
    filename: String,
    #[serde(default)]
    subfolder: String,
    #[serde(rename = "type", default = "output")]
    kind: String,
}

fn output() -> String {
    "output".to_string()
}

/// `GET /api/comfy/view?filename=…&subfolder=…&type=output`
pub async fn view(State(state): State<AppState>, Query(query): Query<ViewQuery>) -> Response {
    match state
        .engine
        .bridge()
        .view(&query.filename, &query.subfolder, &query.kind)
        .await
    {
        Ok((mime, bytes)) => file_response(&mime, bytes, "private, max-age=3600"),
        Err(e) => AppError::from_service(&e, &state.engine).into_response(),
    }
}

/// `GET /api/comfy/preview/{prompt_id}`: the newest preview image of a running prompt.
pub async fn preview(State(state): State<AppState>, Path(prompt_id): Path<String>) -> Response {
    match state.engine.bridge().preview(&prompt_id) {
        Some((mime, bytes)) => file_response(&mime, bytes.as_slice().to_vec(), "no-store"),
        None => AppError::from_service(
            &BridgeError::NotFound(format!("no preview for prompt {prompt_id} yet")),
            &state.engine,
        )
        .into_response(),
    }
}

fn file_response(mime: &str, bytes: Vec<u8>, cache: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
