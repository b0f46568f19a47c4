//! Server functions: comfydeck's JSON API. Each one checks its input and calls the engine;
//! nothing else happens here. Paths are stable and documented in the README so `curl` works.
//!
//! Reads are `GET` with query parameters; writes are `POST` with a JSON body whose keys are the
//! argument names (e.g. `{"patch": {"theme": "dark"}}`). Errors come back as
//! `{"message": "…"}` with 400 for bad input, 401 without a login, 404 for unknown ids.

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json, JsonEncoding};
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

pub mod gallery;
pub mod generate;

/// The error every API call returns: a sentence for the user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub message: String,
    /// Set by the auth layer when the session is missing or expired.
    #[serde(default)]
    pub login_required: bool,
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let message = match value {
            ServerFnErrorErr::Request(_) => {
                "The dashboard cannot be reached; check your connection".to_string()
            }
            // On the server these mean the caller sent something we cannot read: their
            // mistake, so a 400 that says what was wrong, not a 500.
            ServerFnErrorErr::Args(detail) | ServerFnErrorErr::Deserialization(detail)
                if cfg!(feature = "ssr") =>
            {
                server::set_status(400);
                format!("invalid request: {detail}")
            }
            ServerFnErrorErr::MissingArg(arg) if cfg!(feature = "ssr") => {
                server::set_status(400);
                format!("invalid request: missing argument {arg}")
            }
            other => other.to_string(),
        };
        ApiError {
            message,
            login_required: false,
        }
    }
}

/// What the header needs to know about the current visitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub auth_mode: AuthMode,
    pub version: String,
}

/// Everything the Settings page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingsPageData {
    pub settings: SettingsView,
    pub api_tokens: Vec<ApiTokenInfo>,
    pub auth_mode: AuthMode,
}

#[cfg(not(feature = "ssr"))]
mod server {
    /// Statuses are the server's business; the browser build never sets one.
    pub fn set_status(_status: u16) {}
}

#[cfg(feature = "ssr")]
mod server {
    use std::sync::Arc;

    use engine::{Engine, EngineError};
    use leptos::prelude::*;

    use super::ApiError;

    pub fn engine() -> Result<Arc<Engine>, ApiError> {
        use_context::<Arc<Engine>>().ok_or_else(|| ApiError {
            message: "the engine is not running".into(),
            login_required: false,
        })
    }

    /// Maps an engine error to the HTTP status its kind deserves, keeping its message.
    pub fn fail(e: EngineError) -> ApiError {
        use engine::bridge::BridgeError;
        use engine::download::manager::DownloadError;
        use engine::workflows::WorkflowError;
        let status = match &e {
            EngineError::Invalid(_)
            | EngineError::Download(DownloadError::UnsafePath(_) | DownloadError::Invalid(_)) => {
                400
            }
            EngineError::NotFound(_)
            | EngineError::Download(
                DownloadError::UnknownPreset(_) | DownloadError::UnknownTask(_),
            ) => 404,
            // Not a server fault: the volume is too full for what was asked.
            EngineError::Download(DownloadError::NotEnoughSpace { .. }) => 409,
            EngineError::Bridge(BridgeError::Invalid(_)) => 400,
            EngineError::Workflow(w) => match w {
                WorkflowError::NotFound(_) => 404,
                WorkflowError::ReadOnly(_) => 403,
                WorkflowError::Conflict(_) => 409,
                WorkflowError::Io { .. } => 500,
                _ => 400,
            },
            EngineError::Bridge(BridgeError::NotFound(_)) => 404,
            EngineError::Generate(g) => {
                use engine::generate::GenerateError;
                match g {
                    GenerateError::Invalid(_) => 400,
                    GenerateError::NotFound(_) => 404,
                    // ComfyUI refused or is away: a gateway problem.
                    GenerateError::Upload(_) => 502,
                    GenerateError::Store(_)
                    | GenerateError::Corrupt(_)
                    | GenerateError::Encode(_) => {
                        tracing::error!(error = %g, "generate request failed");
                        500
                    }
                }
            }
            EngineError::Gallery(g) => {
                use engine::gallery::GalleryError;
                match g {
                    GalleryError::UnsafePath(_) | GalleryError::Invalid(_) => 400,
                    GalleryError::NotFound(_) | GalleryError::NoThumbnail(_) => 404,
                    GalleryError::Thumbnail { .. } => 422,
                    GalleryError::Io { .. } | GalleryError::Store(_) => {
                        tracing::error!(error = %g, "gallery request failed");
                        500
                    }
                }
            }
            // ComfyUI is down or answered oddly: a gateway problem, not ours.
            EngineError::Bridge(BridgeError::Comfy(_) | BridgeError::ObjectInfo(_)) => 502,
            _ => {
                tracing::error!(error = %e, "API call failed");
                // Server-side failures belong in the activity log too, where people look.
                if let Ok(engine) = engine() {
                    let message = format!("Request failed: {e}");
                    tokio::spawn(async move {
                        engine
                            .record(engine::model::ActivityKind::Error, message)
                            .await;
                    });
                }
                500
            }
        };
        set_status(status);
        ApiError {
            message: e.to_string(),
            login_required: false,
        }
    }

