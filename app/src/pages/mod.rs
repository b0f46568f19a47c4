//! The pages. Each one the router shows is a lazy route (`XRoute`, `#[lazy_route]`, next to its
//! page component): the release front is built with `cargo leptos build --split`, which moves
//! the code only a route's view reaches into a wasm chunk of its own (`pkg/*.wasm` beside
//! `comfydeck.wasm`). The browser fetches the chunks of the route it hydrates, and the chunk of
//! another route when a link first leads there; the server renders every route as before.

pub mod activity;
pub mod gallery;
pub mod generate;
pub mod home;
pub mod login;
pub mod models;
pub mod queue;
pub mod recovery;
pub(crate) mod run_panel;
pub(crate) mod runnable;
pub mod settings;
pub mod workflows;
