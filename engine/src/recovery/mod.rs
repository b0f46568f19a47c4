//! Recovery: every failure that needs a person in one store (SQLite), classified with a
//! sentence anyone understands, resolved by itself when the thing later works, and the actions
//! that fit it (retry, restart ComfyUI, dismiss; a token, space or a licence first).

pub mod classify;
mod retry;
mod service;
pub mod store;

pub use retry::{passing_class, retry_transient, with_patience, Patience, SYNC_RETRIES};
pub use service::{ActionServices, RecoveryService};

use crate::error::Classify;
use crate::model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    /// The action was tried and failed (its service's words).
    #[error("{0}")]
    Failed(String),
    #[error("the recovery store failed: {0}")]
    Store(String),
}

impl Classify for RecoveryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RecoveryError::NotFound(_) => ErrorKind::NotFound,
            RecoveryError::Invalid(_) => ErrorKind::Invalid,
            RecoveryError::Forbidden(_) => ErrorKind::Forbidden,
            RecoveryError::Failed(_) => ErrorKind::Conflict,
            RecoveryError::Store(_) => ErrorKind::Internal,
        }
    }
}
