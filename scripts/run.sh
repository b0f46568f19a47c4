#!/usr/bin/env bash
# Installs what is missing, builds, and runs the dashboard on embedded defaults.
# Extra arguments go to `comfydeck serve` (see `comfydeck --help`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
"$ROOT/scripts/build.sh"
exec "$BIN" serve "$@"
