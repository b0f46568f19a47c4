//! Types shared by the server and the browser (this module compiles for wasm).
//!
//! Everything here is plain data plus pure helpers: no I/O, no clocks. One file per area;
//! everything is re-exported here, so `engine::model::X` names each item.

mod activity;
mod api_paths;
mod auth;
mod comfy_process;
mod error_kind;
mod event;
mod format;
mod gallery;
mod generate;
mod jobs;
mod named;
mod nodes;
mod operations;
mod percent;
mod presets;
mod recovery;
mod runs;
mod settings;
mod system;
mod tagged;
mod users;
mod workflows;

pub use activity::*;
pub use api_paths::*;
pub use auth::*;
pub use comfy_process::*;
pub use error_kind::*;
pub use event::*;
pub use format::*;
pub use gallery::*;
pub use generate::*;
pub use jobs::*;
pub use nodes::*;
pub use operations::*;
pub use percent::*;
pub use presets::*;
pub use recovery::*;
pub use runs::*;
pub use settings::*;
pub use system::*;
pub use users::*;
pub use workflows::*;
