//! comfydeck's domain. Plain Rust: nothing here knows about Leptos, axum or HTTP routing.
//!
//! With default features only [`model`] is built (it also compiles for wasm); the `server`
//! feature adds the services that run on the pod, started and handed out by [`Engine`].

pub mod model;

#[cfg(feature = "server")]
pub mod activity;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
mod background;
#[cfg(feature = "server")]
mod breaker;
#[cfg(feature = "server")]
pub mod bridge;
#[cfg(feature = "server")]
pub mod catalog;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod comfy;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod download;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "server")]
pub mod gallery;
#[cfg(feature = "server")]
pub mod generate;
#[cfg(feature = "server")]
pub mod hf;
#[cfg(feature = "server")]
pub mod jobs;
#[cfg(feature = "server")]
pub mod logfile;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod nodes;
#[cfg(feature = "server")]
pub mod operations;
#[cfg(feature = "server")]
pub mod recovery;
#[cfg(feature = "server")]
pub mod secret;
#[cfg(feature = "server")]
pub mod settings;
#[cfg(feature = "server")]
pub mod status;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod workflows;
#[cfg(feature = "server")]
pub mod workspace;

#[cfg(feature = "server")]
mod engine;
#[cfg(feature = "server")]
pub use engine::*;
