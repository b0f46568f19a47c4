#!/usr/bin/env bash
# Installs every tool the build (and, with --with-browser, the browser tests) needs, at pinned
# versions, skipping what is already right. Safe to run again and again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

with_browser=false
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=true ;;
    *) echo "bootstrap.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Rust toolchain components come from rust-toolchain.toml; make sure the wasm target is in.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos: --locked and no_downloads are required here (newer deps need a newer rustc, and
# it must take wasm-opt and tailwindcss from PATH instead of downloading them). Built unoptimised
# and without debug info: its own release profile (fat LTO, one codegen unit, 548 crates) took
# 15.5 minutes on 2 cores against 6.7, and the front build it drives spends its time in rustc and
# wasm-opt, not in cargo-leptos (4.1 against 3.9 minutes, the same build with either).
if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  log "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 7 minutes on 2 cores)"
  CARGO_PROFILE_DEV_DEBUG=0 cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" \
    --locked --features no_downloads --debug
fi

# wasm-bindgen-cli must equal the wasm-bindgen crate in Cargo.lock exactly.
wbg_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$wbg_version" ]; then echo "bootstrap.sh: no wasm-bindgen in Cargo.lock" >&2; exit 1; fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "$wbg_version"; then
  log "installing wasm-bindgen-cli $wbg_version"
  # Without --locked: its locked webpki-roots version is not served by the registry.
  cargo install wasm-bindgen-cli --version "$wbg_version" --force
fi

# Node tools (Tailwind CLI, wasm-opt, Playwright) at the exact versions in package.json and the
# lock file. Not `npm ci`: npm 11 leaves Tailwind's optional per-platform packages out of the
# lock, and `npm ci` then refuses it; `npm install --no-save` honours the lock and leaves it as is.
if ! command -v npm >/dev/null; then
  log "installing Node.js and npm"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
stamp="node_modules/.package-lock.sha256"
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing npm packages"
  npm install --no-audit --no-fund --no-save
  echo "$want" > "$stamp"
fi

if $with_browser && [ ! -x /usr/bin/chromium ]; then
  log "installing Debian's Chromium for the browser tests"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

# The job queue's tests run a real redis-server (started per test on a free port).
if $with_browser && ! command -v redis-server >/dev/null; then
  log "installing Debian's redis-server for the job queue's tests"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi

log "tools ready: $(cargo leptos --version), $(wasm-bindgen --version), tailwindcss $(node -p 'require("tailwindcss/package.json").version'), wasm-opt $(wasm-opt --version | awk '{print $3}')"
