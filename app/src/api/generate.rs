//! The Generate page's server functions: the workflow cards, one workflow's form (with the
//! values last used and its history), submitting, cancelling, prompt enhancement and image
//! uploads. Each checks its input and calls the engine.

use engine::model::*;
use leptos::server_fn::codec::{GetUrl, Json};

// On the server `super::server` brings both the helpers and the `server` attribute (through
// api.rs's prelude import); in the browser only the attribute is needed.
#[cfg(feature = "ssr")]
use super::server;
use super::ApiError;
#[cfg(not(feature = "ssr"))]
use leptos::server;

/// Every library workflow as a card, ready ones apart from those that need models:
/// `GET /api/generate/library`.
#[server(endpoint = "generate/library", prefix = "/api", input = GetUrl)]
pub async fn get_generate_library() -> Result<GenerateLibrary, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .generator()
        .library(&caller)
        .await
        .map_err(server::fail)
}

/// One workflow's form: its inputs, the values last used with it and its generations:
/// `GET /api/generate/form?workflow_id=user:portrait.json`.
#[server(endpoint = "generate/form", prefix = "/api", input = GetUrl)]
pub async fn get_generate_form(workflow_id: String) -> Result<GenerateForm, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .generator()
        .form(&caller, &workflow_id)
        .await
        .map_err(server::fail)
}

/// Queues a library workflow with the form's values and records the generation:
/// `POST /api/generate/submit` with `{"workflow_id", "inputs": [{"node_id", "input", "value"}]}`.
#[server(endpoint = "generate/submit", prefix = "/api", input = Json)]
pub async fn submit_generation(
    workflow_id: String,
    inputs: Vec<InputValue>,
) -> Result<RunSubmission, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .generator()
        .submit(&caller, &workflow_id, &inputs)
        .await
        .map_err(server::fail)
}

/// Cancels a generation (removed from the queue while pending, interrupted while running):
/// `POST /api/generate/cancel` with `{"prompt_id"}`.
#[server(endpoint = "generate/cancel", prefix = "/api", input = Json)]
pub async fn cancel_generation(prompt_id: String) -> Result<Generation, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .generator()
        .cancel(&caller, &prompt_id)
        .await
        .map_err(server::fail)
}

/// Generations, newest first, of one workflow or all:
/// `GET /api/generate/history?workflow_id=…`.
#[server(endpoint = "generate/history", prefix = "/api", input = GetUrl)]
pub async fn get_generations(workflow_id: Option<String>) -> Result<Vec<Generation>, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .generator()
        .list(&caller, workflow_id.as_deref().filter(|w| !w.is_empty()))
        .await
        .map_err(server::fail)
}

/// Applies a style to the prompts, with the configured LLM when there is one:
/// `POST /api/generate/enhance` with `{"positive", "negative", "style": "cinematic"}`.
#[server(endpoint = "generate/enhance", prefix = "/api", input = Json)]
pub async fn enhance_prompt(
    positive: String,
    negative: String,
    style: PromptStyle,
) -> Result<EnhancedPrompt, ApiError> {
    let engine = server::engine()?;
    engine
        .generator()
        .enhance_prompt(&positive, &negative, style)
        .await
        .map_err(server::fail)
}

/// Puts an image into ComfyUI's input folder: `POST /api/generate/upload` with
/// `{"file_name", "content_base64"}`; the answer's `value` goes into a LoadImage input.
#[server(endpoint = "generate/upload", prefix = "/api", input = Json)]
pub async fn upload_input_image(
    file_name: String,
    content_base64: String,
) -> Result<UploadedImage, ApiError> {
    let engine = server::engine()?;
    engine
        .generator()
        .upload_input_image_base64(&file_name, &content_base64)
        .await
        .map_err(server::fail)
}

/// "Open in Generate" for a gallery output: the workflow it was made with (imported from the
/// file when the library has none like it) and its values: `POST /api/generate/from-output`
/// with `{"id": 42}`.
#[server(endpoint = "generate/from-output", prefix = "/api", input = Json)]
pub async fn generate_from_output(id: i64) -> Result<GeneratePrefill, ApiError> {
    let (engine, caller) = server::engine_and_caller()?;
    engine
        .generator()
        .from_output(&caller, id)
        .await
        .map_err(server::fail)
}
