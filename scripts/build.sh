#!/usr/bin/env bash
# Release build of the self-contained `comfydeck` binary. The front (wasm, js, css) is built
# first (with a brotli copy of each file beside it) and the server after it, so the server embeds
# the current front, not a stale one. Last comes the ComfyUI stand-in (the comfy-standin crate's binary) that the browser tests run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

log "building the front (wasm split into a main module and one chunk per lazy route, js, css)"
# A fresh pkg folder: the chunks' names come from the split, and a stale chunk from an older
# build would otherwise be embedded in the binary too.
rm -rf "$SITE/pkg"
cargo leptos build --release --frontend-only --split
log "brotli copies of the wasm, js and css (served as they are to browsers that accept brotli)"
node "$ROOT/scripts/precompress.js" "$SITE/pkg"
log "building the server (embeds the front)"
cargo leptos build --release --server-only
log "built $BIN ($(du -h "$BIN" | cut -f1))"
log "building the ComfyUI stand-in for the browser tests"
cargo build --release -p comfy-standin --bin comfy-standin
log "built $TARGET_DIR/release/comfy-standin"
