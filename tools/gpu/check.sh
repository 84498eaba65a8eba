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
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader
$D engine info
python3 tools/engine/make_fused_fixtures.py /tmp/fused > /dev/null
timeout 200 $D engine selftest --device cuda --fixtures Tests/EngineTests/Fixtures/ops,/tmp/fused > "$OUT/selftest.txt" 2>&1
grep -v "^ok " "$OUT/selftest.txt"
timeout 200 $D bench models --device cuda --repeat 3 2>&1 | tee "$OUT/bench-models-fp8.txt"
timeout 150 $D bench models --device cuda --precision bf16 --modules transformer,decoder --repeat 2 2>&1 | tee "$OUT/bench-models-bf16.txt"
timeout 150 $D bench render --device cuda --counts 1000000,4055040 2>&1 | tee "$OUT/bench-render.txt"
timeout 240 $D bench generate --device cuda --repeat 2 2>&1 | tee "$OUT/bench-generate.txt"
if [ "${1:-}" = "--reference" ] && [ -d refharness ]; then
  bash refharness/device.sh --t5 --runs 3 | tail -40
fi
