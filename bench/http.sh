#!/usr/bin/env bash
# HTTP benchmark for the comfydeck binary: SSR pages and /health over kept-alive connections.
#
#   bench/http.sh [path-to-binary]          default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#   BASELINE_BIN=/path/to/previous/comfydeck bench/http.sh   also runs a previous build, with ratios
#
# Starts each build on a fresh temp workspace (open mode on loopback, ComfyUI down), then with wrk
# measures every path in PATHS (default: / /models /health) in two shapes:
#   1 conn   one thread, one kept-alive connection: per-request latency, what a phone sees;
#   2x16     two threads, 16 kept-alive connections: throughput.
# The builds are measured alternately, case by case, so that drift on a shared machine touches
# both alike. Printed per case: req/s, mean/p50/p99 latency, errors (non-2xx included), and the
# references measured in the same run: `/health` of the same build in the same shape, and the
# baseline build (ratio this / baseline). Nothing asserts on timings.
#
# Env: DURATION_S (5 per case), WARMUP_S (1), PATHS ("/ /models /health"), PORT (18499),
#      ACCEPT_ENCODING (unset: none sent, as wrk does; e.g. "br" for what a browser gets),
#      READY_TIMEOUT_S (60).
set -euo pipefail

DURATION_S="${DURATION_S:-5}"
WARMUP_S="${WARMUP_S:-1}"
read -r -a PATHS <<<"${PATHS:-/ /models /health}"
BASE_PORT="${PORT:-18499}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-60}"
COMFY_URL="http://127.0.0.1:9" # nothing listens there: ComfyUI shows as unreachable

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/bench/lib.sh"
pick_binaries "${1:-}"
command -v wrk >/dev/null || die "wrk is needed (Debian: apt-get install -y wrk)"
command -v curl >/dev/null || die "curl is needed"

TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-http.XXXXXX")"
declare -A PID PORTS
cleanup() {
  local status=$? l
  trap - EXIT INT TERM
  for l in "${!PID[@]}"; do
    kill -TERM "${PID[$l]}" 2>/dev/null || true
    wait "${PID[$l]}" 2>/dev/null || true
  done
  rm -rf "$TMP_ROOT"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$BASE_PORT
free_port() {
  local p
  for ((p = next_port; p < BASE_PORT + 200; p++)); do
    if ! port_in_use "$p"; then next_port=$((p + 1)); echo "$p"; return 0; fi
  done
  die "no free port in $BASE_PORT..$((BASE_PORT + 199))"
}

start() { # label bin
  local label="$1" bin="$2" port ws log i code
  port="$(free_port)"; next_port=$((port + 1))
  ws="$TMP_ROOT/ws-$label"; log="$TMP_ROOT/$label.log"; mkdir -p "$ws"
  "$bin" serve --workspace "$ws" --host 127.0.0.1 --port "$port" --comfyui-url "$COMFY_URL" \
    >"$log" 2>&1 </dev/null &
  PID[$label]=$!; PORTS[$label]=$port
  for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 1 \
      "http://127.0.0.1:$port/health" 2>/dev/null || true)"
    [[ "$code" == 200 ]] && return 0
    kill -0 "${PID[$label]}" 2>/dev/null || { tail -n 30 "$log" >&2; die "$label exited"; }
    sleep 0.05
  done
  tail -n 30 "$log" >&2; die "$label: /health not 200 within ${READY_TIMEOUT_S}s"
}

# wrk prints one machine-readable line from its done() hook (latencies in microseconds).
LUA="$TMP_ROOT/report.lua"
cat >"$LUA" <<'EOF'
local enc = os.getenv("ACCEPT_ENCODING")
if enc and enc ~= "" then wrk.headers["Accept-Encoding"] = enc end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.1f %.1f %.1f %d %d\n",
    summary.requests / (summary.duration / 1e6), latency.mean,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, summary.requests))
end
EOF