    pub fn set_status(status: u16) {
        if let (Some(options), Ok(status)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            http::StatusCode::from_u16(status),
        ) {
            options.set_status(status);
        }
    }
}

#[server(endpoint = "session", prefix = "/api", input = GetUrl)]
pub async fn get_session() -> Result<SessionInfo, ApiError> {
    let engine = server::engine()?;
    Ok(SessionInfo {
        auth_mode: engine.auth_mode(),
        version: engine::VERSION.to_string(),
    })
}

#[server(endpoint = "status", prefix = "/api", input = GetUrl)]
pub async fn get_status() -> Result<HomeStatus, ApiError> {
    let engine = server::engine()?;
    engine.home_status().await.map_err(server::fail)
}

#[server(endpoint = "settings", prefix = "/api", input = GetUrl)]
pub async fn get_settings() -> Result<SettingsPageData, ApiError> {
    let engine = server::engine()?;
    Ok(SettingsPageData {
        settings: engine.settings_view(),
        api_tokens: engine.api_tokens().await.map_err(server::fail)?,
        auth_mode: engine.auth_mode(),
    })
}

#[server(endpoint = "settings/update", prefix = "/api", input = Json)]
pub async fn update_settings(patch: SettingsPatch) -> Result<SettingsView, ApiError> {
    let engine = server::engine()?;
    engine.update_settings(patch).await.map_err(server::fail)
}

#[server(endpoint = "settings/hf/validate", prefix = "/api", input = Json)]
pub async fn validate_hf_token() -> Result<HfTokenCheck, ApiError> {
    let engine = server::engine()?;
    Ok(engine.check_hf_token().await)
}

#[server(endpoint = "activity", prefix = "/api", input = GetUrl)]
pub async fn list_activity(
    kind: Option<String>,
    page: Option<u32>,
) -> Result<ActivityPage, ApiError> {
    let engine = server::engine()?;
    let kind = match kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => Some(ActivityKind::parse(k).ok_or_else(|| {
            server::fail(engine::EngineError::Invalid(format!(
                "unknown activity kind {k:?}; use one of settings, auth, download, error, system"
            )))
        })?),
    };
    engine
        .activity(kind, page.unwrap_or(1), ACTIVITY_PAGE_SIZE)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "activity/clear", prefix = "/api", input = Json)]
pub async fn clear_activity() -> Result<u64, ApiError> {
    let engine = server::engine()?;
    engine.clear_activity().await.map_err(server::fail)
}

#[server(endpoint = "tokens/create", prefix = "/api", input = Json)]
pub async fn create_api_token(name: String) -> Result<CreatedApiToken, ApiError> {
    let engine = server::engine()?;
    engine.create_api_token(&name).await.map_err(server::fail)
}

#[server(endpoint = "tokens/revoke", prefix = "/api", input = Json)]
pub async fn revoke_api_token(id: i64) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.revoke_api_token(id).await.map_err(server::fail)
}

#[server(endpoint = "models", prefix = "/api", input = GetUrl)]
pub async fn get_models() -> Result<ModelsOverview, ApiError> {
    let engine = server::engine()?;
    engine.models_overview().await.map_err(server::fail)
}

/// Queues the preset's missing files (after the disk-space check); `id` may be either format.
#[server(endpoint = "presets/install", prefix = "/api", input = Json)]
pub async fn install_preset(id: String) -> Result<PresetView, ApiError> {
    let engine = server::engine()?;
    engine.install_preset(&id).await.map_err(server::fail)
}

#[server(endpoint = "presets/pause", prefix = "/api", input = Json)]
pub async fn pause_preset(id: String) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.pause_preset(&id).await.map_err(server::fail)
}

#[server(endpoint = "presets/resume", prefix = "/api", input = Json)]
pub async fn resume_preset(id: String) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.resume_preset(&id).await.map_err(server::fail)
}

/// Stops the preset's downloads; `delete_parts` also deletes what was downloaded so far.
#[server(endpoint = "presets/cancel", prefix = "/api", input = Json)]
pub async fn cancel_preset(id: String, delete_parts: bool) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine
        .cancel_preset(&id, delete_parts)
        .await
        .map_err(server::fail)
}

/// Deletes the preset's files that no other installed preset needs; returns what was freed.
#[server(endpoint = "presets/remove", prefix = "/api", input = Json)]
pub async fn remove_preset(id: String) -> Result<u64, ApiError> {
    let engine = server::engine()?;
    engine
        .remove_preset(&id)
        .await
        .map(|report| report.freed_bytes)
        .map_err(server::fail)
}

#[server(endpoint = "downloads/pause", prefix = "/api", input = Json)]
pub async fn pause_download(task_id: i64) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.pause_download(task_id).await.map_err(server::fail)
}

