# Shared by the benchmark scripts: source it, don't run it. Defines `die` (prefixed with the
# calling script's name), `resolve_bin` and `pick_binaries`, which sets BIN (the first argument,
# else the release build) and BASELINE (from BASELINE_BIN, when set) as absolute paths.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

resolve_bin() {
  local p="$1"
  if [[ ! -e "$p" && "$p" != /* && -e "$repo_root/$p" ]]; then p="$repo_root/$p"; fi
  [[ -f "$p" && -x "$p" ]] || die "binary not found or not executable: $1"
  (cd "$(dirname "$p")" && echo "$(pwd)/$(basename "$p")")
}

pick_binaries() {
  BIN="$(resolve_bin "${1:-${CARGO_TARGET_DIR:-target}/release/comfydeck}")"
  BASELINE=""
  if [[ -n "${BASELINE_BIN:-}" ]]; then BASELINE="$(resolve_bin "$BASELINE_BIN")"; fi
}
