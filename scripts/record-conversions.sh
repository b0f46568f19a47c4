#!/usr/bin/env bash
# Records the UI→API conversion pairs of the official workflow templates with ComfyUI's own
# frontend as the reference (see comfy-standin/fixtures/comfyui/templates/README.md).
#
#   scripts/record-conversions.sh                    # every pinned release, from scratch
#   TEMPLATE_RELEASES="0.11.97" scripts/record-conversions.sh
#   FRONTEND_VERSION=1.28.0 scripts/record-conversions.sh   # another frontend
#
# Installs what it needs from the registries: Chromium from Debian (apt-get) when there is
# none, Playwright and the frontend and template wheels from PyPI, into a venv under
# $RECORD_WORK (default target/record-conversions, ignored by git). Idempotent: each
# release's pair folder is rewritten whole.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRONTEND_VERSION="${FRONTEND_VERSION:-1.27.10}"
TEMPLATE_RELEASES="${TEMPLATE_RELEASES:-0.1.95 0.11.97}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"
WORK="${RECORD_WORK:-$ROOT/target/record-conversions}"
FIXTURES="$ROOT/comfy-standin/fixtures/comfyui"
OUT="$FIXTURES/templates"
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"

if [ -z "$CHROMIUM" ]; then
  echo "== installing chromium (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation
  CHROMIUM="$(command -v chromium)"
fi

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
  echo "== python venv"
  python3 -m venv "$WORK/venv"
fi
PY="$WORK/venv/bin/python"
PIP=("$PY" -m pip -q --disable-pip-version-check)
if ! "$PY" -c "import playwright, importlib.metadata as m; assert m.version('playwright') == '$PLAYWRIGHT_VERSION'" 2>/dev/null; then
  echo "== playwright $PLAYWRIGHT_VERSION (the driver only; the browser is $CHROMIUM)"
  "${PIP[@]}" install "playwright==$PLAYWRIGHT_VERSION"
fi

# The frontend: its static/ folder is what ComfyUI's server serves.
FE="$WORK/frontend-$FRONTEND_VERSION"
if [ ! -f "$FE/comfyui_frontend_package/static/index.html" ]; then
  echo "== comfyui-frontend-package $FRONTEND_VERSION"
  rm -rf "$FE" && mkdir -p "$FE/wheel"
  "${PIP[@]}" download --no-deps -d "$FE/wheel" "comfyui-frontend-package==$FRONTEND_VERSION"
  (cd "$FE" && "$PY" -m zipfile -e wheel/*.whl .)
fi

# The templates of one release, as .json files in one folder. Older releases ship them in
# comfyui-workflow-templates itself; newer ones split them into companion wheels
# (comfyui-workflow-templates-json, -core, and media wheels that hold only images, which are
# not downloaded).
templates_of() {
  local release="$1" dir="$WORK/templates-$1"
  if [ -f "$dir/.complete" ]; then echo "$dir/json"; return; fi
  rm -rf "$dir" && mkdir -p "$dir/wheels" "$dir/json"
  "${PIP[@]}" download --no-deps -d "$dir/wheels" "comfyui-workflow-templates==$release" >&2
  local deps
  deps="$("$PY" - "$dir/wheels" <<'EOF'
import sys, zipfile, pathlib, re
for whl in pathlib.Path(sys.argv[1]).glob("*.whl"):
    z = zipfile.ZipFile(whl)
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            req = line.split(":", 1)[1].strip().split(";")[0].replace(" ", "")
            name = re.split(r"[<>=!~\[]", req)[0]
            if name.startswith("comfyui-workflow-templates") and "media" not in name:
                print(req)
EOF
)"
  for dep in $deps; do
    "${PIP[@]}" download --no-deps -d "$dir/wheels" "$dep" >&2
  done
  "$PY" - "$dir/wheels" "$dir/json" <<'EOF'
import sys, zipfile, pathlib
out = pathlib.Path(sys.argv[2])
for whl in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    z = zipfile.ZipFile(whl)
    for n in z.namelist():
        p = pathlib.PurePosixPath(n)
        if p.suffix == ".json" and p.parent.name == "templates" and not p.name.startswith("index."):
            (out / p.name).write_bytes(z.read(n))
EOF
  ls "$dir/wheels" > "$dir/.complete"
  echo "$dir/json"
}

for release in $TEMPLATE_RELEASES; do
  echo "== templates $release"
  json_dir="$(templates_of "$release")"
  rm -rf "$OUT/$release"
  "$PY" "$ROOT/scripts/record-conversions/record.py" \
    --static "$FE/comfyui_frontend_package/static" \
    --fixtures "$FIXTURES" \
    --templates "$json_dir" \
    --release "$release" \
    --frontend "$FRONTEND_VERSION" \
    --chromium "$CHROMIUM" \
    --out "$OUT/$release"
done
echo "== pairs written under $OUT"
