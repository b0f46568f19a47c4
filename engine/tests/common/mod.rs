//! Helpers shared by the engine's integration tests.

use std::path::{Path, PathBuf};

pub mod comfy_standin;
pub mod fileserver;

/// The recorded ComfyUI protocol: `shared/fixtures/comfyui` beside the repository (the
/// project's layout, also in CI), or wherever `COMFYDECK_FIXTURES` points.
#[allow(dead_code)]
pub fn fixture_dir() -> PathBuf {
    let dir = std::env::var_os("COMFYDECK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/comfyui")
        });
    assert!(
        dir.is_dir(),
        "the ComfyUI fixtures are missing at {}: shared/ must sit beside the repository, or set COMFYDECK_FIXTURES",
        dir.display()
    );
    dir
}
