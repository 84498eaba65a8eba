#!/usr/bin/env python3
"""What the GPU's libraries reach on FlashWorld's hot shapes, to choose Diorama's next kernels (runs on the device).

Times, with CUDA events after a warm-up, in bf16 on one GPU:
- the reconstruction decoder's and VAE encoder's 3x3 convolutions in NCHW and in channels-last (cuDNN through torch,
  cudnn.benchmark on and off), and
- the transformer's self-attention [1, 24, 7920, 128] and cross-attention (512 keys) through each of torch's SDPA
  backends (flash, cuDNN, efficient), in TFLOP/s.

    python3 tools/bench/probe_layouts.py
"""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, runs=10):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / runs


def convs():
    shapes = [(24, 256, 240, 352, 256), (24, 512, 240, 352, 512), (24, 512, 240, 352, 256), (24, 512, 120, 176, 512),
              (24, 1024, 120, 176, 1024), (24, 1024, 60, 88, 1024), (24, 1024, 30, 44, 1024), (24, 160, 240, 352, 160)]
    for benchmark in (False, True):
        torch.backends.cudnn.benchmark = benchmark
        for n, c, h, w, o in shapes:
            x = torch.randn(n, c, h, w, device="cuda", dtype=torch.bfloat16)
            wt = torch.randn(o, c, 3, 3, device="cuda", dtype=torch.bfloat16) * 0.02
            b = torch.randn(o, device="cuda", dtype=torch.bfloat16)
            flops = 2 * n * h * w * c * o * 9
            nchw = timed(lambda: F.conv2d(x, wt, b, padding=1))
            xl, wl = x.to(memory_format=torch.channels_last), wt.to(memory_format=torch.channels_last)
            nhwc = timed(lambda: F.conv2d(xl, wl, b, padding=1))
            print(f"conv3x3 benchmark={int(benchmark)} [{n},{c},{h},{w}]->{o}: NCHW {nchw:7.2f} ms ({flops / nchw / 1e9:5.0f} TF/s)  "
                  f"channels-last {nhwc:7.2f} ms ({flops / nhwc / 1e9:5.0f} TF/s)", flush=True)
            del x, xl, wt, wl


def attention():
    for keys in (7920, 512):
        q = torch.randn(1, 24, 7920, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, 24, keys, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, 24, keys, 128, device="cuda", dtype=torch.bfloat16)
        flops = 4 * 24 * 7920 * keys * 128
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            try:
                with sdpa_kernel([backend]):
                    ms = timed(lambda: F.scaled_dot_product_attention(q, k, v))
                print(f"sdpa {backend.name:20s} [1,24,7920,128] x {keys} keys: {ms:6.3f} ms ({flops / ms / 1e9:4.0f} TF/s)", flush=True)
            except Exception as error:  # a backend that declines the shape
                print(f"sdpa {backend.name:20s} x {keys} keys: unavailable ({str(error).splitlines()[0][:100]})", flush=True)


print(torch.__version__, torch.cuda.get_device_name(), "cuDNN", torch.backends.cudnn.version())
attention()
convs()
