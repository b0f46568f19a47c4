//! Downloads: a persistent queue in SQLite, one task per file, resumable across restarts.

pub mod fetch;
pub mod manager;
mod overview;
pub mod queue;
pub mod sources;
