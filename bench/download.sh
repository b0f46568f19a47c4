#!/usr/bin/env bash
# Download benchmark: comfydeck against curl on the same local file.
#
#   bench/download.sh [path-to-binary]     default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#
# Serves a SIZE_MIB (default 2048) file of random bytes from bench/rangeserver.py (Range,
# ETag, sendfile) on 127.0.0.1, then times, RUNS times each (default 3), median reported:
#   curl -o                         the reference (no hashing)
#   sha256sum of the file           what hashing alone costs on this machine
#   comfydeck download --connections 1   (sha256 computed while streaming and verified)
#   comfydeck download --connections 4   (segmented; the hash follows the contiguous prefix)
# and prints each time with its ratio to curl. Timings are for people to read; nothing
# asserts on them. Needs about 4 × SIZE_MIB of free space under TMPDIR.
set -euo pipefail

SIZE_MIB="${SIZE_MIB:-2048}"
RUNS="${RUNS:-3}"
PORT="${PORT:-18299}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "download.sh: $*" >&2; exit 1; }

bin="${1:-${CARGO_TARGET_DIR:-$repo_root/target}/release/comfydeck}"
[[ -x "$bin" ]] || die "binary not found or not executable: $bin (build with scripts/build.sh)"
for tool in curl python3 sha256sum; do command -v "$tool" >/dev/null || die "$tool is needed"; done

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
sum="$(sha256sum "$work/files/model.bin" | cut -d' ' -f1)"

python3 "$repo_root/bench/rangeserver.py" "$work/files" "$PORT" &
server_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/health" >/dev/null || die "the file server did not start"
url="http://127.0.0.1:$PORT/model.bin"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

time_curl() {
  rm -f "$work/curl.bin"; sync
  local t0; t0="$(now)"
  curl -fsS -o "$work/curl.bin" "$url"
  echo "$(now) - $t0" | bc -l
}
time_sha() {
  local t0; t0="$(now)"
  sha256sum "$work/files/model.bin" >/dev/null
  echo "$(now) - $t0" | bc -l
}
time_comfydeck() {
  local connections="$1" ws="$work/ws"
  rm -rf "$ws"; sync
  local t0; t0="$(now)"
  "$bin" download "$url" --to checkpoints/model.bin --sha256 "$sum" \
    --connections "$connections" --workspace "$ws" >/dev/null 2>"$work/dl.err" \
    || { cat "$work/dl.err" >&2; die "comfydeck download failed"; }
  local t; t="$(echo "$(now) - $t0" | bc -l)"
  cmp -s "$ws/models/checkpoints/model.bin" "$work/files/model.bin" || die "downloaded file differs"
  echo "$t"
}

command -v bc >/dev/null || die "bc is needed"
declare -A results
for name in curl sha256sum c1 c4; do
  samples=()
  for _ in $(seq "$RUNS"); do
    case "$name" in
      curl) samples+=("$(time_curl)") ;;
      sha256sum) samples+=("$(time_sha)") ;;
      c1) samples+=("$(time_comfydeck 1)") ;;
      c4) samples+=("$(time_comfydeck 4)") ;;
    esac
  done
  results[$name]="$(printf '%s\n' "${samples[@]}" | median)"
done

ref="${results[curl]}"
printf 'file: %s MiB over loopback, %s runs each, median seconds (ratio to curl -o)\n' "$SIZE_MIB" "$RUNS"
row() { printf '  %-44s %7.2f s  %5.2fx  %6.0f MiB/s\n' "$1" "$2" "$(echo "$2 / $ref" | bc -l)" "$(echo "$SIZE_MIB / $2" | bc -l)"; }
row "curl -o (no hash)" "${results[curl]}"
row "sha256sum of the file (hash alone)" "${results[sha256sum]}"
row "comfydeck download --connections 1 (hash on)" "${results[c1]}"
row "comfydeck download --connections 4 (hash on)" "${results[c4]}"
