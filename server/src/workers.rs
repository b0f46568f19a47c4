//! The worker protocol over HTTP: claim (long-poll), heartbeat (long-poll for a cancel),
//! events, previews, output upload, complete, fail. Every call carries the worker's token
//! (`Authorization: Bearer …`); every call about a job carries its claim's fence, and a stale
//! one answers 409. The decisions are the engine's `JobService`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use engine::jobs::worker::{
    CLAIM_PATH, COMPLETE_PATH, EVENTS_PATH, FAIL_PATH, HEARTBEAT_PATH, OUTPUT_PATH, PREVIEW_PATH,
};
use engine::jobs::JobError;
use engine::model::*;
use serde::Deserialize;

use crate::error::AppError;
use crate::AppState;

/// Every worker route starts with this; the login middleware lets them through to their own
/// token check.
pub const PREFIX: &str = "/api/worker/";

pub const ROUTES: &[(Method, &str)] = &[
    (Method::POST, CLAIM_PATH),
    (Method::POST, HEARTBEAT_PATH),
    (Method::POST, EVENTS_PATH),
    (Method::PUT, OUTPUT_PATH),
    (Method::PUT, PREVIEW_PATH),
    (Method::POST, COMPLETE_PATH),
    (Method::POST, FAIL_PATH),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(CLAIM_PATH, post(claim))
        .route(HEARTBEAT_PATH, post(heartbeat))
        .route(EVENTS_PATH, post(events))
        .route(OUTPUT_PATH, put(output))
        .route(PREVIEW_PATH, put(preview))
        .route(COMPLETE_PATH, post(complete))
        .route(FAIL_PATH, post(fail))
}

fn fail_with(state: &AppState, error: JobError) -> Response {
    AppError::from_service(&error, &state.engine).into_response()
}

/// The body as `T`, read only after the token passed (so a stranger learns nothing from
/// parse errors).
fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, JobError> {
    serde_json::from_slice(body).map_err(|e| {
        JobError::Invalid(format!("the request body is not what this call takes: {e}"))
    })
}

/// The worker's name, from its token.
async fn worker(state: &AppState, headers: &HeaderMap) -> Result<String, JobError> {
    state
        .engine
        .jobs()
        .authenticate(crate::auth::bearer_token(headers))
        .await
}

/// The query of an upload, once the worker's token passed; `wanted` names what it needs.
async fn worker_query<Q>(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<Q>, axum::extract::rejection::QueryRejection>,
    wanted: &str,
) -> Result<Q, Response> {
    worker(state, headers)
        .await
        .map_err(|e| fail_with(state, e))?;
    query.map(|Query(q)| q).map_err(|_| {
        fail_with(
            state,
            JobError::Invalid(format!("this upload needs {wanted}")),
        )
    })
}

async fn claim(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let name = match worker(&state, &headers).await {
        Ok(name) => name,
        Err(e) => return fail_with(&state, e),
    };
    let mut request: ClaimRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail_with(&state, e),
    };
    // The token names the worker; a worker cannot speak for another.
    request.worker.name = name;
    let wait = Duration::from_millis(request.wait_ms);
    match state.engine.jobs().claim(&request.worker, wait).await {
        Ok(Some(job)) => Json(job).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => fail_with(&state, e),
    }
}

async fn heartbeat(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let name = match worker(&state, &headers).await {
        Ok(name) => name,
        Err(e) => return fail_with(&state, e),
    };
    let request: HeartbeatRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail_with(&state, e),
    };
    match state.engine.jobs().heartbeat(&name, &request).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => fail_with(&state, e),
    }
}

async fn events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = worker(&state, &headers).await {
        return fail_with(&state, e);
    }
    let events: JobEvents = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail_with(&state, e),
    };
    match state.engine.jobs().relay_events(events).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => fail_with(&state, e),
    }
}

#[derive(Deserialize)]
struct OutputQuery {
    job_id: i64,
    fence: i64,
    name: String,
}

async fn output(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<OutputQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let query = match worker_query(&state, &headers, query, "?job_id=…&fence=…&name=…").await
    {
        Ok(query) => query,
        Err(response) => return response,
    };
    let fence = JobFence {
        job_id: query.job_id,
        fence: query.fence,
    };
    match state
        .engine
        .jobs()
        .upload_output(fence, &query.name, &body)
        .await
    {
        Ok(output) => Json(output).into_response(),
        Err(e) => fail_with(&state, e),
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    job_id: i64,
    fence: i64,
    #[serde(default)]
    node: Option<String>,
}

/// The newest preview of a running job, as the image's bytes with its `Content-Type`.
async fn preview(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let query = match worker_query(&state, &headers, query, "?job_id=…&fence=…").await {
        Ok(query) => query,
        Err(response) => return response,
    };
    let mime = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fence = JobFence {
        job_id: query.job_id,
        fence: query.fence,
    };
    match state
        .engine
        .jobs()
        .relay_preview(fence, query.node, mime, body.to_vec())
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => fail_with(&state, e),
    }
}

async fn complete(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let name = match worker(&state, &headers).await {
        Ok(name) => name,
        Err(e) => return fail_with(&state, e),
    };
    let fence: JobFence = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail_with(&state, e),
    };
    match state.engine.jobs().complete(&name, fence).await {
        Ok(job) => Json(job).into_response(),
        Err(e) => fail_with(&state, e),
    }
}

async fn fail(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let name = match worker(&state, &headers).await {
        Ok(name) => name,
        Err(e) => return fail_with(&state, e),
    };
    let failure: JobFailure = match parse(&body) {
        Ok(r) => r,
        Err(e) => return fail_with(&state, e),
    };
    match state.engine.jobs().fail(&name, &failure).await {
        Ok(job) => Json(job).into_response(),
        Err(e) => fail_with(&state, e),
    }
}
