#!/usr/bin/env bash
# Queue benchmark: JOBS jobs through WORKERS `comfydeck worker` processes, each on its own
# ComfyUI stand-in (replaying as fast as it can), with the queue in SQLite and then in a real
# redis-server (AOF, fsync at every write), next to the same prompts sent straight to the
# stand-ins.
#
#   bench/queue.sh [path-to-binary]     default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#
# Prints per store: jobs per second until the last one finished, and the queue's own overhead
# per job (submit -> the worker's ComfyUI receives the prompt, p50 and p99, one job at a time on
# an idle queue); then direct submission's figures and the ratios. Reported, not asserted.
#
# Env: JOBS (1000), WORKERS (4), SEQUENTIAL (100), PORT (18500).
set -euo pipefail

JOBS="${JOBS:-1000}"
WORKERS="${WORKERS:-4}"
SEQUENTIAL="${SEQUENTIAL:-100}"
BASE_PORT="${PORT:-18500}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/.." && pwd)"
source "$repo_root/bench/lib.sh"
pick_binaries "${1:-}"
STANDIN="$(resolve_bin "$(dirname "$BIN")/comfy-standin")"
command -v python3 >/dev/null || die "python3 is needed"
command -v redis-server >/dev/null || die "redis-server is needed (Debian: apt-get install redis-server)"
command -v curl >/dev/null || die "curl is needed"

work="$(mktemp -d)"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop_all; rm -rf "$work"' EXIT

wait_http() {
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$1 did not answer"
}

standins=()
for i in $(seq 1 "$WORKERS"); do
  port=$((BASE_PORT + 10 + i))
  "$STANDIN" --port "$port" --time-scale 0 --empty-userdata >"$work/standin-$i.log" 2>&1 &
  pids+=($!)
  standins+=("http://127.0.0.1:$port")
done
for url in "${standins[@]}"; do wait_http "$url/system_stats"; done
standin_list="$(IFS=,; echo "${standins[*]}")"

run_store() { # label, extra serve flags...
  local label="$1"; shift
  local ws="$work/$label" port=$((BASE_PORT + ${#label}))
  mkdir -p "$ws"
  "$BIN" serve --workspace "$ws" --port "$port" --comfyui-url http://127.0.0.1:9 \
    --max-pending-per-user $((JOBS + SEQUENTIAL)) "$@" >"$ws/deck.log" 2>&1 &
  local deck=$!
  pids+=("$deck")
  wait_http "http://127.0.0.1:$port/health"
  local workers=()
  for i in $(seq 1 "$WORKERS"); do
    local token
    token="$("$BIN" workers token create "bench-$i" --workspace "$ws" "$@" | grep '^cdw_')"
    WORKER_TOKEN="$token" "$BIN" worker --coordinator-url "http://127.0.0.1:$port" \
      --comfyui-url "${standins[$((i - 1))]}" --name "bench-$i" --workspace "$ws/worker-$i" \
      >"$ws/worker-$i.log" 2>&1 &
    workers+=($!)
    pids+=($!)
  done
  python3 "$here/queuebench.py" --deck "http://127.0.0.1:$port" --standins "$standin_list" \
    --jobs "$JOBS" --sequential "$SEQUENTIAL" --label "$label" \
    --prompt "$repo_root/comfy-standin/fixtures/comfyui/post_prompt_ok.json" ${DIRECT:+--direct}
  kill "${workers[@]}" "$deck" 2>/dev/null || true
  wait "${workers[@]}" "$deck" 2>/dev/null || true
}

echo "queue benchmark: $JOBS jobs, $WORKERS workers, $(nproc) cores; $(basename "$BIN") $("$BIN" --version | awk '{print $2}')"
run_store sqlite

redis_port=$((BASE_PORT + 50))
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync always \
  --save "" --dir "$work/redis" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.1
done
DIRECT=1 run_store redis --queue-url "redis://127.0.0.1:$redis_port/0"
