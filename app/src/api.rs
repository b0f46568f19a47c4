//! Server functions: comfydeck's JSON API. Each one checks its input and calls the engine;
//! nothing else happens here. Paths are stable and documented in the README so `curl` works.
//!
//! Reads are `GET` with query parameters; writes are `POST` with a JSON body whose keys are the
//! argument names (e.g. `{"patch": {"theme": "dark"}}`). Errors come back as
//! `{"message": "…", "kind": "not_found"}` with the status of their kind ([`ErrorKind`]:
//! 400, 403, 404, 409, 500, 502), or 401 with `"login_required": true` without a login.

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json, JsonEncoding};
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

pub mod gallery;
pub mod generate;
pub mod jobs;
pub mod nodes;
pub mod operations;
pub mod recovery;
pub mod users;

/// The error every API call returns, server functions and hand-written routes alike: a
/// sentence for the user and what kind of failure it is (which decided the HTTP status).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub message: String,
    /// Absent on errors made before the request reached a service (transport, arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    /// Set by the auth layer when the session is missing or expired.
    #[serde(default)]
    pub login_required: bool,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            kind: Some(kind),
            login_required: false,
        }
    }

    /// What the auth layer answers (with 401) when no session or token came along.
    pub fn login_required(message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            kind: None,
            login_required: true,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let (kind, message) = match value {
            ServerFnErrorErr::Request(_) => (
                None,
                "The dashboard cannot be reached; check your connection".to_string(),
            ),
            // On the server these mean the caller sent something we cannot read: their
            // mistake, so a 400 that says what was wrong, not a 500.
            ServerFnErrorErr::Args(detail) | ServerFnErrorErr::Deserialization(detail)
                if cfg!(feature = "ssr") =>
            {
                server::set_status(ErrorKind::Invalid.http_status());
                (
                    Some(ErrorKind::Invalid),
                    format!("invalid request: {detail}"),
                )
            }
            ServerFnErrorErr::MissingArg(arg) if cfg!(feature = "ssr") => {
                server::set_status(ErrorKind::Invalid.http_status());
                (
                    Some(ErrorKind::Invalid),
                    format!("invalid request: missing argument {arg}"),
                )
            }
            other => (None, other.to_string()),
        };
        ApiError {
            message,
            kind,
            login_required: false,
        }
    }
}

/// What the header needs to know about the current visitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub auth_mode: AuthMode,
    pub version: String,
    /// Who is logged in (in open mode: the administrator).
    pub caller: Caller,
}

/// Everything the Settings page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingsPageData {
    pub settings: SettingsView,
    pub api_tokens: Vec<ApiTokenInfo>,
    pub auth_mode: AuthMode,
    /// The visitor's own account.
    pub me: UserInfo,
    /// `ACCESS_PASSWORD` is admin's password (changed there, not here).
    pub admin_password_pinned: bool,
}

#[cfg(not(feature = "ssr"))]
mod server {
    /// Statuses are the server's business; the browser build never sets one.
    pub fn set_status(_status: u16) {}
}

/// The one mapping from a service's error to what the caller gets: the status its kind
/// deserves and the message. Our own faults are also logged and put in the activity log, where
/// people look; upstream ones are logged.
#[cfg(feature = "ssr")]
pub fn classify<E>(error: &E, engine: Option<&engine::Engine>) -> (u16, ApiError)
where
    E: engine::error::Classify + ?Sized,
{
    let kind = error.kind();
    let message = error.to_string();
    match kind {
        ErrorKind::Internal => {
            tracing::error!(error = %message, "request failed");
            if let Some(engine) = engine {
                let activity = engine.activity().clone();
                let line = format!("Request failed: {message}");
                tokio::spawn(async move {
                    activity.record(ActivityKind::Error, line).await;
                });
            }
        }
        ErrorKind::Unavailable => tracing::warn!(error = %message, "upstream failed"),
        _ => {}
    }
    (kind.http_status(), ApiError::new(kind, message))
}

#[cfg(feature = "ssr")]
mod server {
    use std::sync::Arc;

    use engine::Engine;
    use leptos::prelude::*;

    use super::ApiError;

    pub fn engine() -> Result<Arc<Engine>, ApiError> {
        use_context::<Arc<Engine>>().ok_or_else(|| {
            ApiError::new(
                engine::model::ErrorKind::Internal,
                "the engine is not running",
            )
        })
    }

