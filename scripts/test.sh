#!/usr/bin/env bash
# Every test: format, clippy (warnings denied) for the server and the wasm front, all crates'
# tests, the release build and its self-containment check, and the browser tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

"$ROOT/scripts/bootstrap.sh" --with-browser

# Every test runner's output is also kept here, to total the results at the end.
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
counted() { "$@" 2>&1 | tee -a "$results"; }

log "format"
cargo fmt --all -- --check

log "clippy (server side)"
cargo clippy -p engine -p app -p server -p comfy-standin --features app/ssr,engine/server --all-targets -- -D warnings
log "clippy (wasm front)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

# One package at a time: building `app` for the server and the browser in one cargo call would
# unify its ssr and hydrate features.
log "tests: engine"
counted cargo test -p engine --features server
log "tests: app"
counted cargo test -p app --features ssr
log "tests: server"
counted cargo test -p server

log "Dockerfile steps exist"
for script in $(grep -o 'scripts/[a-z-]*\.sh' Dockerfile | sort -u); do
  [ -x "$script" ] || { echo "test.sh: the Dockerfile runs $script, which is missing or not executable" >&2; exit 1; }
done

log "release build"
"$ROOT/scripts/build.sh"
"$ROOT/scripts/check-binary.sh"

log "browser tests (Chromium, desktop and 375 px)"
COMFYDECK_BIN="$BIN" counted npx playwright test -c end2end/playwright.config.ts

# One closing line for all runners (cargo's "test result: ok. N passed; …" lines and
# Playwright's "N passed (…)"). Any failure has already stopped the script.
passed="$(awk '
  /^test result:/ { for (i = 2; i <= NF; i++) if ($i ~ /^passed;?$/) total += $(i - 1) }
  /^ *[0-9]+ passed \(/ { total += $1 }
  END { print total + 0 }' "$results")"
log "all checks passed"
echo "summary: $passed passed, 0 failed"
