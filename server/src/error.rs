//! The one error answer of the hand-written routes: the same JSON body ([`ApiError`]) and the
//! same kind → status mapping ([`app::api::classify`]) as the server functions.

use app::api::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::error::Classify;
use engine::model::ErrorKind;
use engine::Engine;

#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    body: ApiError,
}

impl AppError {
    /// A service's error: its kind decides the status; our own faults are logged and
    /// recorded in the activity log.
    pub fn from_service<E: Classify + ?Sized>(error: &E, engine: &Engine) -> Self {
        let (status, body) = app::api::classify(error, Some(engine));
        AppError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        }
    }

    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AppError {
            status: StatusCode::from_u16(kind.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: ApiError::new(kind, message),
        }
    }

    /// The login layer's own answers (401, 413, 429), which no service error kind stands for.
    pub fn protocol(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            body: ApiError {
                message: message.into(),
                kind: None,
                login_required: false,
            },
        }
    }

    /// 401 for a request that carried no live session or token.
    pub fn login_required(message: impl Into<String>) -> Self {
        AppError {
            status: StatusCode::UNAUTHORIZED,
            body: ApiError::login_required(message),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
