#!/usr/bin/env python3
"""Reference cases for the engine's fused ops, computed with PyTorch as diffusers and FlashWorld compute them.

Writes Tests/EngineTests/Fixtures/fused/ (committed; the Swift tests never run Python) in the op fixtures' format
(see make_op_fixtures.py: manifest.json plus raw little-endian NAME.inK.bin / NAME.outK.bin files):

- modulated_layer_norm  diffusers' WanTransformerBlock: (layer_norm(x.float()) * (1 + scale) + shift).type_as(x)
- rms_norm_rope         diffusers' RMSNorm across heads (float32 maths, then the weight), rounded to x's dtype, then
                        Wan's apply_rotary_emb in float64 on interleaved pairs, rounded to x's dtype
- gated_residual        (x.float() + y * gate).type_as(x)
- channel_rms_norm_silu diffusers' WanResidualBlock's norm and activation: F.silu(WanRMS_norm(x)) with WanRMS_norm
                        F.normalize(x, dim=1) * sqrt(C) * gamma (+ bias), computed in float32, rounded once to x's dtype
- quantize_fp8          FlashWorld quant.py's per_tensor_quantize on a bf16 activation: the scale is bf16
- linear_fp8            FP8DynamicLinear: weight quantised once from float32, activation per call, then
                        (Aq @ Wqᵀ) · (1/s_a) · w_scale + bias in float32 (torch._scaled_mm's arithmetic), bf16 out

Needs only torch (CPU is enough; the committed files were written by torch 2.11 on the GPU machine's CPU):

    python3 tools/engine/make_fused_fixtures.py [OUT_FOLDER]
"""

import json
import pathlib
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Tests" / "EngineTests" / "Fixtures" / "fused"
NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float8_e4m3fn: "float8_e4m3fn"}
BF16_ULP = 2.0 ** -8
cases = []


def rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def write(name, kind, index, t):
    t = t.contiguous()
    raw = t.view(torch.uint8) if t.dtype in (torch.bfloat16, torch.float8_e4m3fn) else t
    file = f"{name}.{kind}{index}.bin"
    (OUT / file).write_bytes(raw.numpy().tobytes())
    return {"file": file, "dtype": NAMES[t.dtype], "shape": list(t.shape)}


def case(name, op, attrs, inputs, outputs, metric, value, why):
    cases.append({
        "name": name, "op": op, "attrs": attrs,
        "inputs": [write(name, "in", i, t) for i, t in enumerate(inputs)],
        "outputs": [write(name, "out", i, t) for i, t in enumerate(outputs)],
        "tolerance": {"metric": metric, "value": value, "why": why},
    })


def normal(name, shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng(name).standard_normal(shape).astype(np.float32) * scale).to(dtype)


def bf16_bound(out, ulps):
    return float(ulps * BF16_ULP * out.float().abs().max())


def modulated(name, dtype):
    x = normal(name + "x", (2, 37, 48), 3.0, dtype) + 0.5
    shift, scale = normal(name + "s", (2, 1, 48), 0.5), normal(name + "c", (2, 1, 48), 0.5)
    out = (F.layer_norm(x.float(), (48,), eps=1e-6) * (1 + scale) + shift).type_as(x)
    if dtype == torch.float32:
        case(name, "modulated_layer_norm", {"eps": 1e-6}, [x, shift, scale], [out], "max_abs", 2e-5, "float32 two-pass norm; outputs O(5)")
    else:
        case(name, "modulated_layer_norm", {"eps": 1e-6}, [x, shift, scale], [out], "max_abs", bf16_bound(out, 3),
             "bf16 output: the fused kernel rounds once, the CPU composition three times (norm, product, sum): 3 bf16 ulps of max|out|")


