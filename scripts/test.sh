#!/usr/bin/env bash
# Every test: format, clippy (warnings denied) for the server and the wasm front, all crates'
# tests, the release build and its self-containment check, and the browser tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh" --with-browser

log "format"
cargo fmt --all -- --check

log "clippy (server side)"
cargo clippy -p engine -p app -p server --features app/ssr,engine/server --all-targets -- -D warnings
log "clippy (wasm front)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

# One package at a time: building `app` for the server and the browser in one cargo call would
# unify its ssr and hydrate features.
log "tests: engine"
cargo test -p engine --features server
log "tests: app"
cargo test -p app --features ssr
log "tests: server"
cargo test -p server

log "Dockerfile steps exist"
for script in $(grep -o 'scripts/[a-z-]*\.sh' Dockerfile | sort -u); do
  [ -x "$script" ] || { echo "test.sh: the Dockerfile runs $script, which is missing or not executable" >&2; exit 1; }
done

log "release build"
"$ROOT/scripts/build.sh"
"$ROOT/scripts/check-binary.sh"

log "browser tests (Chromium, desktop and 375 px)"
COMFYDECK_BIN="$BIN" npx playwright test -c end2end/playwright.config.ts

log "all checks passed"
