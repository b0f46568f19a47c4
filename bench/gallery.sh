#!/usr/bin/env bash
# Gallery benchmark: listing and thumbnails over HTTP against a real comfydeck.
#
#   bench/gallery.sh [path-to-binary]      default: ${CARGO_TARGET_DIR:-target}/release/comfydeck
#
# Writes COUNT (default 10000) small PNGs with ComfyUI-style `prompt` text chunks into an output
# folder (100 sub-folders), plus BIG (default 5) 1536×1024 PNGs, starts comfydeck on loopback
# (open, no login) with --comfyui-output-dir pointing there, waits for the start-up index, then
# times with curl, RUNS times each (default 21), median reported:
#   find over the folder            the reference: one directory walk, what a scan per request costs
#   GET /api/gallery?limit=100      the newest page of 100
#   … &cursor=<middle>              a page of 100 half-way down (keyset paging)
#   … &text=<word>                  a page of 100 filtered by a word of the prompts
#   GET /api/gallery/thumb/<big>    cold (made now: decode, scale, JPEG) vs cached (read back)
# Timings are for people to read; nothing asserts on them.
set -euo pipefail

COUNT="${COUNT:-10000}"
BIG="${BIG:-5}"
RUNS="${RUNS:-21}"
PORT="${PORT:-18399}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "gallery.sh: $*" >&2; exit 1; }

bin="${1:-${CARGO_TARGET_DIR:-$repo_root/target}/release/comfydeck}"
[[ -x "$bin" ]] || die "binary not found or not executable: $bin (build with scripts/build.sh)"
for tool in curl python3 find; do command -v "$tool" >/dev/null || die "$tool is needed"; done

work="$(mktemp -d "${TMPDIR:-/tmp}/comfydeck-bench-gallery.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "gallery.sh: writing $COUNT small PNGs and $BIG large ones…" >&2
python3 - "$work/output" "$COUNT" "$BIG" <<'PY'
import json, os, struct, sys, zlib

out, count, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

def rgb_rows(w, h, f):
    return b"".join(b"\0" + b"".join(bytes(f(x, y)) for x in range(w)) for y in range(h))

def write(path, w, h, f, text, mtime):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + b"".join(chunk(b"tEXt", k.encode() + b"\0" + v.encode()) for k, v in text)
            + chunk(b"IDAT", zlib.compress(rgb_rows(w, h, f), 6)) + chunk(b"IEND", b""))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    os.utime(path, (mtime, mtime))

words = ["fox", "castle", "ocean", "forest", "robot", "portrait", "city", "desert", "galaxy", "garden"]
base = 1_750_000_000
tiny = rgb_rows(16, 16, lambda x, y: (x * 16, y * 16, 128))
idat = zlib.compress(tiny, 6)
for i in range(count):
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": i, "steps": 20, "cfg": 7,
              "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0]}},
              "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl_base.safetensors"}},
              "6": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a {words[i % 10]} at dusk, number {i}"}},
              "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry"}}}
    path = os.path.join(out, f"batch_{i % 100:03d}", f"ComfyUI_{i:05d}_.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                 + chunk(b"tEXt", b"prompt\0" + json.dumps(prompt).encode())
                 + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    os.utime(path, (base + i, base + i))
for j in range(big):
    write(os.path.join(out, "big", f"big_{j}.png"), 1536, 1024,
          lambda x, y, j=j: ((x * 7 + j * 40) & 255, (y * 5) & 255, ((x ^ y) + j * 17) & 255),
          [("prompt", "{}")], base + count + j)
PY

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.2f", s * 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}'; }
total=$((COUNT + BIG))

echo "gallery.sh: starting comfydeck and waiting for the index of $total files…" >&2
t0="$(now)"
"$bin" serve --workspace "$work/ws" --host 127.0.0.1 --port "$PORT" \
  --comfyui-url http://127.0.0.1:9 --comfyui-output-dir "$work/output" >"$work/server.log" 2>&1 &
server_pid=$!
api="http://127.0.0.1:$PORT"
for _ in $(seq 600); do
  body="$(curl -fs "$api/api/gallery?limit=1" || true)"
  if [[ "$body" == *"\"total\":$total"* && "$body" == *'"indexing":false'* ]]; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "comfydeck exited"; }
  sleep 0.1
done
[[ "$body" == *"\"total\":$total"* ]] || die "the index did not reach $total files: $body"
indexed="$(echo "$(now) - $t0" | awk '{print $1 - $3}')"

curl_time() { curl -fsS -o /dev/null -w '%{time_total}\n' "$1"; }
sample() {
  local url="$1"
  curl_time "$url" >/dev/null # warm the connection pool and caches
  for _ in $(seq "$RUNS"); do curl_time "$url"; done | median
}
find_time() {
  for _ in $(seq "$RUNS"); do
    local t; t="$(now)"
    find "$work/output" -type f -name '*.png' >/dev/null
    echo "$(now) $t" | awk '{print $1 - $2}'
  done | median
}

# The cursor half-way down: follow next_cursor through the first half.
cursor=""
for _ in $(seq $((total / 200))); do
  cursor="$(curl -fs "$api/api/gallery?limit=100${cursor:+&cursor=$cursor}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"] or "")')"
done

t_find="$(find_time)"
t_first="$(sample "$api/api/gallery?limit=100")"
t_middle="$(sample "$api/api/gallery?limit=100&cursor=$cursor")"
t_text="$(sample "$api/api/gallery?limit=100&text=castle")"
t_kind="$(sample "$api/api/gallery?limit=100&kind=image")"

colds=()
for j in $(seq 0 $((BIG - 1))); do colds+=("$(curl_time "$api/api/gallery/thumb/big/big_$j.png")"); done
t_cold="$(printf '%s\n' "${colds[@]}" | median)"
t_cached="$(sample "$api/api/gallery/thumb/big/big_0.png")"
thumb_bytes="$(curl -fs "$api/api/gallery/thumb/big/big_0.png" | wc -c)"
big_bytes="$(stat -c %s "$work/output/big/big_0.png")"
rss_kb="$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")"

echo
echo "gallery benchmark: $total files ($COUNT 16×16 PNGs with prompts, $BIG 1536×1024 PNGs), median of $RUNS"
printf '  start-up index of %d files      %8.2f s (%.0f files/s)\n' "$total" "$indexed" "$(awk -v n="$total" -v t="$indexed" 'BEGIN {print n / t}')"
printf '  find over the folder (reference) %8s ms\n' "$(ms "$t_find")"
printf '  page of 100, newest              %8s ms   (find / page: %sx)\n' "$(ms "$t_first")" "$(ratio "$t_find" "$t_first")"
printf '  page of 100, half-way (cursor)   %8s ms\n' "$(ms "$t_middle")"
printf '  page of 100, kind=image          %8s ms\n' "$(ms "$t_kind")"
printf '  page of 100, text=castle         %8s ms\n' "$(ms "$t_text")"
printf '  thumbnail, cold (median of %d)    %8s ms\n' "$BIG" "$(ms "$t_cold")"
printf '  thumbnail, cached                %8s ms   (cold / cached: %sx)\n' "$(ms "$t_cached")" "$(ratio "$t_cold" "$t_cached")"
printf '  thumbnail size                   %8d B    (original %d B)\n' "$thumb_bytes" "$big_bytes"
printf '  server RSS after the run         %8d kB\n' "$rss_kb"
