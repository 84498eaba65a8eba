#!/usr/bin/env bash
# Every GPU check and measurement the CUDA issues need, in one device call (device time is scarce: plan one call).
# Here:   ../shared/tools/gpu/pack.sh            (builds the static binary into .gpu/)
# There:  bash tools/gpu/check.sh [--reference]  with carry [".gpu"] (and "refharness" for --reference, prepared as
#         ../shared/tools/refharness/README.md says), then give the machine back at once: idle time counts.
# Logs land in $OUT (selftest.txt, bench-*.txt); the lines that matter are printed.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
xz -dkf .gpu/diorama.xz && chmod +x .gpu/diorama
D=.gpu/diorama
# One device call may run 600 s: every step gets at most its own limit and what is left of the overall budget.
START=$(date +%s); BUDGET=${CHECK_BUDGET:-560}
step() { local limit=$1; shift; local left=$(( BUDGET - ($(date +%s) - START) )); [ "$left" -lt "$limit" ] && limit=$left
  [ "$limit" -le 5 ] && { echo "skipped (no time left): $*"; return; }; echo "== $* (limit ${limit} s)"; timeout "$limit" "$@"; }
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader
$D engine info
python3 tools/engine/make_fused_fixtures.py /tmp/fused > /dev/null
step 150 $D engine selftest --device cuda --fixtures Tests/EngineTests/Fixtures/ops,/tmp/fused > "$OUT/selftest.txt" 2>&1
grep -v "^ok " "$OUT/selftest.txt"
step 120 $D bench models --device cuda --repeat 3 2>&1 | tee "$OUT/bench-models-fp8.txt"
step 90 $D bench models --device cuda --precision bf16 --modules transformer,decoder --repeat 2 2>&1 | tee "$OUT/bench-models-bf16.txt"
step 60 $D bench render --device cuda --counts 1000000,4055040 2>&1 | tee "$OUT/bench-render.txt"
step 150 $D bench generate --device cuda --repeat 2 2>&1 | tee "$OUT/bench-generate.txt"
if [ "${1:-}" = "--reference" ] && [ -d refharness ]; then
  bash refharness/device.sh --t5 --runs 3 | tail -40
fi
