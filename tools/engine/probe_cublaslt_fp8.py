#!/usr/bin/env python3
"""Which cuBLASLt FP8 configurations this GPU and library accept: the e4m3 x e4m3 -> bf16 product Diorama's
`linear_fp8` asks for (A = weight, transposed; B = activations; per-tensor scale pointers), with variations, through
ctypes so the calls are exactly the C API's. Prints the heuristic's answer and cublasLtMatmul's status for each, and
checks the result against torch. Run on the GPU machine:  python3 tools/engine/probe_cublaslt_fp8.py
"""

import ctypes
import glob
import itertools

import torch

lib = None
for pattern in ["/usr/local/cuda*/targets/x86_64-linux/lib/libcublasLt.so.1*", "/usr/local/cuda*/lib64/libcublasLt.so.1*"]:
    found = sorted(glob.glob(pattern))
    if found:
        lib = ctypes.CDLL(found[0])
        print("cuBLASLt:", found[0], "version", lib.cublasLtGetVersion())
        break

P = ctypes.c_void_p
handle = P()
assert lib.cublasLtCreate(ctypes.byref(handle)) == 0
R_32F, R_16BF, E4M3, COMPUTE_32F = 0, 14, 28, 68


def set_attr(fn, obj, attr, value, ctype):
    v = ctype(value)
    return fn(obj, attr, ctypes.byref(v), ctypes.sizeof(v))


def run(m, n, k, bias, fast_accum, alignment_prefs, c_type, workspace_mb):
    w = (torch.randn(n, k, device="cuda") * 0.1).to(torch.float8_e4m3fn)
    x = (torch.randn(m, k, device="cuda") * 0.1).to(torch.float8_e4m3fn)
    sw = torch.tensor([0.5], device="cuda")
    sx = torch.tensor([0.25], device="cuda")
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, device="cuda").to(torch.bfloat16)
    ws = torch.empty(workspace_mb << 20, device="cuda", dtype=torch.uint8)
    desc = P()
    assert lib.cublasLtMatmulDescCreate(ctypes.byref(desc), COMPUTE_32F, R_32F) == 0
    set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 3, 1, ctypes.c_int32)  # TRANSA = T
    set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 4, 0, ctypes.c_int32)  # TRANSB = N
    set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 17, sw.data_ptr(), ctypes.c_uint64)
    set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 18, sx.data_ptr(), ctypes.c_uint64)
    if fast_accum:
        set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 25, 1, ctypes.c_int8)
    if bias:
        set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 7, 4, ctypes.c_uint32)
        set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 8, b.data_ptr(), ctypes.c_uint64)
        set_attr(lib.cublasLtMatmulDescSetAttribute, desc, 26, R_16BF, ctypes.c_int32)
    layouts = [P(), P(), P(), P()]
    assert lib.cublasLtMatrixLayoutCreate(ctypes.byref(layouts[0]), E4M3, ctypes.c_uint64(k), ctypes.c_uint64(n), ctypes.c_int64(k)) == 0
    assert lib.cublasLtMatrixLayoutCreate(ctypes.byref(layouts[1]), E4M3, ctypes.c_uint64(k), ctypes.c_uint64(m), ctypes.c_int64(k)) == 0
    assert lib.cublasLtMatrixLayoutCreate(ctypes.byref(layouts[2]), c_type, ctypes.c_uint64(n), ctypes.c_uint64(m), ctypes.c_int64(n)) == 0
    assert lib.cublasLtMatrixLayoutCreate(ctypes.byref(layouts[3]), R_16BF, ctypes.c_uint64(n), ctypes.c_uint64(m), ctypes.c_int64(n)) == 0
    pref = P()
    assert lib.cublasLtMatmulPreferenceCreate(ctypes.byref(pref)) == 0
    set_attr(lib.cublasLtMatmulPreferenceSetAttribute, pref, 1, ws.numel(), ctypes.c_uint64)
    if alignment_prefs:
        for attr in (5, 6, 7, 8):
            set_attr(lib.cublasLtMatmulPreferenceSetAttribute, pref, attr, 256, ctypes.c_uint32)
    result = (ctypes.c_uint8 * 96)()
    returned = ctypes.c_int32(0)
    h = lib.cublasLtMatmulAlgoGetHeuristic(handle, desc, layouts[0], layouts[1], layouts[2], layouts[3], pref, 1, result, ctypes.byref(returned))
    state = int.from_bytes(bytes(result[72:76]), "little")
    alpha, beta = ctypes.c_float(1), ctypes.c_float(0)
    stream = P(torch.cuda.current_stream().cuda_stream)
    algo = result if (h == 0 and returned.value > 0) else None
    s = lib.cublasLtMatmul(handle, desc, ctypes.byref(alpha), P(w.data_ptr()), layouts[0], P(x.data_ptr()), layouts[1], ctypes.byref(beta),
                           P(out.data_ptr()), layouts[2], P(out.data_ptr()), layouts[3], algo, P(ws.data_ptr()), ctypes.c_uint64(ws.numel()), stream)
    torch.cuda.synchronize()
    err = None
    if s == 0:
        ref = (x.float() * 0.25) @ (w.float() * 0.5).t() + (b.float() if bias else 0)
        err = ((out.float() - ref).abs().max() / ref.abs().max()).item()
    print(f"m{m} n{n} k{k} bias={bias} fast={fast_accum} align={alignment_prefs} C={'bf16' if c_type == R_16BF else c_type} ws={workspace_mb}MiB: "
          f"heuristic {h} returned {returned.value} state {state}; matmul {s}" + (f", rel err {err:.2e}" if err is not None else ""))
    return s


print(torch.cuda.get_device_name(), torch.__version__)
w = (torch.randn(3072, 3072, device="cuda") * 0.1).to(torch.float8_e4m3fn)
x = (torch.randn(7920, 3072, device="cuda") * 0.1).to(torch.float8_e4m3fn)
one = torch.tensor(1.0, device="cuda")
print("torch._scaled_mm:", torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16).shape)
for (m, n, k), bias, fast, align, ctype, wsmb in itertools.product(
        [(7920, 3072, 3072), (512, 3072, 3072), (7920, 14336, 3072)], [False, True], [False, True], [False, True], [R_16BF, R_32F], [32]):
    run(m, n, k, bias, fast, align, ctype, wsmb)
