# Shared by the scripts: paths and PATH. Source it, don't run it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/comfydeck"
SITE="$ROOT/target/site"
CARGO_LEPTOS_VERSION="0.3.10"
# Every step's line says how long the whole run has taken so far (the scripts call each other, so
# the start is kept in the environment), to see where a cold run spends its time.
export COMFYDECK_T0="${COMFYDECK_T0:-$(date +%s)}"
log() {
  local s=$(($(date +%s) - COMFYDECK_T0))
  printf '\033[1;34m==>\033[0m [%d:%02d] %s\n' $((s / 60)) $((s % 60)) "$*" >&2
}
