//! "Make runnable" operations: start one for a workflow, read it, answer a step's question.
//! Thin adapters over the engine's `OperationService`, which checks the caller (another
//! person's operation is not found).

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use super::ApiError;

/// Starts making the library workflow `id` runnable (or answers the operation already running
/// for it): its steps are stored and followed live over `/ws`.
#[server(endpoint = "workflows/make-runnable", prefix = "/api", input = Json)]
pub async fn make_runnable(id: String) -> Result<OperationView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .operations()
        .start(&caller, &id)
        .await
        .map_err(super::server::fail)
}

/// One operation with its steps.
#[server(endpoint = "operations/get", prefix = "/api", input = GetUrl)]
pub async fn get_operation(id: i64) -> Result<OperationView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .operations()
        .get(&caller, id)
        .await
        .map_err(super::server::fail)
}

/// The caller's newest operation on a workflow (`null` when there is none).
#[server(endpoint = "operations/latest", prefix = "/api", input = GetUrl)]
pub async fn latest_operation(workflow_id: String) -> Result<Option<OperationView>, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .operations()
        .latest(&caller, &workflow_id)
        .await
        .map_err(super::server::fail)
}

/// Answers step `seq` of operation `id`: one of its choices, or a download link (Hugging Face
/// or CivitAI) for a file no source has. The operation goes on.
#[server(endpoint = "operations/answer", prefix = "/api", input = Json)]
pub async fn answer_operation_step(
    id: i64,
    seq: u32,
    answer: String,
) -> Result<OperationView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .operations()
        .answer(&caller, &StepAnswer { id, seq, answer })
        .await
        .map_err(super::server::fail)
}