    /// Who is asking: the auth layer put the caller on the request (in open mode, the
    /// administrator).
    pub fn caller() -> Result<engine::model::Caller, ApiError> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<engine::model::Caller>().cloned())
            .ok_or_else(|| {
                set_status(401);
                ApiError::login_required("Login required: log in at /login")
            })
    }

    /// The engine and the caller, which most server functions need together.
    pub fn engine_and_caller() -> Result<(Arc<Engine>, engine::model::Caller), ApiError> {
        Ok((engine()?, caller()?))
    }

    /// The engine, for an administrator only: what the permission table keeps from users
    /// (installing models, the deck's settings, ComfyUI's own controls) answers 403 to them.
    pub fn engine_for_admin(what: &str) -> Result<(Arc<Engine>, engine::model::Caller), ApiError> {
        let (engine, caller) = engine_and_caller()?;
        if !caller.is_admin() {
            set_status(engine::model::ErrorKind::Forbidden.http_status());
            return Err(ApiError::new(
                engine::model::ErrorKind::Forbidden,
                format!("only an administrator can {what}"),
            ));
        }
        Ok((engine, caller))
    }

    /// A service's error as this server function's answer (status set from its kind).
    pub fn fail<E: engine::error::Classify>(e: E) -> ApiError {
        let engine = use_context::<Arc<Engine>>();
        let (status, error) = super::classify(&e, engine.as_deref());
        set_status(status);
        error
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
    let (engine, caller) = server::engine_and_caller()?;
    Ok(SessionInfo {
        auth_mode: engine.auth().mode(),
        version: engine::VERSION.to_string(),
        caller,
    })
}

#[server(endpoint = "status", prefix = "/api", input = GetUrl)]
pub async fn get_status() -> Result<HomeStatus, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .status()
        .home_status(&caller)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "settings", prefix = "/api", input = GetUrl)]
pub async fn get_settings() -> Result<SettingsPageData, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    let me = engine
        .auth()
        .users()
        .me(&caller)
        .await
        .map_err(server::fail)?;
    let mut settings = engine.settings().view();
    settings.theme = me.theme.unwrap_or(settings.theme);
    if !caller.is_admin() {
        // Tokens and retention are the deck's, not a user's business; not even masked.
        settings.hf_token_masked = None;
        settings.civitai_token_masked = None;
    }
    Ok(SettingsPageData {
        settings,
        api_tokens: engine
            .auth()
            .api_tokens(&caller)
            .await
            .map_err(server::fail)?,
        auth_mode: engine.auth().mode(),
        me,
        admin_password_pinned: engine.config().access_password.is_some(),
    })
}

/// The theme is each person's own; tokens and retention are the deck's (administrators only).
#[server(endpoint = "settings/update", prefix = "/api", input = Json)]
pub async fn update_settings(patch: SettingsPatch) -> Result<SettingsView, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    let deck_wide = patch.hf_token.is_some()
        || patch.civitai_token.is_some()
        || patch.activity_retention_days.is_some();
    if deck_wide {
        server::engine_for_admin("change the deck's tokens or retention")?;
    }
    if let Some(theme) = patch.theme {
        engine
            .auth()
            .users()
            .set_own_theme(&caller, theme)
            .await
            .map_err(server::fail)?;
    }
    let mut view = if deck_wide {
        let deck_patch = SettingsPatch {
            theme: None,
            ..patch.clone()
        };
        engine
            .settings()
            .update(deck_patch)
            .await
            .map_err(server::fail)?
    } else {
        engine.settings().view()
    };
    view.theme = patch.theme.or(caller.theme).unwrap_or(view.theme);
    Ok(view)
}

#[server(endpoint = "settings/hf/validate", prefix = "/api", input = Json)]
pub async fn validate_hf_token() -> Result<HfTokenCheck, ApiError> {
    let (engine, _) = server::engine_for_admin("check the Hugging Face token")?;
    Ok(engine.settings().check_hf_token().await)
}

#[server(endpoint = "activity", prefix = "/api", input = GetUrl)]
pub async fn list_activity(
    kind: Option<String>,
    page: Option<u32>,
) -> Result<ActivityPage, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    let kind = engine::activity::ActivityLog::parse_kind(kind.as_deref()).map_err(server::fail)?;
    engine
        .activity()
        .page(&caller, kind, page.unwrap_or(1), ACTIVITY_PAGE_SIZE)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "activity/clear", prefix = "/api", input = Json)]
