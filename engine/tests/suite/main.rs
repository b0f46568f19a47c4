//! The engine's integration tests. One test binary, so the shared helpers in `common` compile
//! once and every one of them is used by some test.

mod common;

mod bridge;
mod catalog;
mod comfy_protocol;
mod convert;
mod download_fetch;
mod downloads;
mod engine;
mod fuzz_regressions;
mod gallery;
mod generate;
mod jobs;
mod nodes;
mod runnable;
mod sources;
mod store;
mod supervisor;
mod users;
mod workflows;
mod workspace_yaml;