# measure label shape path -> sets R_RPS R_MEAN R_P50 R_P99 R_ERR R_N
measure() {
  local label="$1" shape="$2" path="$3" url args line
  url="http://127.0.0.1:${PORTS[$label]}$path"
  case "$shape" in
    1conn) args=(-t1 -c1) ;;
    2x16) args=(-t2 -c16) ;;
  esac
  wrk "${args[@]}" -d"${WARMUP_S}s" -s "$LUA" "$url" >/dev/null 2>&1 || true
  line="$(wrk "${args[@]}" -d"${DURATION_S}s" -s "$LUA" "$url" 2>&1 | grep '^RESULT' || true)"
  [[ -n "$line" ]] || die "wrk gave no result for $label $shape $path"
  read -r _ R_RPS R_MEAN R_P50 R_P99 R_ERR R_N <<<"$line"
}

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

labels=(this)
start this "$BIN"
if [[ -n "$BASELINE" ]]; then labels+=(baseline); start baseline "$BASELINE"; fi
echo "comfydeck HTTP benchmark: ${DURATION_S}s per case after ${WARMUP_S}s warm-up, $(nproc) CPUs," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
echo "  this build: $BIN" >&2
[[ -n "$BASELINE" ]] && echo "  baseline:   $BASELINE" >&2
[[ -n "${ACCEPT_ENCODING:-}" ]] && echo "  Accept-Encoding: $ACCEPT_ENCODING" >&2
export ACCEPT_ENCODING="${ACCEPT_ENCODING:-}"

declare -A RPS MEAN P50 P99 ERR
for shape in 1conn 2x16; do
  for path in "${PATHS[@]}"; do
    for l in "${labels[@]}"; do
      measure "$l" "$shape" "$path"
      k="$l|$shape|$path"
      RPS[$k]=$R_RPS; MEAN[$k]=$R_MEAN; P50[$k]=$R_P50; P99[$k]=$R_P99; ERR[$k]=$R_ERR
      printf '  %-8s %-5s %-10s %9.1f req/s  mean %7s ms  p99 %7s ms  errors %s of %s\n' \
        "$l" "$shape" "$path" "$R_RPS" "$(ms "$R_MEAN")" "$(ms "$R_P99")" "$R_ERR" "$R_N" >&2
    done
  done
done

echo
if [[ -z "$BASELINE" ]]; then
  printf '%-6s %-10s %10s %9s %9s %9s %7s %14s\n' shape path "req/s" "mean ms" "p50 ms" "p99 ms" errors "mean/health"
else
  printf '%-6s %-10s %10s %9s %9s %9s %7s %14s %10s %10s %12s\n' shape path "req/s" "mean ms" "p50 ms" "p99 ms" errors \
    "mean/health" "base req/s" "base mean" "req/s ratio"
fi
for shape in 1conn 2x16; do
  for path in "${PATHS[@]}"; do
    k="this|$shape|$path"; h="this|$shape|/health"
    rel="n/a"; [[ -n "${MEAN[$h]:-}" ]] && rel="$(ratio "${MEAN[$k]}" "${MEAN[$h]}")"
    if [[ -z "$BASELINE" ]]; then
      printf '%-6s %-10s %10s %9s %9s %9s %7s %14s\n' "$shape" "$path" "${RPS[$k]}" "$(ms "${MEAN[$k]}")" \
        "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "${ERR[$k]}" "$rel"
    else
      b="baseline|$shape|$path"
      printf '%-6s %-10s %10s %9s %9s %9s %7s %14s %10s %10s %12s\n' "$shape" "$path" "${RPS[$k]}" \
        "$(ms "${MEAN[$k]}")" "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "${ERR[$k]}" "$rel" \
        "${RPS[$b]}" "$(ms "${MEAN[$b]}")" "$(ratio "${RPS[$k]}" "${RPS[$b]}")"
    fi
  done
done
echo "(mean/health: this path's mean latency / /health's, same build, same shape;"
[[ -n "$BASELINE" ]] && echo " req/s ratio: this build / baseline, above 1 is better;"
echo " latencies are wrk's, from sending a request to the end of its response)"
