#!/usr/bin/env bash
# Starts comfydeck for the Playwright run on a fresh temporary workspace and removes the
# workspace again when Playwright stops it (SIGTERM to the process group, see
# playwright.config.ts `gracefulShutdown`).
#
#   serve.sh PORT open|locked|comfy|pod
#
# open:   ACCESS_PASSWORD is unset (loopback, no login); ComfyUI is unreachable.
# locked: ACCESS_PASSWORD must come from the environment; ComfyUI is unreachable.
# comfy:  like open, but its ComfyUI is the stand-in at $E2E_COMFYUI_URL
#         (default http://127.0.0.1:18188; see playwright.config.ts).
# pod:    like open, but comfydeck supervises ComfyUI (--comfyui-dir): the fake ComfyUI of
#         comfy-standin/python/fake_comfyui/main.py with its own venv, on 127.0.0.1 port
#         $E2E_POD_COMFYUI_PORT (default 18198). Its node map ($E2E_FILESERVER_URL/node-map.json,
#         default http://127.0.0.1:18099) says that node class E2EFancyNode comes from the local
#         git repository file://<workspace>/repos/e2e-fancy-pack, made here with one commit.
# E2E_OUTPUT_DIR (optional, a folder named comfydeck-e2e-*): emptied, then used as ComfyUI's
# output folder (--comfyui-output-dir), so specs can put files in the gallery and the comfy
# stand-in can write its run outputs where comfydeck indexes them.
# The server's own output goes to end2end/artifacts/server-<mode>.log; its tail is printed on
# stderr if the server exits by itself.
set -euo pipefail

port="${1:?usage: serve.sh PORT open|locked|comfy|pod}"
mode="${2:?usage: serve.sh PORT open|locked|comfy|pod}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${COMFYDECK_BIN:-$here/../target/release/comfydeck}"

if [[ ! -x "$bin" ]]; then
  echo "serve.sh: comfydeck binary not found or not executable: $bin (set COMFYDECK_BIN)" >&2
  exit 1
fi

# Nothing listens on the discard port: ComfyUI is unreachable, as most specs expect.
comfyui_url=http://127.0.0.1:9
case "$mode" in
  open|pod) unset ACCESS_PASSWORD ;;
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
  *) echo "serve.sh: mode must be open, locked, comfy or pod, got: $mode" >&2; exit 2 ;;
esac
# Flags below decide these; do not let a developer's shell leak into the run.
unset WORKSPACE_ROOT DASHBOARD_HOST DASHBOARD_PORT COMFYUI_URL COMFYUI_DIR COMFYUI_PORT COMFYUI_PYTHON \
  COMFYUI_ARGS NODE_MAP_URL NODE_PIP_ARGS NODE_PROTECTED_PACKAGES

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

# The pod server supervises the fake ComfyUI in $ws/ComfyUI (a venv of its own: pack installs
# run its `pip freeze`), and finds the E2E pack through a one-entry node map.
pod_args=()
if [[ "$mode" == pod ]]; then
  files_url="${E2E_FILESERVER_URL:-http://127.0.0.1:18099}"
  comfy_port="${E2E_POD_COMFYUI_PORT:-18198}"
  if (exec 3<>"/dev/tcp/127.0.0.1/$comfy_port") 2>/dev/null; then
    echo "serve.sh: port $comfy_port (the pod's ComfyUI) is already in use" >&2
    exit 1
  fi
  comfy_dir="$ws/ComfyUI"
  mkdir -p "$comfy_dir/custom_nodes"
  cp "$here/../comfy-standin/python/fake_comfyui/main.py" "$comfy_dir/main.py"
  if ! python3 -m venv "$comfy_dir/venv" >>"$log.venv" 2>&1; then
    echo "serve.sh: python3 -m venv failed (Debian: apt-get install python3-venv):" >&2
    cat "$log.venv" >&2
    exit 1
  fi
  rm -f "$log.venv"

  repo="$ws/repos/e2e-fancy-pack"
  mkdir -p "$repo"
  cat >"$repo/__init__.py" <<'PY'
# The E2E pack (written by end2end/serve.sh): one node class for "Make runnable" to install.
class Node:
    pass


NODE_CLASS_MAPPINGS = {"E2EFancyNode": Node}
PY
  (
    cd "$repo"
    export GIT_AUTHOR_NAME=e2e GIT_AUTHOR_EMAIL=e2e@example.invalid
    export GIT_COMMITTER_NAME=e2e GIT_COMMITTER_EMAIL=e2e@example.invalid
    git init --quiet -b main
    git add -A
    git -c commit.gpgsign=false commit --quiet -m "E2E fancy pack"
  )
  map_url="$(node -e '
    const [base, repo] = process.argv.slice(1);
    const q = new URLSearchParams({ repo, class: "E2EFancyNode", title: "E2E fancy pack" });
    console.log(`${base}/node-map.json?${q}`);
  ' "$files_url" "file://$repo")"
  # A preset whose file answers 401 until the test "adds the token" (fileserver.mjs /grant/):
  # the Recovery page's one-click fix; and one whose link is gone (404), given another on the
  # Recovery page, then rolled back from its restore point.
  mkdir -p "$ws/config"
  cat >"$ws/config/presets.yaml" <<YAML
# Written by end2end/serve.sh for the browser tests.
presets:
  E2E_TOKEN:
    name: E2E token preset
    category: Image Generation
    type: image
    description: One small file that needs a token, for the Recovery browser test
    files:
    - path: loras/e2e-token.safetensors
      url: $files_url/token/e2e-token.safetensors?size=200000
      size: 200KB
    tags:
    - e2e
  E2E_GONE:
    name: E2E gone preset
    category: Image Generation
    type: image
    description: One small file whose link answers 404, for Recovery's Use another source
    files:
    - path: loras/e2e-gone.safetensors
      url: $files_url/status/404/e2e-gone.safetensors
      size: 200KB
    tags:
    - e2e
YAML
  comfyui_url="http://127.0.0.1:$comfy_port"
  pod_args=(--comfyui-dir "$comfy_dir" --comfyui-port "$comfy_port" --node-map-url "$map_url")
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
  "${pod_args[@]}" "${output_args[@]}" >>"$log" 2>&1 &
pid=$!

status=0
wait "$pid" || status=$?
# Only reached when the server exited on its own (a signal to us runs the traps instead).
echo "serve.sh: $mode server exited with status $status; last lines of $log:" >&2
tail -n 40 "$log" >&2 || true
exit "$status"
