#!/usr/bin/env bash
# Fuzzes each target in turn, then minimises its corpus. See fuzz/README.md.
# Usage: fuzz/run.sh [seconds per target (600)] [target ...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(convert presets png_meta import)
[ -d seeds ] || python3 seed_corpora.py
fuzz=(cargo +nightly fuzz)
opts=(-s none -a) # no sanitizer (the engine has no unsafe code); debug assertions on
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  "${fuzz[@]}" build "${opts[@]}" "$t"
  nice -n 19 "${fuzz[@]}" run "${opts[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -max_len=65536 -print_final_stats=1 \
    2>&1 | tee "logs/$t.log" | grep -E '^#[0-9]+ +(pulse|DONE)|^(==|SUMMARY|stat::)|panicked|Crash|timeout' || true
  "${fuzz[@]}" cmin "${opts[@]}" "$t" "corpus/$t" -- -max_len=65536 >"logs/$t.cmin.log" 2>&1
  echo "$t: $(ls "corpus/$t" | wc -l) files in corpus/$t after cmin"
done
