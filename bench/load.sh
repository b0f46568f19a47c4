#!/usr/bin/env bash
# Load benchmark for the comfydeck binary: many browser sockets and a steady API rate at once.
#
#   bench/load.sh [path-to-binary]          default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#   BASELINE_BIN=/path/to/previous/comfydeck bench/load.sh   also runs a previous build, with ratios
#
# Starts the build on a fresh temp workspace (open mode on loopback, ComfyUI down) and runs
# bench/loadgen.py (Python 3 standard library only) twice against it:
#   quiet   no sockets, RATE/10 requests per second for QUIET_S: the reference latency;
#   loaded  SOCKETS WebSockets on /ws (each reads every pushed frame) held open while RATE API
#           requests per second (open loop, round-robin over PATHS) run for DURATION_S.
# Prints p50/p99 latency, errors, sockets held to the end, and the server's CPU (% of one core),
# RSS and thread count over the loaded window, with ratios loaded / quiet (same run) and, with
# BASELINE_BIN, this / baseline. The goals (p99 < 50 ms, no errors) are reported, not asserted.
#
# Env: SOCKETS (500), RATE (200), DURATION_S (60), QUIET_S (10), PORT (18399),
#      PATHS (/api/status,/api/models,/api/gallery,/api/workflows), READY_TIMEOUT_S (60).
set -euo pipefail

SOCKETS="${SOCKETS:-500}"
RATE="${RATE:-200}"
DURATION_S="${DURATION_S:-60}"
QUIET_S="${QUIET_S:-10}"
BASE_PORT="${PORT:-18399}"
PATHS="${PATHS:-/api/status,/api/models,/api/gallery,/api/workflows}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-60}"
COMFY_URL="http://127.0.0.1:9"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"
source "$repo_root/bench/lib.sh"
pick_binaries "${1:-}"
command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"

# Each socket is a descriptor on both ends (the server and the load generator, both children of
# this shell); keep room for the HTTP pool, SQLite and the logs.
need_fds=$((SOCKETS + 1024))
if (($(ulimit -n) < need_fds)); then
  ulimit -n "$need_fds" 2>/dev/null || die "ulimit -n is $(ulimit -n); $need_fds needed (raise the hard limit)"
fi

TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-load.XXXXXX")"
SERVER_PID=""
stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_server
  rm -rf "$TMP_ROOT"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for ((p = BASE_PORT; p < BASE_PORT + 200; p++)); do
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port in $BASE_PORT..$((BASE_PORT + 199))"
}

start_server() { # label bin -> SERVER_PID, PORT_NOW
  local label="$1" bin="$2" ws log i code
  PORT_NOW="$(free_port)"
  ws="$TMP_ROOT/ws-$label"; log="$TMP_ROOT/$label.log"; mkdir -p "$ws"
  "$bin" serve --workspace "$ws" --host 127.0.0.1 --port "$PORT_NOW" --comfyui-url "$COMFY_URL" \
    >"$log" 2>&1 </dev/null &
  SERVER_PID=$!
  for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 1 \
      "http://127.0.0.1:$PORT_NOW/health" 2>/dev/null || true)"
    [[ "$code" == 200 ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$log" >&2; die "$label exited"; }
    sleep 0.05
  done
  tail -n 30 "$log" >&2; die "$label: /health not 200 within ${READY_TIMEOUT_S}s"
}

run_build() { # label bin -> $TMP_ROOT/<label>-quiet.json and -loaded.json
  local label="$1" bin="$2" quiet_rate
  start_server "$label" "$bin"
  quiet_rate="$(awk -v r="$RATE" 'BEGIN { printf "%g", r / 10 }')"
  echo "  $label: quiet run (${quiet_rate} req/s, no sockets, ${QUIET_S}s)" >&2
  python3 "$here/loadgen.py" --port "$PORT_NOW" --sockets 0 --rate "$quiet_rate" \
    --duration "$QUIET_S" --paths "$PATHS" --server-pid "$SERVER_PID" >"$TMP_ROOT/$label-quiet.json"
  echo "  $label: loaded run ($SOCKETS sockets, $RATE req/s, ${DURATION_S}s)" >&2
  python3 "$here/loadgen.py" --port "$PORT_NOW" --sockets "$SOCKETS" --rate "$RATE" \
    --duration "$DURATION_S" --paths "$PATHS" --server-pid "$SERVER_PID" >"$TMP_ROOT/$label-loaded.json"
  stop_server
}

echo "comfydeck load benchmark: $SOCKETS sockets, $RATE req/s for ${DURATION_S}s, $(nproc) CPUs," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), ulimit -n $(ulimit -n), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
echo "  this build: $BIN" >&2
run_build this "$BIN"
if [[ -n "$BASELINE" ]]; then
  echo "  baseline:   $BASELINE" >&2
  run_build baseline "$BASELINE"
fi

python3 - "$TMP_ROOT" "${BASELINE:+baseline}" <<'EOF'
import json, sys
root, with_base = sys.argv[1], sys.argv[2] == "baseline"
def load(label, kind):
    with open(f"{root}/{label}-{kind}.json") as f:
        return json.load(f)
def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"
def fmt(v):
    return "n/a" if v is None else str(v)
this_q, this_l = load("this", "quiet"), load("this", "loaded")
rows = [
    ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("max ms", "max_ms"),
    ("requests ok", "requests_ok"), ("achieved req/s", "achieved_rate"), ("errors", "errors"),
    ("sockets open at end", "sockets_open_at_end"), ("ws frames received", "ws_frames_in_window"),
    ("server CPU % of a core", "server_cpu_pct"), ("server RSS MiB", "server_rss_mib"),
    ("server threads", "server_threads"), ("load generator CPU %", "loadgen_cpu_pct"),
]
head = f"{'metric':26} {'quiet':>10} {'loaded':>10} {'loaded/quiet':>13}"
if with_base:
    base_q, base_l = load("baseline", "quiet"), load("baseline", "loaded")
    head += f" {'base loaded':>12} {'this/base':>10}"
print(head)
for name, key in rows:
    line = f"{name:26} {fmt(this_q.get(key)):>10} {fmt(this_l.get(key)):>10} {ratio(this_l.get(key), this_q.get(key)):>13}"
    if with_base:
        line += f" {fmt(base_l.get(key)):>12} {ratio(this_l.get(key), base_l.get(key)):>10}"
    print(line)
print()
for path, v in this_l["per_path"].items():
    print(f"  loaded {path:16} ok {v['ok']:6}  p50 {v['p50_ms']} ms  p99 {v['p99_ms']} ms")
if this_l["error_kinds"]:
    print("  errors (loaded):", json.dumps(this_l["error_kinds"]))
if this_q["error_kinds"]:
    print("  errors (quiet):", json.dumps(this_q["error_kinds"]))
p99 = this_l.get("p99_ms")
ok = p99 is not None and p99 < 50 and this_l["errors"] == 0 and \
    this_l["sockets_open_at_end"] == this_l["sockets_wanted"]
print(f"goal (p99 < 50 ms, no errors, every socket held): {'met' if ok else 'NOT met'}"
      f" (p99 {p99} ms, {this_l['errors']} errors, {this_l['sockets_open_at_end']}/{this_l['sockets_wanted']} sockets)")
EOF
