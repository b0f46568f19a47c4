#!/usr/bin/env bash
# First-load weight: what a phone's browser fetches to show and hydrate a page.
#
#   bench/firstload.sh [path-to-binary] [PATH…]    default: ${CARGO_TARGET_DIR:-target}/release/comfydeck, /
#   BASELINE_BIN=/path/to/previous/comfydeck bench/firstload.sh   also measures a previous build
#
# Starts the binary from an empty directory (it serves its embedded site) on a fresh workspace,
# ComfyUI unreachable, and runs bench/firstload.mjs (no password, unless ACCESS_PASSWORD is set:
# then every page leads to the login page): Chromium at 375 × 812 loads
# each PATH with an empty cache, waits for hydration and 2 s without a new file (QUIET_MS), and
# lists every wasm, js and css file it requested with its size as served with brotli, and the
# total. Needs node, the Playwright package (npm install) and Chromium (CHROMIUM_PATH, default
# /usr/bin/chromium). Sizes are exact; nothing asserts on them.
#
# Env: PORT (18371).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/bench/lib.sh"
pick_binaries "${1:-}"
shift || true
paths=("$@")
[[ ${#paths[@]} -gt 0 ]] || paths=(/)
port="${PORT:-18371}"
command -v node >/dev/null || die "node is needed"
command -v curl >/dev/null || die "curl is needed"

work="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-firstload.XXXXXX")"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid" && wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

measure() {
  local bin="$1" label="$2"
  rm -rf "$work/ws"
  (cd "$work" && exec "$bin" serve --workspace "$work/ws" --host 127.0.0.1 --port "$port" \
    --comfyui-url http://127.0.0.1:9 >"$work/log" 2>&1) &
  pid=$!
  for _ in $(seq 1 400); do
    curl -fsS --noproxy '*' "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; die "the binary exited"; }
    sleep 0.05
  done
  echo "== $label: $bin"
  node "$repo_root/bench/firstload.mjs" "http://127.0.0.1:$port" "${paths[@]}"
  kill "$pid" && wait "$pid" 2>/dev/null || true
  pid=""
}

measure "$BIN" "this build"
if [[ -n "$BASELINE" ]]; then measure "$BASELINE" "baseline"; fi
