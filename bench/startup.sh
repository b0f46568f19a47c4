#!/usr/bin/env bash
# Startup benchmark for the comfydeck binary.
#
#   bench/startup.sh [path-to-binary]          default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#   BASELINE_BIN=/path/to/previous/comfydeck bench/startup.sh   also runs a previous build and prints ratios
#
# For each of RUNS (default 5) rounds:
#   cold start: fresh temp workspace, exec the binary, wall time until the first `GET /health` == 200;
#   warm start: the same binary started again on that (now initialised) workspace.
# Idle RSS (VmRSS) is read 3 s after the first cold start became healthy, with no client attached.
# Prints medians, idle RSS, binary size, and (with BASELINE_BIN) ratios this build / baseline.
# Timings are for people to read; nothing asserts on them.
#
# Env: RUNS (5), PORT (first port tried, 18199), READY_TIMEOUT_S (60), IDLE_WAIT_S (3).
set -euo pipefail

RUNS="${RUNS:-5}"
BASE_PORT="${PORT:-18199}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-60}"
IDLE_WAIT_S="${IDLE_WAIT_S:-3}"
COMFY_URL="http://127.0.0.1:9" # nothing listens there: ComfyUI shows as unreachable

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

source "$repo_root/bench/lib.sh"
pick_binaries "${1:-}"
command -v curl >/dev/null || die "curl is needed"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"

# --- cleanup ---------------------------------------------------------------------------------
TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-bench.XXXXXX")"
SERVER_PID=""

stop_server() {
  local pid="$SERVER_PID"
  [[ -n "$pid" ]] || return 0
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "startup.sh: pid $pid ignored SIGTERM for 10 s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
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

# --- helpers ---------------------------------------------------------------------------------
# stamp: sets NOW_NS to nanoseconds since the epoch. Bash 5's EPOCHREALTIME needs no fork inside
# the timed window; `date +%s%N` is the fallback.
stamp() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t="${EPOCHREALTIME/[.,]/}" # microseconds
    NOW_NS=$((10#$t * 1000))
  else
    NOW_NS="$(date +%s%N)"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for ((p = BASE_PORT; p < BASE_PORT + 200; p++)); do
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port in $BASE_PORT..$((BASE_PORT + 199))"
}

# start_server BIN WORKSPACE LOGFILE -> sets SERVER_PID and START_MS (exec until /health == 200).
start_server() {
  local bin="$1" ws="$2" logfile="$3" port t0 t1 code deadline
  port="$(free_port)"
  stamp; t0=$NOW_NS
  deadline=$((t0 + READY_TIMEOUT_S * 1000000000))
  "$bin" serve --workspace "$ws" --host 127.0.0.1 --port "$port" --comfyui-url "$COMFY_URL" \
    >>"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
  while :; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 1 \
      "http://127.0.0.1:$port/health" 2>/dev/null || true)"
    [[ "$code" == 200 ]] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "--- $logfile ---" >&2; tail -n 30 "$logfile" >&2 || true
      SERVER_PID=""
      die "$bin exited before /health answered 200"
    fi
    stamp
    if ((NOW_NS > deadline)); then
      echo "--- $logfile ---" >&2; tail -n 30 "$logfile" >&2 || true
      die "$bin: /health not 200 within ${READY_TIMEOUT_S}s (last status: ${code:-none})"
    fi
    sleep 0.005
  done
  stamp; t1=$NOW_NS
  START_MS="$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1e6 }')"
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
size_mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }

median() { # numbers as arguments
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# --- the benchmark ---------------------------------------------------------------------------
declare -A COLD WARM RSS
labels=(this)
declare -A BINS=([this]="$BIN")
if [[ -n "$BASELINE" ]]; then labels+=(baseline); BINS[baseline]="$BASELINE"; fi
for l in "${labels[@]}"; do COLD[$l]=""; WARM[$l]=""; RSS[$l]="n/a"; done

one_round() { # label round
  local label="$1" round="$2" bin="${BINS[$1]}" ws logfile
  ws="$(mktemp -d "$TMP_ROOT/ws-$label-$round.XXXXXX")"
  logfile="$TMP_ROOT/$label-$round.log"

  start_server "$bin" "$ws" "$logfile"
  COLD[$label]+=" $START_MS"
  local cold="$START_MS"
  if [[ "$round" == 1 ]]; then
    sleep "$IDLE_WAIT_S"
    RSS[$label]="$(rss_mib "$SERVER_PID")"
  fi
  stop_server

  start_server "$bin" "$ws" "$logfile"
  WARM[$label]+=" $START_MS"
  stop_server

  printf '  round %d  %-8s cold %8s ms   warm %8s ms\n' "$round" "$label" "$cold" "$START_MS" >&2
  rm -rf "$ws"
}

echo "comfydeck startup benchmark: $RUNS rounds, first port $BASE_PORT, ComfyUI at $COMFY_URL (down)" >&2
echo "  this build: $BIN" >&2
[[ -n "$BASELINE" ]] && echo "  baseline:   $BASELINE" >&2
for ((r = 1; r <= RUNS; r++)); do
  # Interleave the builds so that drift on the machine affects both alike.
  for l in "${labels[@]}"; do one_round "$l" "$r"; done
done

# shellcheck disable=SC2086 # word splitting of the sample lists is intended
{
  cold_this="$(median ${COLD[this]})"; warm_this="$(median ${WARM[this]})"
  rss_this="${RSS[this]}"; size_this="$(size_mib "$BIN")"
  echo
  if [[ -z "$BASELINE" ]]; then
    printf '%-30s %12s\n' "metric" "this build"
    printf '%-30s %12s\n' "cold start ms (median of $RUNS)" "$cold_this"
    printf '%-30s %12s\n' "warm start ms (median of $RUNS)" "$warm_this"
    printf '%-30s %12s\n' "idle RSS MiB" "$rss_this"
    printf '%-30s %12s\n' "binary size MiB" "$size_this"
  else
    cold_base="$(median ${COLD[baseline]})"; warm_base="$(median ${WARM[baseline]})"
    rss_base="${RSS[baseline]}"; size_base="$(size_mib "$BASELINE")"
    printf '%-30s %12s %12s %8s\n' "metric" "this build" "baseline" "ratio"
    printf '%-30s %12s %12s %8s\n' "cold start ms (median of $RUNS)" "$cold_this" "$cold_base" "$(ratio "$cold_this" "$cold_base")"
    printf '%-30s %12s %12s %8s\n' "warm start ms (median of $RUNS)" "$warm_this" "$warm_base" "$(ratio "$warm_this" "$warm_base")"
    printf '%-30s %12s %12s %8s\n' "idle RSS MiB" "$rss_this" "$rss_base" "$(ratio "$rss_this" "$rss_base")"
    printf '%-30s %12s %12s %8s\n' "binary size MiB" "$size_this" "$size_base" "$(ratio "$size_this" "$size_base")"
    echo "(ratio = this build / baseline; below 1 is better)"
  fi
  echo "samples (ms): cold [${COLD[this]# }]  warm [${WARM[this]# }]"
  [[ -n "$BASELINE" ]] && echo "baseline samples (ms): cold [${COLD[baseline]# }]  warm [${WARM[baseline]# }]"
  true
}
