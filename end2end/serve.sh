#!/usr/bin/env bash
# Starts comfydeck for the Playwright run on a fresh temporary workspace and removes the
# workspace again when Playwright stops it (SIGTERM to the process group, see
# playwright.config.ts `gracefulShutdown`).
#
#   serve.sh PORT open|locked|comfy
#
# open:   ACCESS_PASSWORD is unset (loopback, no login); ComfyUI is unreachable.
# locked: ACCESS_PASSWORD must come from the environment; ComfyUI is unreachable.
# comfy:  like open, but its ComfyUI is the stand-in at $E2E_COMFYUI_URL
#         (default http://127.0.0.1:18188; see playwright.config.ts).
# E2E_OUTPUT_DIR (optional, a folder named comfydeck-e2e-*): emptied, then used as ComfyUI's
# output folder (--comfyui-output-dir), so specs can put files in the gallery and the comfy
# stand-in can write its run outputs where comfydeck indexes them.
# The server's own output goes to end2end/artifacts/server-<mode>.log; its tail is printed on
# stderr if the server exits by itself.
set -euo pipefail

port="${1:?usage: serve.sh PORT open|locked|comfy}"
mode="${2:?usage: serve.sh PORT open|locked|comfy}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${COMFYDECK_BIN:-$here/../target/release/comfydeck}"

if [[ ! -x "$bin" ]]; then
  echo "serve.sh: comfydeck binary not found or not executable: $bin (set COMFYDECK_BIN)" >&2
  exit 1
fi

# Nothing listens on the discard port: ComfyUI is unreachable, as most specs expect.
comfyui_url=http://127.0.0.1:9
case "$mode" in
  open) unset ACCESS_PASSWORD ;;
  comfy)
    unset ACCESS_PASSWORD
    comfyui_url="${E2E_COMFYUI_URL:-http://127.0.0.1:18188}"
    ;;
  locked)
    if [[ -z "${ACCESS_PASSWORD:-}" ]]; then
      echo "serve.sh: locked mode needs ACCESS_PASSWORD" >&2
      exit 1
    fi
    ;;
  *) echo "serve.sh: mode must be open, locked or comfy, got: $mode" >&2; exit 2 ;;
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

# The open server gets a workspace catalog layer with a tiny preset whose files come from the
# test file server (fileserver.mjs, started by playwright.config.ts), so installs can be tested
# for real. Its canonical id is `e2e-tiny`.
if [[ "$mode" == open ]]; then
  files_url="${E2E_FILESERVER_URL:-http://127.0.0.1:18099}"
  ckpt_sha="$(node "$here/fileserver.mjs" sha256 e2e-tiny.safetensors 8000000)"
  vae_sha="$(node "$here/fileserver.mjs" sha256 e2e-tiny-vae.safetensors 1000000)"
  mkdir -p "$ws/config"
  cat >"$ws/config/presets.yaml" <<YAML
# Written by end2end/serve.sh for the browser tests.
presets:
  E2E_TINY:
    name: E2E tiny preset
    category: Image Generation
    type: image
    description: Two small files from the local test file server, for the browser tests
    download_size: 9MB
    files:
    - path: checkpoints/e2e-tiny.safetensors
      url: $files_url/slow/e2e-tiny.safetensors?size=8000000
      size: 8MB
      checksum:
        algorithm: sha256
        value: $ckpt_sha
    - path: vae/e2e-tiny-vae.safetensors
      url: $files_url/fast/e2e-tiny-vae.safetensors?size=1000000
      size: 1MB
      checksum:
        algorithm: sha256
        value: $vae_sha
    use_case: Installing, watching progress and removing, end to end
    tags:
    - e2e
    - test
YAML
fi

output_args=()
if [[ -n "${E2E_OUTPUT_DIR:-}" ]]; then
  if [[ "$(basename "$E2E_OUTPUT_DIR")" != comfydeck-e2e-* ]]; then
    echo "serve.sh: E2E_OUTPUT_DIR must be a folder named comfydeck-e2e-*: $E2E_OUTPUT_DIR" >&2
    exit 2
  fi
  rm -rf "$E2E_OUTPUT_DIR"
  mkdir -p "$E2E_OUTPUT_DIR"
  output_args=(--comfyui-output-dir "$E2E_OUTPUT_DIR")
fi

echo "serve.sh: $mode server on 127.0.0.1:$port, workspace $ws, binary $bin" >"$log"
"$bin" serve --workspace "$ws" --host 127.0.0.1 --port "$port" --comfyui-url "$comfyui_url" \
  "${output_args[@]}" >>"$log" 2>&1 &
pid=$!

status=0
wait "$pid" || status=$?
# Only reached when the server exited on its own (a signal to us runs the traps instead).
echo "serve.sh: $mode server exited with status $status; last lines of $log:" >&2
tail -n 40 "$log" >&2 || true
exit "$status"
