#!/usr/bin/env bash
# Starts comfydeck for the Playwright run on a fresh temporary workspace and removes the
# workspace again when Playwright stops it (SIGTERM to the process group, see
# playwright.config.ts `gracefulShutdown`).
#
#   serve.sh PORT open|locked
#
# open:   ACCESS_PASSWORD is unset (loopback, no login).
# locked: ACCESS_PASSWORD must come from the environment.
# The server's own output goes to end2end/artifacts/server-<mode>.log; its tail is printed on
# stderr if the server exits by itself.
set -euo pipefail

port="${1:?usage: serve.sh PORT open|locked}"
mode="${2:?usage: serve.sh PORT open|locked}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${COMFYDECK_BIN:-$here/../target/release/comfydeck}"

if [[ ! -x "$bin" ]]; then
  echo "serve.sh: comfydeck binary not found or not executable: $bin (set COMFYDECK_BIN)" >&2
  exit 1
fi

case "$mode" in
  open) unset ACCESS_PASSWORD ;;
  locked)
    if [[ -z "${ACCESS_PASSWORD:-}" ]]; then
      echo "serve.sh: locked mode needs ACCESS_PASSWORD" >&2
      exit 1
    fi
    ;;
  *) echo "serve.sh: mode must be open or locked, got: $mode" >&2; exit 2 ;;
esac
# Flags below decide these; do not let a developer's shell leak into the run.
unset WORKSPACE_ROOT DASHBOARD_HOST DASHBOARD_PORT COMFYUI_URL

mkdir -p "$here/artifacts"
log="$here/artifacts/server-$mode.log"
ws="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-e2e-$mode.XXXXXX")"
pid=""

cleanup() {
  local status=$?
  trap - EXIT TERM INT
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  [[ -n "$pid" ]] && { wait "$pid" 2>/dev/null || true; }
  rm -rf "$ws"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

echo "serve.sh: $mode server on 127.0.0.1:$port, workspace $ws, binary $bin" >"$log"
"$bin" serve --workspace "$ws" --host 127.0.0.1 --port "$port" --comfyui-url http://127.0.0.1:9 \
  >>"$log" 2>&1 &
pid=$!

status=0
wait "$pid" || status=$?
# Only reached when the server exited on its own (a signal to us runs the traps instead).
echo "serve.sh: $mode server exited with status $status; last lines of $log:" >&2
tail -n 40 "$log" >&2 || true
exit "$status"