pub async fn clear_activity() -> Result<u64, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine.activity().clear(&caller).await.map_err(server::fail)
}

#[server(endpoint = "tokens/create", prefix = "/api", input = Json)]
pub async fn create_api_token(name: String) -> Result<CreatedApiToken, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .auth()
        .create_api_token(&caller, &name)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "tokens/revoke", prefix = "/api", input = Json)]
pub async fn revoke_api_token(id: i64) -> Result<(), ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .auth()
        .revoke_api_token(&caller, id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "models", prefix = "/api", input = GetUrl)]
pub async fn get_models() -> Result<ModelsOverview, ApiError> {
    let engine = server::engine()?;
    let gpu_vram_bytes = engine.status().gpu_vram().await;
    engine
        .downloads()
        .overview(gpu_vram_bytes)
        .await
        .map_err(server::fail)
}

/// Queues the preset's missing files (after the disk-space check); `id` may be either format.
#[server(endpoint = "presets/install", prefix = "/api", input = Json)]
pub async fn install_preset(id: String) -> Result<PresetView, ApiError> {
    let (engine, _) = server::engine_for_admin("install models")?;
    engine
        .downloads()
        .install_preset(&id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "presets/pause", prefix = "/api", input = Json)]
pub async fn pause_preset(id: String) -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("pause model downloads")?;
    engine
        .downloads()
        .pause_preset(&id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "presets/resume", prefix = "/api", input = Json)]
pub async fn resume_preset(id: String) -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("resume model downloads")?;
    engine
        .downloads()
        .resume_preset(&id)
        .await
        .map_err(server::fail)
}

/// Stops the preset's downloads; `delete_parts` also deletes what was downloaded so far.
#[server(endpoint = "presets/cancel", prefix = "/api", input = Json)]
pub async fn cancel_preset(id: String, delete_parts: bool) -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("cancel model downloads")?;
    engine
        .downloads()
        .cancel_preset(&id, delete_parts)
        .await
        .map_err(server::fail)
}

/// Deletes the preset's files that no other installed preset needs; returns what was freed.
#[server(endpoint = "presets/remove", prefix = "/api", input = Json)]
pub async fn remove_preset(id: String) -> Result<u64, ApiError> {
    let (engine, _) = server::engine_for_admin("remove models")?;
    engine
        .downloads()
        .remove_preset(&id)
        .await
        .map(|report| report.freed_bytes)
        .map_err(server::fail)
}

#[server(endpoint = "downloads/pause", prefix = "/api", input = Json)]
pub async fn pause_download(task_id: i64) -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("pause model downloads")?;
    engine
        .downloads()
        .pause_task(task_id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "downloads/resume", prefix = "/api", input = Json)]
pub async fn resume_download(task_id: i64) -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("resume model downloads")?;
    engine
        .downloads()
        .resume_task(task_id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "downloads/cancel", prefix = "/api", input = Json)]
pub async fn cancel_download(task_id: i64, delete_part: bool) -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("cancel model downloads")?;
    engine
        .downloads()
        .cancel_task(task_id, delete_part)
        .await
        .map_err(server::fail)
}

/// Re-reads the workspace catalog and syncs `PRESET_REGISTRY_URL` when set.
#[server(endpoint = "catalog/sync", prefix = "/api", input = Json)]
pub async fn sync_catalog() -> Result<String, ApiError> {
    let (engine, _) = server::engine_for_admin("sync the preset catalog")?;
    engine.catalog().sync().await.map_err(server::fail)
}

/// Restarts a ComfyUI that comfydeck supervises (`COMFYUI_DIR`); 400 otherwise.
#[server(endpoint = "comfyui/restart", prefix = "/api", input = Json)]
pub async fn restart_comfyui() -> Result<ComfyProcess, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .status()
        .restart_comfyui(&caller)
        .await
        .map_err(server::fail)
}

/// Runs a workflow (UI or API format) with input values set first. Problems found before
/// submitting, or ComfyUI's refusal, come back per node with no `prompt_id`.
#[server(endpoint = "workflows/run", prefix = "/api", input = Json)]
pub async fn run_workflow(
    workflow: serde_json::Value,
    inputs: Vec<InputValue>,
) -> Result<RunSubmission, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    let prompt_id = engine::bridge::new_prompt_id();
    engine
        .jobs()
        .run(&caller, None, Some(workflow), inputs, prompt_id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "comfy/queue", prefix = "/api", input = GetUrl)]