def rms_rope(name, dtype):
    heads, hd, l = 2, 24, 45
    x = normal(name + "x", (1, l, heads * hd), 2.0, dtype)
    w = 1 + normal(name + "w", (heads * hd,), 0.1)
    angles = torch.from_numpy(rng(name + "a").uniform(-6, 6, (l, hd // 2)).astype(np.float32))
    cos, sin = torch.cos(angles), torch.sin(angles)
    x32 = x.float()
    normed = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6) * w).to(dtype)
    pairs = normed.to(torch.float64).unflatten(2, (heads, hd // 2, 2))
    c, s = cos.double()[None, :, None, :], sin.double()[None, :, None, :]
    out = torch.stack([pairs[..., 0] * c - pairs[..., 1] * s, pairs[..., 0] * s + pairs[..., 1] * c], -1).flatten(3).to(dtype)
    if dtype == torch.float32:
        case(name, "rms_norm_rope", {"eps": 1e-6, "heads": heads}, [x, w, cos, sin], [out], "max_abs", 1e-5,
             "float32 mean of squares then two products per element; outputs O(4)")
    else:
        case(name, "rms_norm_rope", {"eps": 1e-6, "heads": heads}, [x, w, cos, sin], [out], "max_abs", bf16_bound(out, 3),
             "bf16: the reference rounds after the norm and after the rotation; a fused kernel rounds once: 3 bf16 ulps of max|out|")


def gated(name, dtype):
    x, y = normal(name + "x", (2, 5, 48), 2.0, dtype), normal(name + "y", (2, 5, 48), 2.0, dtype)
    gate = normal(name + "g", (2, 1, 48), 0.5)
    out = (x.float() + y.float() * gate).type_as(x)
    if dtype == torch.float32:
        case(name, "gated_residual", {}, [x, y, gate], [out], "max_abs", 1e-6, "one float32 product and sum")
    else:
        case(name, "gated_residual", {}, [x, y, gate], [out], "max_abs", bf16_bound(out, 2),
             "bf16: one rounding in the reference and the fused kernel, two in the CPU composition")


def norm_silu(name, dtype, shape, bias):
    x = normal(name + "x", shape, 2.0, dtype)
    x[0, :, 0, 0] = 0  # a zero channel vector: the norm's clamp at eps
    c = shape[1]
    gamma = 1 + normal(name + "g", (c, 1, 1), 0.3)
    beta = normal(name + "b", (c, 1, 1), 0.5) if bias else None
    y = F.normalize(x.float(), dim=1, eps=1e-12) * c ** 0.5 * gamma + (beta if bias else 0)
    out = F.silu(y).to(dtype)
    inputs = [x, gamma] + ([beta] if bias else [])
    if dtype == torch.float32:
        case(name, "channel_rms_norm_silu", {"eps": 1e-12}, inputs, [out], "max_abs", 2e-5, "float32 sums of squares in another order; outputs O(5)")
    else:
        case(name, "channel_rms_norm_silu", {"eps": 1e-12}, inputs, [out], "max_abs", bf16_bound(out, 2),
             "bf16 output: the fused kernel rounds once, the CPU composition twice (norm, SiLU): 2 bf16 ulps of max|out|")


def quantize_activation(a):
    amin, amax = a.aminmax()
    scale = 448.0 / torch.maximum(amin.abs(), amax.abs()).clamp(min=1e-12)
    q = (a * scale).clamp(min=-448.0, max=448.0).to(torch.float8_e4m3fn)
    return q, scale.float().reciprocal().reshape(1)


def fp8(name):
    x = normal(name + "x", (33, 64), 3.0, torch.bfloat16)
    q, inv = quantize_activation(x)
    case(name, "quantize_fp8", {}, [x], [q, inv], "exact", 0.0, "bit-exact: bf16 scale and product, saturating e4m3 rounding")


def fp8_linear(name):
    x = normal(name + "x", (9, 64), 2.0, torch.bfloat16)
    weight = normal(name + "w", (32, 64), 0.1)
    bias = normal(name + "b", (32,), 0.5, torch.bfloat16)
    wmin, wmax = weight.aminmax()
    wscale = 448.0 / torch.maximum(wmin.abs(), wmax.abs()).clamp(min=1e-12)
    wq = (weight * wscale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    winv = wscale.float().reciprocal().reshape(1)
    q, ainv = quantize_activation(x)
    out = ((q.float() @ wq.float().T) * (ainv * winv) + bias.float()).to(torch.bfloat16)
    case(name, "linear_fp8", {}, [x, wq, winv, bias], [out], "max_abs", bf16_bound(out, 2),
         "same e4m3 operands; float32 sums in another order, the two scales multiplied in another order, bf16 out")


OUT.mkdir(parents=True, exist_ok=True)
for f in OUT.glob("*"):
    f.unlink()
modulated("modulated_layer_norm_f32", torch.float32)
modulated("modulated_layer_norm_bf16", torch.bfloat16)
rms_rope("rms_norm_rope_f32", torch.float32)
rms_rope("rms_norm_rope_bf16", torch.bfloat16)
gated("gated_residual_f32", torch.float32)
gated("gated_residual_bf16", torch.bfloat16)
norm_silu("channel_rms_norm_silu_f32", torch.float32, (2, 6, 5, 7), False)
norm_silu("channel_rms_norm_silu_bf16", torch.bfloat16, (2, 80, 9, 14), False)
norm_silu("channel_rms_norm_silu_bf16_odd_bias", torch.bfloat16, (1, 12, 5, 13), True)
fp8("quantize_fp8_bf16")
fp8_linear("linear_fp8_bf16")
(OUT / "manifest.json").write_text(json.dumps({"generator": "tools/engine/make_fused_fixtures.py", "torch_version": torch.__version__, "cases": cases}, indent=1))
print(f"wrote {len(cases)} cases to {OUT}")
