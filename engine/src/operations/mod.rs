//! "Make runnable": one operation per workflow that installs what the workflow lacks (custom-node
//! packs, model files from a preset, from the workflow's own links or from a link the user
//! gives), fixes its small mistakes on a copy, and checks the copy. Its steps are stored in
//! SQLite, so a restart continues where it was.

pub mod plan;
mod service;
pub mod store;

pub use service::OperationService;

use crate::error::Classify;
use crate::model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// ComfyUI does not answer: what a workflow lacks cannot be told.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Workflow(#[from] crate::workflows::WorkflowError),
    #[error("the operation store failed: {0}")]
    Store(String),
}

impl Classify for OperationError {
    fn kind(&self) -> ErrorKind {
        match self {
            OperationError::NotFound(_) => ErrorKind::NotFound,
            OperationError::Invalid(_) => ErrorKind::Invalid,
            OperationError::Conflict(_) => ErrorKind::Conflict,
            OperationError::Unavailable(_) => ErrorKind::Unavailable,
            OperationError::Workflow(e) => e.kind(),
            OperationError::Store(_) => ErrorKind::Internal,
        }
    }
}
