#!/usr/bin/env bash
# Every GPU check and measurement the CUDA issues need, in one device call (device time is scarce: plan one call).
# Here:   ../shared/tools/gpu/pack.sh            (builds the static binary into .gpu/)
# There:  bash tools/gpu/check.sh [STEP...]      with carry [".gpu"] (and "refharness" for the reference steps, prepared
#         as ../shared/tools/refharness/README.md says), then give the machine back at once: idle time counts.
# Steps (default: selftest models bf16 render generate): selftest, models (fp8, every module), attention (the
# transformer with the own flash kernel, then with cuDNN's fused SDPA: DIORAMA_ATTENTION=cudnn), convs (the VAE and the
# decoder profiled with cuDNN's heuristic and with its timed search, DIORAMA_CUDNN_FIND=1), bf16 (transformer and
# decoder in bf16), render, generate (a whole scene), memory (the scene in the balanced and low memory modes), video (Wan2.2-TI2V-5B bench beside diffusers' WanPipeline,
# needs refharness/whl for diffusers), reference (FlashWorld's own code, needs refharness; REF_STUB=1 skips building
# gsplat and stubs its render). PROFILE=1 adds the per-op profile to the models step.
# Logs land in $OUT (selftest.txt, bench-*.txt); the lines that matter are printed.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
xz -dkf .gpu/diorama.xz && chmod +x .gpu/diorama
D=.gpu/diorama
STEPS=${*:-selftest models bf16 render generate}
want() { [[ " $STEPS " == *" $1 "* ]]; }
# One device call may run 600 s: every step gets at most its own limit and what is left of the overall budget.
START=$(date +%s); BUDGET=${CHECK_BUDGET:-560}
step() { local limit=$1; shift; local left=$(( BUDGET - ($(date +%s) - START) )); [ "$left" -lt "$limit" ] && limit=$left
  [ "$limit" -le 5 ] && { echo "skipped (no time left): $*"; return; }; echo "== $* (limit ${limit} s, at $(( $(date +%s) - START )) s)"; timeout "$limit" "$@"; }
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader
$D engine info
if want selftest; then
  python3 tools/engine/make_fused_fixtures.py /tmp/fused > /dev/null
  step 150 $D engine selftest --device cuda --fixtures Tests/EngineTests/Fixtures/ops,/tmp/fused > "$OUT/selftest.txt" 2>&1
  grep -v "^ok " "$OUT/selftest.txt"
  grep -E "linear_fp8|fused vs composed|flash" "$OUT/selftest.txt" | head -5
fi
want models && step 120 $D bench models --device cuda --repeat 3 ${PROFILE:+--profile} 2>&1 | tee "$OUT/bench-models-fp8.txt"
if want convs; then
  # The VAE encoder and decoder with cuDNN's heuristic (the default) and with its timed search, each op timed alone.
  step 90 $D bench models --device cuda --modules vae,decoder --repeat 2 --profile 2>&1 | tee "$OUT/bench-convs-heuristic.txt" | tail -40
  DIORAMA_CUDNN_FIND=1 step 90 $D bench models --device cuda --modules vae,decoder --repeat 2 2>&1 | tee "$OUT/bench-convs-find.txt" | tail -4
fi
if want attention; then
  # The transformer with the own flash kernel and with cuDNN's fused SDPA (selftest compares them op by op).
  step 90 $D bench models --device cuda --modules transformer --repeat 3 2>&1 | tee "$OUT/bench-attention-own.txt" | tail -3
  DIORAMA_ATTENTION=cudnn step 90 $D bench models --device cuda --modules transformer --repeat 3 2>&1 | tee "$OUT/bench-attention-cudnn.txt" | tail -3
fi
want bf16 && step 90 $D bench models --device cuda --precision bf16 --modules transformer,decoder --repeat 2 2>&1 | tee "$OUT/bench-models-bf16.txt"
want render && step 60 $D bench render --device cuda --counts 1000000,4055040 2>&1 | tee "$OUT/bench-render.txt"
want generate && step 150 $D bench generate --device cuda --repeat 2 2>&1 | tee "$OUT/bench-generate.txt"
if want memory; then
  for mode in balanced low; do
    step 150 $D bench generate --device cuda --repeat 1 --memory $mode 2>&1 | tee "$OUT/bench-generate-$mode.txt" | grep -E "total|peak"
  done
  # full with the decoder six frames at a time: its time against full's, and the peak it saves.
  DIORAMA_DECODER_FRAMES=6 step 150 $D bench generate --device cuda --repeat 1 --memory full 2>&1 | tee "$OUT/bench-generate-full-chunked.txt" | grep -E "total|peak"
  # and with the text encoder's linears in FP8 too (fp8-lean): issue 12's 16 GiB for full mode.
  DIORAMA_DECODER_FRAMES=6 step 150 $D bench generate --device cuda --repeat 1 --memory full --precision fp8-lean 2>&1 | tee "$OUT/bench-generate-full-lean.txt" | grep -E "total|peak"
fi
if want video; then
  VF=${VIDEO_FRAMES:-41}
  step 150 $D bench video --device cuda --precision bf16 --frames "$VF" --steps 3 2>&1 | tee "$OUT/bench-video.txt"
  python3 -m pip install -q --no-index --no-deps --target /tmp/site refharness/whl/diffusers-*.whl > /dev/null 2>&1
  PYTHONPATH=/tmp/site step 200 python3 tools/bench/video_peer_diffusers.py --frames "$VF" --steps 3 2>&1 | tee "$OUT/bench-video-diffusers.txt"
fi
if want reference && [ -d refharness ]; then
  if [ -n "${REF_STUB:-}" ]; then
    # Building gsplat costs minutes of device time: a python-only gsplat with the render stubbed times everything else.
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site refharness/whl/*.whl > /dev/null 2>&1
    mkdir -p /tmp/gsb && tar -xzf refharness/src/gsplat-1.5.3.tar.gz -C /tmp/gsb
    ( cd /tmp/gsb/gsplat-1.5.3 && BUILD_NO_CUDA=1 python3 -m pip install -q --no-build-isolation --no-deps --no-index \
        --target /tmp/site . ) > /dev/null 2>&1
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 step 240 python3 refharness/bench_ref.py --stub-render --t5 --runs 3 2>&1 \
      | tee "$OUT/bench-reference.txt" | tail -30
  else
    bash refharness/device.sh --t5 --runs 3 | tail -40
  fi
fi
