#!/usr/bin/env python3
"""PyTorch's CPU path on the shapes `diorama bench engine` measures, for the ratio in BENCHMARKS.md.

    python3 tools/bench/engine_peers.py [repeat] [threads]

Uses as many threads as Diorama does (all cores unless `threads` says otherwise). The bfloat16-weight product is
timed the way Diorama computes it (the weight upcast to float32 inside the timed region) and, for reference, as
PyTorch's own all-bfloat16 product. Prints JSON lines.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def best_of(repeat, fn):
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g)
    x, w = r(1024, 3072), r(3072, 3072)
    wb = r(3072, 3072).bfloat16()
    xf, wf = r(256, 3072), r(14336, 3072)
    img, k = r(1, 128, 120, 176), r(128, 128, 3, 3)
    cases = [
        ("linear f32 1024x3072 · 3072x3072", lambda: F.linear(x, w), 2 * 1024 * 3072 * 3072),
        ("linear bf16 weight 1024x3072 · 3072x3072", lambda: F.linear(x, wb.float()), 2 * 1024 * 3072 * 3072),
        ("linear all-bf16 1024x3072 · 3072x3072 (reference)", lambda: F.linear(x.bfloat16(), wb), 2 * 1024 * 3072 * 3072),
        ("linear f32 256x3072 · 3072x14336", lambda: F.linear(xf, wf), 2 * 256 * 3072 * 14336),
        ("conv3x3 f32 128→128 at 120x176", lambda: F.conv2d(img, k, padding=1), 2 * 128 * 128 * 9 * 120 * 176),
    ]
    with torch.inference_mode():
        for name, fn, flops in cases:
            seconds = best_of(repeat, fn)
            print(json.dumps({"tool": f"torch-{torch.__version__}", "op": name, "seconds": seconds,
                              "gflops": flops / seconds / 1e9, "threads": threads}, ensure_ascii=False))


if __name__ == "__main__":
    main()
