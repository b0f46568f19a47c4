//! Every service error says what kind of failure it is ([`ErrorKind`]); the web layer maps
//! kinds to statuses in one place.

use crate::model::ErrorKind;

/// Implemented by each service's error type.
pub trait Classify: std::error::Error {
    fn kind(&self) -> ErrorKind;
}
