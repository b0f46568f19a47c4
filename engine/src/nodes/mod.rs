//! Custom-node packs of the supervised ComfyUI (`COMFYUI_DIR/custom_nodes/`): which pack a
//! missing node class needs (the node's own `properties`, then the node map), installing one
//! with git and the ComfyUI Python's pip — the pip plan checked against the protected packages
//! first, a restore point recorded before anything changes and put back when the install, the
//! import or ComfyUI's restart fails — and listing, updating, disabling, enabling and removing
//! packs. [`NodePackService`] is the one entry point; everything it changes is an
//! administrator's.

mod git;
pub mod map;
mod pip;
mod process;
mod service;

pub use map::{NodeMap, NodeMapSource, DEFAULT_NODE_MAP_URL};
pub use service::{InstallTarget, NodePackService, NodesConfig, PackUndo, Progress};

use crate::error::Classify;
use crate::model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("comfydeck does not run ComfyUI here (set COMFYUI_DIR), so it cannot manage custom-node packs")]
    NotSupervised,
    #[error("only an administrator can {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("another custom-node operation is running; try again when it is done")]
    Busy,
    /// The pack would change a protected package: refused before anything changed.
    #[error("refused to install {pack}: its requirements would change protected packages: {changes}. Nothing was changed. (Protected: {protected}; add more with NODE_PROTECTED_PACKAGES.)")]
    Protected {
        pack: String,
        changes: String,
        protected: String,
    },
    /// The operation failed; what was put back is in the message.
    #[error("{0}")]
    Failed(String),
    /// Putting the restore point back failed too: the pod needs a person.
    #[error("{0}")]
    RestoreFailed(String),
    #[error("{0}")]
    Io(String),
}

impl Classify for NodesError {
    fn kind(&self) -> ErrorKind {
        match self {
            NodesError::NotSupervised | NodesError::Invalid(_) => ErrorKind::Invalid,
            NodesError::Forbidden(_) => ErrorKind::Forbidden,
            NodesError::NotFound(_) => ErrorKind::NotFound,
            NodesError::Conflict(_) | NodesError::Busy | NodesError::Protected { .. } => {
                ErrorKind::Conflict
            }
            NodesError::Failed(_) => ErrorKind::Unavailable,
            NodesError::RestoreFailed(_) | NodesError::Io(_) => ErrorKind::Internal,
        }
    }
}

pub use crate::secret::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_message() {
        assert_eq!(
            redact_url("https://user:ghp_secret@github.com/a/b"),
            "https://github.com/a/b"
        );
        assert_eq!(redact_url("file:///tmp/x"), "file:///tmp/x");
    }
}
