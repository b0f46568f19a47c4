//! ComfyUI process supervisor (being written).