#[server(endpoint = "downloads/resume", prefix = "/api", input = Json)]
pub async fn resume_download(task_id: i64) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.resume_download(task_id).await.map_err(server::fail)
}

#[server(endpoint = "downloads/cancel", prefix = "/api", input = Json)]
pub async fn cancel_download(task_id: i64, delete_part: bool) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine
        .cancel_download(task_id, delete_part)
        .await
        .map_err(server::fail)
}

/// Re-reads the workspace catalog and syncs `PRESET_REGISTRY_URL` when set.
#[server(endpoint = "catalog/sync", prefix = "/api", input = Json)]
pub async fn sync_catalog() -> Result<String, ApiError> {
    let engine = server::engine()?;
    engine.sync_catalog().await.map_err(server::fail)
}

/// Restarts a ComfyUI that comfydeck supervises (`COMFYUI_DIR`); 400 otherwise.
#[server(endpoint = "comfyui/restart", prefix = "/api", input = Json)]
pub async fn restart_comfyui() -> Result<ComfyProcess, ApiError> {
    let engine = server::engine()?;
    engine.restart_comfyui().await.map_err(server::fail)
}

/// Runs a workflow (UI or API format) with input values set first. Problems found before
/// submitting, or ComfyUI's refusal, come back per node with no `prompt_id`.
#[server(endpoint = "workflows/run", prefix = "/api", input = Json)]
pub async fn run_workflow(
    workflow: serde_json::Value,
    inputs: Vec<InputValue>,
) -> Result<RunSubmission, ApiError> {
    let engine = server::engine()?;
    engine
        .run_workflow(&workflow, &inputs)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "comfy/queue", prefix = "/api", input = GetUrl)]
pub async fn get_comfy_queue() -> Result<QueueSnapshot, ApiError> {
    let engine = server::engine()?;
    engine.comfy_queue().await.map_err(server::fail)
}

/// Removes a pending prompt from ComfyUI's queue.
#[server(endpoint = "comfy/queue/cancel", prefix = "/api", input = Json)]
pub async fn cancel_prompt(prompt_id: String) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.cancel_prompt(&prompt_id).await.map_err(server::fail)
}

/// Interrupts the running prompt if it is `prompt_id`.
#[server(endpoint = "comfy/interrupt", prefix = "/api", input = Json)]
pub async fn interrupt_prompt(prompt_id: String) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine
        .interrupt_prompt(&prompt_id)
        .await
        .map_err(server::fail)
}

/// A prompt's outcome and outputs from ComfyUI's history.
#[server(endpoint = "comfy/history", prefix = "/api", input = GetUrl)]
pub async fn get_prompt_history(prompt_id: String) -> Result<RunRecord, ApiError> {
    let engine = server::engine()?;
    engine
        .prompt_history(&prompt_id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "comfy/queue/clear", prefix = "/api", input = Json)]
pub async fn clear_comfy_queue() -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.clear_comfy_queue().await.map_err(server::fail)
}

#[server(endpoint = "workflows", prefix = "/api", input = GetUrl)]
pub async fn list_workflows() -> Result<WorkflowList, ApiError> {
    let engine = server::engine()?;
    engine.list_workflows().await.map_err(server::fail)
}

/// One workflow with its content (`id` as listed, e.g. `user:portrait.json`).
#[server(endpoint = "workflows/get", prefix = "/api", input = GetUrl)]
pub async fn get_workflow(id: String) -> Result<WorkflowDetail, ApiError> {
    let engine = server::engine()?;
    engine.workflow(&id).await.map_err(server::fail)
}

/// Imports a workflow file: JSON (either format) or a PNG with an embedded workflow.
/// `content_base64` is the file, base64-encoded.
#[server(endpoint = "workflows/import", prefix = "/api", input = Json)]
pub async fn import_workflow(
    file_name: String,
    content_base64: String,
) -> Result<WorkflowSummary, ApiError> {
    let engine = server::engine()?;
    engine
        .import_workflow_base64(&file_name, &content_base64)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "workflows/rename", prefix = "/api", input = Json)]
pub async fn rename_workflow(id: String, name: String) -> Result<WorkflowSummary, ApiError> {
    let engine = server::engine()?;
    engine
        .rename_workflow(&id, &name)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "workflows/delete", prefix = "/api", input = Json)]
pub async fn delete_workflow(id: String) -> Result<(), ApiError> {
    let engine = server::engine()?;
    engine.delete_workflow(&id).await.map_err(server::fail)
}

/// Runs a library workflow with the given input values.
#[server(endpoint = "workflows/run-saved", prefix = "/api", input = Json)]
pub async fn run_saved_workflow(
    id: String,
    inputs: Vec<InputValue>,
) -> Result<RunSubmission, ApiError> {
    let engine = server::engine()?;
    engine
        .run_saved_workflow(&id, &inputs)
        .await
        .map_err(server::fail)
}

pub const ACTIVITY_PAGE_SIZE: u32 = 25;
