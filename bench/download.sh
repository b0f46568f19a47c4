#!/usr/bin/env bash
# Download benchmark: comfydeck against the two floors of a verified download, on one local file.
#
#   bench/download.sh [path-to-binary]     default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#
# Serves a SIZE_MIB (default 1024) file of random bytes from bench/rangeserver.py (Range, ETag,
# sendfile) on 127.0.0.1 and times, in RUNS rounds (default 5; median reported), each round
# running every line once so that a busy neighbour slows all of them alike:
#   curl -o /dev/null                     the server alone (it must not be the bottleneck)
#   curl -o FILE                          reference 1: the network and the disk, no hashing
#   openssl dgst -sha256 FILE             reference 2: the fastest SHA-256 here, no network
#   comfydeck download --connections 1    SHA-256 computed while streaming, verified, renamed
#   comfydeck download --connections N    (CONNECTIONS, default 4) segmented
# (and both comfydeck lines again for BASELINE_BIN, when set), and prints each with its ratio to the slower of the two references: a download that hashes as
# it goes cannot beat either. comfydeck's figure is the whole command (start-up, fsync, rename
# included). Timings are for people to read; nothing asserts on them. Needs about 3 × SIZE_MIB
# of free space under TMPDIR (the files are written where the models would be: a real disk).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB="${SIZE_MIB:-1024}"
RUNS="${RUNS:-5}"
PORT="${PORT:-18299}"
CONNECTIONS="${CONNECTIONS:-4}"

pick_binaries "${1:-}"
for tool in curl python3 openssl bc; do command -v "$tool" >/dev/null || die "$tool is needed"; done

work="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-bench-dl.XXXXXX")"
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/files"
echo "download.sh: writing a ${SIZE_MIB} MiB file…" >&2
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/files/model.bin"
sum="$(openssl dgst -sha256 -r "$work/files/model.bin" | cut -d' ' -f1)"

python3 "$repo_root/bench/rangeserver.py" "$work/files" "$PORT" &
server_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/health" >/dev/null || die "the file server did not start"
url="http://127.0.0.1:$PORT/model.bin"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

time_null() {
  local t0; t0="$(now)"
  curl -fsS -o /dev/null "$url"
  since "$t0"
}
time_curl() {
  rm -f "$work/curl.bin"; sync
  local t0; t0="$(now)"
  curl -fsS -o "$work/curl.bin" "$url"
  since "$t0"
}
time_openssl() {
  local t0; t0="$(now)"
  openssl dgst -sha256 "$work/files/model.bin" >/dev/null
  since "$t0"
}
time_comfydeck() {
  local connections="$1" bin="${2:-$BIN}" ws="$work/ws"
  rm -rf "$ws" "$work/curl.bin"; sync
  local t0; t0="$(now)"
  "$bin" download "$url" --to checkpoints/model.bin --sha256 "$sum" \
    --connections "$connections" --workspace "$ws" >/dev/null 2>"$work/dl.err" \
    || { cat "$work/dl.err" >&2; die "comfydeck download failed"; }
  local t; t="$(since "$t0")"
  cmp -s "$ws/models/checkpoints/model.bin" "$work/files/model.bin" || die "downloaded file differs"
  echo "$t"
}

names=(null curl openssl c1 cn)
[[ -n "$BASELINE" ]] && names+=(b1 bn)
declare -A samples
for round in $(seq "$RUNS"); do
  echo "download.sh: round $round of $RUNS…" >&2
  for name in "${names[@]}"; do
    case "$name" in
      null) t="$(time_null)" ;;
      curl) t="$(time_curl)" ;;
      openssl) t="$(time_openssl)" ;;
      c1) t="$(time_comfydeck 1)" ;;
      cn) t="$(time_comfydeck "$CONNECTIONS")" ;;
      b1) t="$(time_comfydeck 1 "$BASELINE")" ;;
      bn) t="$(time_comfydeck "$CONNECTIONS" "$BASELINE")" ;;
    esac
    samples[$name]+="$t "
  done
done
declare -A results
for name in "${names[@]}"; do
  results[$name]="$(printf '%s\n' ${samples[$name]} | median)"
done

ref="${results[curl]}"; ref_name="curl -o"
if (( $(echo "${results[openssl]} > $ref" | bc -l) )); then ref="${results[openssl]}"; ref_name="openssl"; fi
printf 'file: %s MiB over loopback, %s rounds, median seconds; ratio to the slower reference (%s)\n' \
  "$SIZE_MIB" "$RUNS" "$ref_name"
row() { printf '  %-46s %6.2f s  %5.2fx  %6.0f MiB/s\n' "$1" "$2" "$(echo "$2 / $ref" | bc -l)" "$(echo "$SIZE_MIB / $2" | bc -l)"; }
row "curl -o /dev/null (the server alone)" "${results[null]}"
row "curl -o FILE (reference: no hash)" "${results[curl]}"
row "openssl dgst -sha256 FILE (reference: hash)" "${results[openssl]}"
row "comfydeck download --connections 1" "${results[c1]}"
row "comfydeck download --connections $CONNECTIONS" "${results[cn]}"
if [[ -n "$BASELINE" ]]; then
  row "baseline --connections 1" "${results[b1]}"
  row "baseline --connections $CONNECTIONS" "${results[bn]}"
fi