pub async fn get_comfy_queue() -> Result<QueueSnapshot, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .bridge()
        .queue_for(&caller)
        .await
        .map_err(server::fail)
}

/// Removes a pending prompt from ComfyUI's queue.
#[server(endpoint = "comfy/queue/cancel", prefix = "/api", input = Json)]
pub async fn cancel_prompt(prompt_id: String) -> Result<(), ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    // A run comfydeck queued is cancelled through its job, wherever it waits or runs.
    if engine
        .jobs()
        .cancel_prompt(&caller, &prompt_id)
        .await
        .map_err(server::fail)?
    {
        return Ok(());
    }
    engine
        .bridge()
        .check_prompt_access(&caller, &prompt_id)
        .await
        .map_err(server::fail)?;
    engine
        .bridge()
        .cancel_pending(&prompt_id)
        .await
        .map_err(server::fail)
}

/// Interrupts the running prompt if it is `prompt_id`.
#[server(endpoint = "comfy/interrupt", prefix = "/api", input = Json)]
pub async fn interrupt_prompt(prompt_id: String) -> Result<(), ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    // A run comfydeck queued is cancelled through its job, wherever it waits or runs.
    if engine
        .jobs()
        .cancel_prompt(&caller, &prompt_id)
        .await
        .map_err(server::fail)?
    {
        return Ok(());
    }
    engine
        .bridge()
        .check_prompt_access(&caller, &prompt_id)
        .await
        .map_err(server::fail)?;
    engine
        .bridge()
        .interrupt(&prompt_id)
        .await
        .map_err(server::fail)
}

/// A prompt's outcome and outputs from ComfyUI's history.
#[server(endpoint = "comfy/history", prefix = "/api", input = GetUrl)]
pub async fn get_prompt_history(prompt_id: String) -> Result<RunRecord, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .bridge()
        .check_prompt_access(&caller, &prompt_id)
        .await
        .map_err(server::fail)?;
    engine
        .bridge()
        .history(&prompt_id)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "comfy/queue/clear", prefix = "/api", input = Json)]
pub async fn clear_comfy_queue() -> Result<(), ApiError> {
    let (engine, _) = server::engine_for_admin("clear ComfyUI's queue")?;
    engine.bridge().clear_queue().await.map_err(server::fail)
}

#[server(endpoint = "workflows", prefix = "/api", input = GetUrl)]
pub async fn list_workflows() -> Result<WorkflowList, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine.workflows().list(&caller).await.map_err(server::fail)
}

/// One workflow with its content (`id` as listed, e.g. `user:portrait.json`).
#[server(endpoint = "workflows/get", prefix = "/api", input = GetUrl)]
pub async fn get_workflow(id: String) -> Result<WorkflowDetail, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .workflows()
        .get(&caller, &id)
        .await
        .map_err(server::fail)
}

/// Imports a workflow file: JSON (either format) or a PNG with an embedded workflow.
/// `content_base64` is the file, base64-encoded.
#[server(endpoint = "workflows/import", prefix = "/api", input = Json)]
pub async fn import_workflow(
    file_name: String,
    content_base64: String,
) -> Result<WorkflowSummary, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .workflows()
        .import_base64(&caller, &file_name, &content_base64)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "workflows/rename", prefix = "/api", input = Json)]
pub async fn rename_workflow(id: String, name: String) -> Result<WorkflowSummary, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .workflows()
        .rename(&caller, &id, &name)
        .await
        .map_err(server::fail)
}

#[server(endpoint = "workflows/delete", prefix = "/api", input = Json)]
pub async fn delete_workflow(id: String) -> Result<(), ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .workflows()
        .delete(&caller, &id)
        .await
        .map_err(server::fail)
}

/// Runs a library workflow with the given input values.
#[server(endpoint = "workflows/run-saved", prefix = "/api", input = Json)]
pub async fn run_saved_workflow(
    id: String,
    inputs: Vec<InputValue>,
) -> Result<RunSubmission, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    let prompt_id = engine::bridge::new_prompt_id();
    engine
        .jobs()
        .run(&caller, Some(id), None, inputs, prompt_id)
        .await
        .map_err(server::fail)
}

pub const ACTIVITY_PAGE_SIZE: u32 = 25;
