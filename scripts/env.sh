# Shared by the scripts: paths and PATH. Source it, don't run it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/comfydeck"
SITE="$ROOT/target/site"
CARGO_LEPTOS_VERSION="0.3.10"
log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
