//! Images and files from ComfyUI, served by comfydeck behind its login: a prompt's outputs
//! (through ComfyUI's `/view`) and its newest live preview.
//!
//! Who may fetch what: an administrator anything. A user an `output` or `temp` file only
//! when it is theirs: reported by a run of a prompt they own (seen live by this process, or
//! kept in one of their generations), or, for outputs, indexed in the gallery as theirs; and
//! a preview only of a prompt they own. Anything else answers 404, like a file that is not
//! there. `input` files are served to everyone: ComfyUI's input folder is shared, and its node
//! list names every file in it to whoever can load an image.

use axum::extract::{Path, Query, State};
use axum::http::Extensions;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use engine::bridge::BridgeError;
use engine::model::Caller;
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
pub async fn view(
    State(state): State<AppState>,
    extensions: Extensions,
    Query(query): Query<ViewQuery>,
) -> Response {
    let caller = match crate::auth::caller_of(&extensions) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match may_view(&state, &caller, &query).await {
        Ok(true) => {}
        Ok(false) => {
            return AppError::from_service(
                &BridgeError::NotFound(format!(
                    "ComfyUI has no {} file {}/{}",
                    query.kind, query.subfolder, query.filename
                )),
                &state.engine,
            )
            .into_response()
        }
        Err(e) => return e.into_response(),
    }
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

/// Whether `caller` may fetch the file `query` names (see the module's notes).
async fn may_view(state: &AppState, caller: &Caller, query: &ViewQuery) -> Result<bool, AppError> {
    if caller.is_admin() || query.kind == "input" {
        return Ok(true);
    }
    if !matches!(query.kind.as_str(), "output" | "temp") {
        // Bridge::view refuses it as invalid, for everyone alike.
        return Ok(true);
    }
    let engine = &state.engine;
    let fail = |e: &dyn engine::error::Classify| AppError::from_service(e, engine);
    let bridge = engine.bridge();
    if let Some(prompt_id) = bridge.prompt_of_file(&query.kind, &query.subfolder, &query.filename) {
        if bridge
            .may_access_prompt(caller, &prompt_id)
            .await
            .map_err(|e| fail(&e))?
        {
            return Ok(true);
        }
    }
    if query.kind == "output" {
        let sub = query.subfolder.trim_matches('/');
        let rel = if sub.is_empty() {
            query.filename.clone()
        } else {
            format!("{sub}/{}", query.filename)
        };
        if engine::workspace::check_relative_path(&rel).is_ok()
            && engine
                .gallery()
                .owner_of_path(&rel)
                .await
                .map_err(|e| fail(&e))?
                == Some(caller.user_id)
        {
            return Ok(true);
        }
    }
    engine
        .generator()
        .history()
        .has_output(
            caller.user_id,
            &query.kind,
            &query.subfolder,
            &query.filename,
        )
        .await
        .map_err(|e| fail(&e))
}

/// `GET /api/comfy/preview/{prompt_id}`: the newest preview image of a running prompt (the
/// caller's own; an administrator's any).
pub async fn preview(
    State(state): State<AppState>,
    extensions: Extensions,
    Path(prompt_id): Path<String>,
) -> Response {
    let caller = match crate::auth::caller_of(&extensions) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    match state
        .engine
        .bridge()
        .may_access_prompt(&caller, &prompt_id)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return AppError::from_service(
                &BridgeError::NotFound(format!("no preview for prompt {prompt_id} yet")),
                &state.engine,
            )
            .into_response()
        }
        Err(e) => return AppError::from_service(&e, &state.engine).into_response(),
    }
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
