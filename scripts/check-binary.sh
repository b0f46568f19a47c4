#!/usr/bin/env bash
# Proves the release binary is self-contained and current: run from an empty directory (no
# source tree beside it), it must serve the same wasm, js and css that the build just wrote.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

work="$(mktemp -d)"
port=18299
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cp "$BIN" "$work/comfydeck"
(cd "$work" && exec ./comfydeck serve --workspace "$work/ws" --port "$port" --comfyui-url http://127.0.0.1:9 >"$work/log" 2>&1) &
pid=$!
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log"; echo "check-binary: the binary exited" >&2; exit 1; }
  sleep 0.05
done
# Every file of the front: with --split, pkg/ also holds the chunk loader, the manifest and one
# wasm chunk per lazy route and per shared part.
front=()
for path in "$SITE"/pkg/*; do
  case "$path" in *.br | *.d.ts) continue ;; esac
  front+=("pkg/$(basename "$path")")
done
for file in "${front[@]}" favicon.svg; do
  served="$(curl -fsS "http://127.0.0.1:$port/$file" | sha256sum | cut -d' ' -f1)"
  built="$(sha256sum "$SITE/$file" | cut -d' ' -f1)"
  if [ "$served" != "$built" ]; then
    echo "check-binary: /$file served by the binary differs from $SITE/$file (stale embed)" >&2
    exit 1
  fi
done
# Browsers that accept brotli get the build's brotli copy as it is.
for file in "${front[@]}"; do
  [ -f "$SITE/$file.br" ] || continue
  headers="$(curl -fsS -D - -o "$work/br" -H 'Accept-Encoding: gzip, br' "http://127.0.0.1:$port/$file")"
  grep -qi '^content-encoding: br' <<<"$headers" || { echo "check-binary: /$file was not sent as its brotli copy" >&2; exit 1; }
  cmp -s "$work/br" "$SITE/$file.br" || { echo "check-binary: /$file (brotli) differs from $SITE/$file.br" >&2; exit 1; }
done
log "the binary serves the current site assets on its own (${#front[@]} files in pkg/)"
