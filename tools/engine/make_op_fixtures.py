#!/usr/bin/env python3
"""Reference cases for the tensor engine's CPU ops, computed with PyTorch / diffusers / transformers.

Writes Tests/EngineTests/Fixtures/ops/ (committed; the Swift tests never run Python):

    manifest.json          one entry per case (format below)
    NAME.in0.bin ...       raw little-endian tensor data, C order, no header
    NAME.out0.bin ...

Set-up and run (CPU only, a few seconds; no model weights are used or downloaded), from the repository root:

    python3 -m venv /tmp/gsvenv
    /tmp/gsvenv/bin/pip install torch numpy          # CPU wheel; or --index-url https://download.pytorch.org/whl/cpu
    /tmp/gsvenv/bin/pip install diffusers transformers
    /tmp/gsvenv/bin/python tools/engine/make_op_fixtures.py

The committed files were made with torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.23.0 (the versions are recorded
in manifest.json). Inputs come from numpy's PCG64 seeded per case (crc32 of the case name), torch runs on one thread,
so a rerun with the same versions writes identical bytes. Two bfloat16 cases (linear/matmul on bfloat16 operands) go
through oneDNN, whose kernel choice depends on the CPU; they may differ by one bfloat16 ulp in a few elements on another
machine, which their tolerance allows.

manifest.json:
    {"generator", "torch_version", "diffusers_version", "transformers_version", "cases": [CASE, ...]}
    CASE   = {"name", "op", "attrs", "inputs": [TENSOR], "outputs": [TENSOR], "tolerance": TOL}
    TENSOR = {"file", "dtype", "shape"}; dtype one of float32 float16 bfloat16 float8_e4m3fn float8_e5m2 int32 int64
             bool; bool is 1 byte (0/1), float16/bfloat16 2 raw bytes, float8 1 raw byte. shape [] is a scalar.
    TOL    = {"metric", "value", "why"}; every output of the case is compared with it, both sides widened to float64:
        exact    bit-identical in the output dtype (any NaN matches any NaN; the sign of zero counts)
        max_abs  max |got - expected| <= value (value is in output units and was chosen from the output's scale)
        max_rel  |got - expected| <= value * |expected| for every element
        nmse     sum((got - expected)^2) / sum(expected^2) <= value
      For the three numeric metrics, a non-finite expected element must be matched exactly (same infinity, NaN for NaN).

Every case is also checked here against an independent numpy reference (float32 emulation of the straightforward
algorithm, or float64 maths rounded to the output dtype): the script stops if that reference fails the case's tolerance,
and prints how much of the tolerance it used. Op-by-op notes (semantics as read in the installed packages):

- linear          out = x @ W^T + b. A float32 x with bfloat16 W/b is computed in float32 from the upcast weights.
- conv2d          attrs stride, padding ([ph, pw]); "pre_pad" [left, right, top, bottom] (F.pad order) is a zero pad
                  applied to x before the convolution, as Wan's VAE does with ZeroPad2d((0, 1, 0, 1)) + stride-2 conv.
- patch_embed_3d  Conv3d with kernel = stride = patch (1, 2, 2); odd H or W are floored like the convolution does.
- channel_rms_norm  diffusers WanRMS_norm: F.normalize(x, dim=1) (x / max(||x||_2, 1e-12)) * sqrt(C) * gamma + bias;
                  gamma (and bias) are given in the parameter's own shape, [C,1,1] for images or [C,1,1,1] for video.
- rope_3d_frequencies / rope_apply: see the note in each case's attrs (layouts of the diffusers outputs).
- cast to float8 saturates: expected = torch x.clamp(-max, max).to(float8) (so +-inf becomes +-max, NaN stays NaN).
"""

import json
import math
import pathlib
import shutil
import zlib

import numpy as np
import torch
import torch.nn.functional as F

import diffusers
import transformers
from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.transformers import transformer_wan
from diffusers.models.transformers.transformer_wan import WanAttnProcessor, WanRotaryPosEmbed
from transformers.models.t5.modeling_t5 import T5Attention, T5LayerNorm

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "EngineTests" / "Fixtures" / "ops"
BUDGET = 1_200_000

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

DTYPE_NAMES = {
    torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
    torch.float8_e4m3fn: "float8_e4m3fn", torch.float8_e5m2: "float8_e5m2",
    torch.int32: "int32", torch.int64: "int64", torch.bool: "bool",
}
EPS32 = 2.0 ** -23
BF16_ULP = 2.0 ** -7   # one bfloat16 ulp is at most this times |value|


# ----------------------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------------------

def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return t.view(torch.uint8).numpy().tobytes()
    if t.dtype == torch.bool:
        return t.to(torch.uint8).numpy().tobytes()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    if t.dtype == torch.int32:
        return t.numpy().astype("<i4").tobytes()
    if t.dtype == torch.int64:
        return t.numpy().astype("<i8").tobytes()
    raise TypeError(t.dtype)


def as_f64(t):
    """A tensor (or numpy array) widened to a float64 numpy array."""
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t.dtype == torch.bool or not t.is_floating_point():
            return t.to(torch.int64).numpy().astype(np.float64)
        return t.to(torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def measure(metric, got, exp):
    """The case metric of `got` against `exp` (both float64 arrays of one shape); inf when non-finite values differ."""
    got, exp = np.asarray(got, np.float64), np.asarray(exp, np.float64)
    assert got.shape == exp.shape, (got.shape, exp.shape)
    fin = np.isfinite(exp)
    if not np.array_equal(got[~fin], exp[~fin], equal_nan=True):
        return math.inf
    if not np.all(np.isfinite(got[fin])):
        return math.inf
    g, e = got[fin], exp[fin]
    if metric == "exact":
        same = (g == e) & (np.signbit(g) == np.signbit(e))
        return 0.0 if same.all() else math.inf
    if g.size == 0:
        return 0.0
    d = np.abs(g - e)
    if metric == "max_abs":
        return float(d.max())
    if metric == "max_rel":
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(d == 0, 0.0, d / np.abs(e))
        return float(r.max())
    if metric == "nmse":
        den = float(np.sum(e * e))
        return float(np.sum(d * d)) / den if den > 0 else (0.0 if d.max() == 0 else math.inf)
    raise ValueError(metric)


CASES = []
TOTAL = [0]
REPORT = []


def tol(metric, value, why):
    return {"metric": metric, "value": float(value), "why": why}


def add(name, op, attrs, inputs, outputs, tolerance, refs):
    """Record a case. `refs`: independent references, one list per reference, each aligned with `outputs`."""
    assert name not in {c["name"] for c in CASES}, name
    worst = 0.0
    for ref in refs:
        assert len(ref) == len(outputs)
        for o, r in zip(outputs, ref):
            m = measure(tolerance["metric"], as_f64(r), as_f64(o))
            limit = tolerance["value"]
            if not m <= limit:
                raise AssertionError(f"{name}: reference misses the tolerance: {tolerance['metric']} {m} > {limit}")
            worst = max(worst, m / limit if limit > 0 else 0.0)
    entry = {"name": name, "op": op, "attrs": attrs, "inputs": [], "outputs": [], "tolerance": tolerance}
    for kind, tensors in (("in", inputs), ("out", outputs)):
        for i, t in enumerate(tensors):
            fname = f"{name}.{kind}{i}.bin"
            data = tensor_bytes(t)
            (OUT / fname).write_bytes(data)
            TOTAL[0] += len(data)
            entry["inputs" if kind == "in" else "outputs"].append(
                {"file": fname, "dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape)})
    CASES.append(entry)
    REPORT.append((name, op, tolerance["metric"], tolerance["value"], worst))


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def randn(rng, *shape, scale=1.0, offset=0.0):
    return torch.from_numpy((rng.standard_normal(shape) * scale + offset).astype(np.float32))


# ----------------------------------------------------------------------------------------------------------------------
# independent numpy helpers
# ----------------------------------------------------------------------------------------------------------------------

FORMATS = {  # mantissa bits, smallest normal exponent, largest finite, has infinity
    "bfloat16": (7, -126, float.fromhex("0x1.fep127"), True),
    "float16": (10, -14, 65504.0, True),
    "float8_e4m3fn": (3, -6, 448.0, False),
    "float8_e5m2": (2, -14, 57344.0, True),
}


def round_to(v, fmt):
    """Round float64 values to the nearest value of `fmt`, ties to even (IEEE); overflow -> inf (or NaN for e4m3fn)."""
    mbits, emin, vmax, has_inf = FORMATS[fmt]
    v = np.asarray(v, np.float64)
    a = np.abs(v)
    _, ex = np.frexp(np.where(np.isfinite(a) & (a > 0), a, 1.0))
    e = np.maximum(ex - 1, emin)
    q = np.ldexp(1.0, e - mbits)
    r = np.round(a / q) * q                      # np.round rounds halves to even
    r = np.where(r > vmax, np.inf if has_inf else np.nan, r)
    out = np.copysign(r, v)
    out = np.where(np.isinf(v), v if has_inf else np.nan, out)
    return np.where(np.isnan(v), np.nan, out)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def seq_dot_f32(a, b):
    """a[..., K] . b[N, K] -> [..., N], accumulated sequentially in float32 (the plainest engine loop)."""
    a, b = f32(a), f32(b)
    acc = np.zeros(a.shape[:-1] + (b.shape[0],), np.float32)
    for k in range(a.shape[-1]):
        acc = (acc + a[..., k:k + 1] * b[:, k]).astype(np.float32)
    return acc


def np_softmax_f32(x, axis=-1):
    x = f32(x)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp((x - m).astype(np.float32)).astype(np.float32)
    return (e / np.sum(e, axis=axis, keepdims=True, dtype=np.float32)).astype(np.float32)


def np_conv2d_f64(x, w, b, stride, padding):
    x, w = as_f64(x), as_f64(w)
    sh, sw = stride
    ph, pw = padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    if b is not None:
        out += as_f64(b)[None, :, None, None]
    return out


# ----------------------------------------------------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------------------------------------------------

def dot_tol(expected, k, extra=""):
    """max_abs for a float32 dot product of length k: 4*sqrt(k)*2^-23 * the output's largest magnitude (with a floor)."""
    scale = float(np.abs(as_f64(expected)).max())
    return tol("max_abs", 4 * math.sqrt(k) * EPS32 * max(scale, 1.0),
               f"float32 accumulation over {k} terms in any order: 4*sqrt(K)*2^-23 of max(1, max|out|) "
               f"(max|out| = {scale:.3g}){extra}")


def bf16_out_tol(expected, why):
    scale = float(np.abs(as_f64(expected)).max())
    return tol("max_abs", 1.01 * BF16_ULP * scale,
               f"bfloat16 output: float32 accumulation then one rounding may flip 1 bf16 ulp (<= 2^-7 of max|out| "
               f"{scale:.3g}); {why}")


def cases_linear():
    name = "linear_f32_bias_rank3"
    rng = rng_for(name)
    x, w, b = randn(rng, 2, 5, 37), randn(rng, 19, 37, scale=0.2), randn(rng, 19)
    y = F.linear(x, w, b)
    ref = seq_dot_f32(x.numpy(), w.numpy()) + b.numpy()
    add(name, "linear", {}, [x, w, b], [y], dot_tol(y, 37), [[ref]])

    name = "linear_f32_nobias"
    rng = rng_for(name)
    x, w = randn(rng, 6, 70), randn(rng, 13, 70, scale=0.1)
    y = F.linear(x, w)
    add(name, "linear", {}, [x, w], [y], dot_tol(y, 70), [[seq_dot_f32(x.numpy(), w.numpy())]])

    name = "linear_f32x_bf16_weight"
    rng = rng_for(name)
    x = randn(rng, 3, 4, 45)
    w = randn(rng, 11, 45, scale=0.15).to(torch.bfloat16)
    b = randn(rng, 11).to(torch.bfloat16)
    y = F.linear(x, w.float(), b.float())
    ref = seq_dot_f32(x.numpy(), w.float().numpy()) + b.float().numpy()
    add(name, "linear", {"note": "float32 x, bfloat16 weight and bias: expected is float32 maths on the exactly "
                                 "upcast weights; output float32"},
        [x, w, b], [y], dot_tol(y, 45), [[ref]])

    name = "linear_bf16"
    rng = rng_for(name)
    x = randn(rng, 2, 7, 61).to(torch.bfloat16)
    w = randn(rng, 23, 61, scale=0.15).to(torch.bfloat16)
    b = randn(rng, 23).to(torch.bfloat16)
    y = F.linear(x, w, b)
    ref = round_to(as_f64(x) @ as_f64(w).T + as_f64(b), "bfloat16")
    add(name, "linear", {"note": "all bfloat16; expected is torch's CPU bf16 linear (fp32 accumulation, one rounding)"},
        [x, w, b], [y], bf16_out_tol(y, "K = 61"), [[ref]])


def cases_conv2d():
    specs = [
        ("conv2d_3x3_pad1", (1, 5, 9, 11), (7, 5, 3, 3), True, 1, 1, None),
        ("conv2d_1x1_nobias", (2, 6, 5, 7), (3, 6, 1, 1), False, 1, 0, None),
        ("conv2d_3x1_pad10", (1, 3, 6, 5), (4, 3, 3, 1), True, 1, [1, 0], None),
        ("conv2d_3x3_s2_prepad_even", (1, 4, 10, 8), (6, 4, 3, 3), True, 2, 0, [0, 1, 0, 1]),
        ("conv2d_3x3_s2_prepad_odd", (2, 3, 9, 7), (5, 3, 3, 3), True, 2, 0, [0, 1, 0, 1]),
    ]
    for name, xs, ws, has_b, stride, padding, pre_pad in specs:
        rng = rng_for(name)
        x = randn(rng, *xs)
        w = randn(rng, *ws, scale=1.0 / math.sqrt(ws[1] * ws[2] * ws[3]))
        b = randn(rng, ws[0]) if has_b else None
        xp = F.pad(x, pre_pad) if pre_pad else x
        y = F.conv2d(xp, w, b, stride=stride, padding=padding)
        st = (stride, stride)
        pd = tuple(padding) if isinstance(padding, list) else (padding, padding)
        ref = np_conv2d_f64(xp, w, b, st, pd)
        attrs = {"stride": stride, "padding": padding}
        if pre_pad:
            attrs["pre_pad"] = pre_pad
            attrs["note"] = ("pre_pad = [left, right, top, bottom] zeros added to x before the conv (Wan VAE "
                             "ZeroPad2d((0,1,0,1)) + Conv2d(stride 2)); padding 0 after that")
        k = ws[1] * ws[2] * ws[3]
        add(name, "conv2d", attrs, [x, w] + ([b] if has_b else []), [y], dot_tol(y, k), [[ref]])


def cases_patch_embed():
    for name, xs, o in (("patch_embed_3d_basic", (1, 6, 3, 6, 10), 12), ("patch_embed_3d_oddhw", (2, 5, 2, 7, 5), 8)):
        rng = rng_for(name)
        x = randn(rng, *xs)
        w = randn(rng, o, xs[1], 1, 2, 2, scale=0.3)
        b = randn(rng, o)
        y = F.conv3d(x, w, b, stride=(1, 2, 2))
        n, c, t, h, wd = xs
        hh, ww = h // 2, wd // 2
        xv = as_f64(x)[:, :, :, :2 * hh, :2 * ww].reshape(n, c, t, hh, 2, ww, 2)
        ref = np.einsum("ncthiwj,ocij->nothw", xv, as_f64(w)[:, :, 0]) + as_f64(b)[None, :, None, None, None]
        add(name, "patch_embed_3d", {"patch_size": [1, 2, 2], "note": "Conv3d(kernel=stride=(1,2,2)); odd H/W floor"},
            [x, w, b], [y], dot_tol(y, xs[1] * 4), [[ref]])


def cases_layer_norm():
    name = "layer_norm_affine"
    rng = rng_for(name)
    x = randn(rng, 2, 5, 37, scale=2.0, offset=0.5)
    w, b = randn(rng, 37, scale=0.5, offset=1.0), randn(rng, 37, scale=0.3)
    y = F.layer_norm(x, (37,), w, b, 1e-5)
    xd = as_f64(x)
    ref = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5) * as_f64(w) + as_f64(b)
    add(name, "layer_norm", {"eps": 1e-5, "elementwise_affine": True}, [x, w, b], [y],
        tol("max_abs", 2e-5, "float32 mean/variance over 37; outputs O(5)"), [[ref]])

    name = "layer_norm_noaffine_offset"
    rng = rng_for(name)
    x = randn(rng, 4, 64, scale=0.5, offset=20.0)
    x[1] = 3.25                       # constant row: variance 0 -> output 0
    x[2] = x[2] * 4.0 - 60.0          # large offset relative to the spread
    y = F.layer_norm(x, (64,), None, None, 1e-6)
    xd = as_f64(x)
    ref = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-6)
    add(name, "layer_norm", {"eps": 1e-6, "elementwise_affine": False,
                             "note": "Wan's FP32LayerNorm(elementwise_affine=False); rows: mean 20, constant, mean -140"},
        [x], [y], tol("max_abs", 5e-5, "offset rows (|mean|/std up to ~70) cost a two-pass float32 norm ~1e-5; "
                                       "a one-pass E[x^2]-E[x]^2 fails"), [[ref]])


def cases_t5_rms_norm():
    name = "t5_rms_norm_f32"
    rng = rng_for(name)
    x = randn(rng, 2, 5, 37, scale=3.0)
    x[1, 2] = 0.0
    mod = T5LayerNorm(37, eps=1e-6)
    with torch.no_grad():
        mod.weight.copy_(randn(rng, 37, scale=0.3, offset=1.0))
        y = mod(x)
    xd = as_f64(x)
    ref = xd / np.sqrt((xd * xd).mean(-1, keepdims=True) + 1e-6) * as_f64(mod.weight)
    add(name, "t5_rms_norm", {"eps": 1e-6, "note": "x * rsqrt(mean(x^2) + eps) * weight; no mean subtraction; "
                                                  "one all-zero row"},
        [x, mod.weight.detach().clone()], [y],
        tol("max_rel", 2e-6, "float32 sum of squares over 37 then rsqrt: a few ulp"), [[ref]])

    name = "t5_rms_norm_bf16"
    rng = rng_for(name)
    x = randn(rng, 3, 24, scale=2.0).to(torch.bfloat16)
    mod = T5LayerNorm(24, eps=1e-6).to(torch.bfloat16)
    with torch.no_grad():
        mod.weight.copy_(randn(rng, 24, scale=0.3, offset=1.0).to(torch.bfloat16))
        y = mod(x)
    assert y.dtype == torch.bfloat16
    xd = as_f64(x)
    h = round_to(xd / np.sqrt((xd * xd).mean(-1, keepdims=True) + 1e-6), "bfloat16")
    ref = round_to(h * as_f64(mod.weight), "bfloat16")
    add(name, "t5_rms_norm", {"eps": 1e-6, "note": "bf16 x and weight (transformers T5LayerNorm): variance in float32, "
                                                  "x*rsqrt promotes to float32, rounded to bf16, then bf16 weight * "
                                                  "it (rounded again); output bfloat16"},
        [x, mod.weight.detach().clone()], [y],
        tol("max_rel", 2 * BF16_ULP, "two bf16 roundings: each may land 1 ulp (<= 2^-7 relative) apart"), [[ref]])


def cases_channel_rms_norm():
    specs = [
        ("channel_rms_norm_images", (2, 5, 4, 7), True, False),
        ("channel_rms_norm_video", (1, 6, 3, 5, 4), False, False),
        ("channel_rms_norm_images_bias", (1, 5, 3, 3), True, True),
    ]
    for name, xs, images, bias in specs:
        rng = rng_for(name)
        x = randn(rng, *xs, scale=2.0)
        x[0, :, 0, 0] = 0.0   # a zero channel vector: the norm is clamped to 1e-12 -> output is bias
        c = xs[1]
        mod = WanRMS_norm(c, channel_first=True, images=images, bias=bias)
        with torch.no_grad():
            mod.gamma.copy_(randn(rng, *mod.gamma.shape, scale=0.3, offset=1.0))
            if bias:
                mod.bias.copy_(randn(rng, *mod.bias.shape, scale=0.5))
            y = mod(x)
        xd = as_f64(x)
        nrm = np.maximum(np.sqrt((xd * xd).sum(1, keepdims=True)), 1e-12)
        ref = xd / nrm * math.sqrt(c) * as_f64(mod.gamma)[None]
        ins = [x, mod.gamma.detach().clone()]
        if bias:
            ref = ref + as_f64(mod.bias)[None]
            ins.append(mod.bias.detach().clone())
        add(name, "channel_rms_norm",
            {"eps": 1e-12, "images": images, "bias": bias,
             "note": "diffusers WanRMS_norm(dim=C, channel_first=True): F.normalize(x, dim=1) * C**0.5 * gamma + bias "
                     "(F.normalize = x / max(||x||_2, 1e-12)); gamma/bias in the parameter's shape [C,1,1] (images) or "
                     "[C,1,1,1] (video); pixel (0,0) of the first frame of batch 0 is all zeros"},
            ins, [y], tol("max_abs", 1e-5, "float32 L2 norm over C <= 6; outputs O(5)"), [[ref]])


def cases_activations():
    name_base = "act"
    rng = rng_for(name_base)
    special = np.array([-30, -29.5, -20, -15, -10, -5, -1, -1e-3, -1e-8, -0.0, 0.0, 1e-8, 1e-3, 1, 5, 10, 15, 20, 29.5,
                        30], np.float32)
    x = torch.from_numpy(np.concatenate([special, np.linspace(-30, 30, 61, dtype=np.float32),
                                         (rng.standard_normal(47) * 3).astype(np.float32)]))
    xd = as_f64(x)
    sig = 1.0 / (1.0 + np.exp(-xd))
    # sigmoid / silu: relative accuracy holds even for tiny outputs when computed as 1/(1+exp(-x)).
    add("sigmoid_f32", "sigmoid", {}, [x], [torch.sigmoid(x)],
        tol("max_rel", 1e-5, "1/(1+exp(-x)) in float32 is relatively accurate to a few ulp even at -30 (9e-14)"),
        [[sig]])
    add("silu_f32", "silu", {}, [x], [F.silu(x)],
        tol("max_rel", 1e-5, "x*sigmoid(x) in float32: a few ulp relative everywhere"), [[xd * sig]])
    g = F.gelu(x, approximate="tanh")
    u = math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)
    ref = 0.5 * xd * (1 + np.tanh(u))
    xf = f32(x.numpy())
    uf = (np.float32(math.sqrt(2 / math.pi)) * (xf + np.float32(0.044715) * xf * xf * xf)).astype(np.float32)
    alt = (xf * (np.float32(1) / (np.float32(1) + np.exp(-2 * uf)))).astype(np.float32)   # x*sigmoid(2u) form
    add("gelu_tanh_f32", "gelu_tanh", {"approximate": "tanh"}, [x], [g],
        tol("max_abs", 1e-5, "0.5x(1+tanh(u)) in float32: 1+tanh cancels for x<0, so absolute error ~2^-23*|x| "
                             "(|x|<=30); relative error is meaningless where the output is ~0"),
        [[ref], [alt]])
    positive = torch.from_numpy(np.concatenate([np.array([0.0, 1e-30, 1e-8, 1e-7, 0.5, 1.0, 1.0000001, 2.0, 1e30, -1.0],
                                                         np.float32), np.abs(rng.standard_normal(40) * 3).astype(np.float32)]))
    add("log_f32", "log", {"note": "0 -> -inf, a negative input -> NaN"}, [positive], [torch.log(positive)],
        tol("max_abs", 1e-6, "float32 natural logarithm: within an ulp or two of the correctly rounded value"),
        [[np.log(as_f64(positive))]])


def cases_softmax():
    name = "softmax_rows"
    rng = rng_for(name)
    x = randn(rng, 6, 37, scale=2.0)
    x[1] = torch.from_numpy(rng.choice([-50.0, 50.0], 37).astype(np.float32)) + randn(rng, 37, scale=0.1)
    x[2] = 3.0                                              # equal values -> 1/37 each
    x[3] = randn(rng, 37, scale=1.0) + 50.0                 # large common offset
    x[4, ::5] = -math.inf                                   # masked entries
    x[5] = randn(rng, 37, scale=15.0)
    y = torch.softmax(x, dim=-1)
    add(name, "softmax", {"dim": -1, "note": "rows: random, +-50, all equal, +50 offset, some -inf, wide spread"},
        [x], [y], tol("max_abs", 1e-6, "outputs in [0,1]; float32 exp and a 37-term sum: a few ulp of 1"),
        [[np_softmax_f32(x.numpy())]])

    name = "softmax_long_3d"
    rng = rng_for(name)
    x = randn(rng, 2, 3, 129, scale=4.0)
    y = torch.softmax(x, dim=-1)
    add(name, "softmax", {"dim": -1}, [x], [y], tol("max_abs", 1e-6, "outputs in [0,1]; 129-term float32 sum"),
        [[np_softmax_f32(x.numpy())]])


def np_sdpa_f32(q, k, v, bias, scale):
    q, k, v = f32(q), f32(k), f32(v)
    s = (np.einsum("bhld,bhsd->bhls", q, k).astype(np.float32) * np.float32(scale)).astype(np.float32)
    if bias is not None:
        s = (s + f32(bias)).astype(np.float32)
    return np.einsum("bhls,bhsd->bhld", np_softmax_f32(s), v).astype(np.float32)


def cases_sdpa():
    name = "sdpa_nobias"
    rng = rng_for(name)
    q, k, v = randn(rng, 2, 3, 7, 20), randn(rng, 2, 3, 13, 20), randn(rng, 2, 3, 13, 12)
    y = F.scaled_dot_product_attention(q, k, v)
    add(name, "sdpa", {"scale": None, "note": "scale None = 1/sqrt(D); L=7, S=13, D=20, Dv=12"}, [q, k, v], [y],
        tol("max_abs", 5e-6, "float32 softmax-weighted average of O(1) values: a few ulp"),
        [[np_sdpa_f32(q, k, v, None, 1 / math.sqrt(20))]])

    name = "sdpa_bias_t5like"
    rng = rng_for(name)
    q, k, v = randn(rng, 2, 3, 9, 16), randn(rng, 2, 3, 9, 16), randn(rng, 2, 3, 9, 16)
    bias = randn(rng, 1, 3, 9, 9, scale=3.0)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    add(name, "sdpa", {"scale": None, "note": "additive float bias [1,H,L,S] broadcast over batch; scale 1/sqrt(D)"},
        [q, k, v, bias], [y], tol("max_abs", 5e-6, "float32 softmax-weighted average of O(1) values: a few ulp"),
        [[np_sdpa_f32(q, k, v, bias, 1 / math.sqrt(16))]])

    name = "sdpa_bias_mask_scale1"
    rng = rng_for(name)
    q, k, v = randn(rng, 2, 2, 6, 12, scale=0.3), randn(rng, 2, 2, 11, 12, scale=0.3), randn(rng, 2, 2, 11, 12)
    pos = randn(rng, 1, 2, 6, 11, scale=2.0)
    mask = torch.zeros(2, 1, 1, 11)
    mask[0, :, :, 8:] = torch.finfo(torch.float32).min      # padded keys, as transformers builds encoder masks
    mask[1, :, :, 10:] = torch.finfo(torch.float32).min
    bias = pos + mask                                          # [2,2,6,11]
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
    add(name, "sdpa", {"scale": 1.0, "note": "T5/UMT5 encoder style: no 1/sqrt(D) scaling (T5Attention.scaling = 1.0), "
                                             "bias = position bias + padding mask of finfo(float32).min"},
        [q, k, v, bias], [y], tol("max_abs", 5e-6, "float32 softmax-weighted average of O(1) values: a few ulp"),
        [[np_sdpa_f32(q, k, v, bias, 1.0)]])


ROPE_NOTE = ("diffusers WanRotaryPosEmbed.forward returns (freqs_cos, freqs_sin), each float32 of shape "
             "[1, F*Hp*Wp, 1, head_dim] with F = frames//p_t, Hp = height//p_h, Wp = width//p_w; the token index is "
             "(f*Hp + h)*Wp + w; the last dim is [t_dim | h_dim | w_dim] with h_dim = w_dim = 2*(head_dim//6), "
             "t_dim = head_dim - 2*h_dim; inside each block entry 2i and 2i+1 both hold cos/sin(pos * theta^(-2i/dim)) "
             "(repeat_interleave), pos = f, h or w. Angles are computed in float64 (float32 only on MPS) and cast.")


def rope_ref(head_dim, patch, theta, frames, height, width, dtype=np.float64):
    hd = 2 * (head_dim // 6)
    dims = [head_dim - 2 * hd, hd, hd]
    grid = [frames // patch[0], height // patch[1], width // patch[2]]
    cols_c, cols_s = [], []
    idx = np.indices(grid).reshape(3, -1)      # f, h, w per token, token = (f*Hp + h)*Wp + w
    for axis, d in enumerate(dims):
        inv = (1.0 / (dtype(theta) ** (np.arange(0, d, 2, dtype=dtype) / dtype(d)))).astype(dtype)
        ang = (idx[axis][:, None].astype(dtype) * inv[None, :]).astype(dtype)
        cols_c.append(np.repeat(np.cos(ang), 2, axis=1))
        cols_s.append(np.repeat(np.sin(ang), 2, axis=1))
    c = np.concatenate(cols_c, 1).astype(np.float32)[None, :, None, :]
    s = np.concatenate(cols_s, 1).astype(np.float32)[None, :, None, :]
    return c, s


ROPE_SPECS = [  # name, head_dim, frames, height, width
    ("rope_hd24_f3h6w10", 24, 3, 6, 10),
    ("rope_hd40_f2h7w4", 40, 2, 7, 4),
    ("rope_hd128_f2h4w6", 128, 2, 4, 6),
]


def cases_rope():
    made = {}
    for name, hd, fr, h, w in ROPE_SPECS:
        mod = WanRotaryPosEmbed(hd, (1, 2, 2), 1024, 10000.0)
        latent = torch.zeros(1, 4, fr, h, w)
        cos, sin = mod(latent)
        assert cos.dtype == torch.float32 and cos.shape == (1, (fr // 1) * (h // 2) * (w // 2), 1, hd), cos.shape
        cos, sin = cos.contiguous(), sin.contiguous()
        made[name] = (cos, sin)
        r64 = rope_ref(hd, (1, 2, 2), 10000.0, fr, h, w)
        r32 = rope_ref(hd, (1, 2, 2), 10000.0, fr, h, w, dtype=np.float32)
        attrs = {"head_dim": hd, "patch_size": [1, 2, 2], "max_seq_len": 1024, "theta": 10000.0, "frames": fr,
                 "height": h, "width": w, "latent_channels": 4, "note": ROPE_NOTE}
        add(name, "rope_3d_frequencies", attrs, [], [cos, sin],
            tol("max_abs", 2e-6, "expected is float64 trig rounded to float32; float32 angles (pos <= 4 here) drift "
                                 "~1e-6 at most"), [list(r64), list(r32)])
    return made


def np_rope_apply(x, cos, sin):
    x = as_f64(x)
    c = as_f64(cos)[..., 0::2]
    s = as_f64(sin)[..., 1::2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out


def cases_rope_apply(made):
    apply = None
    # the nested apply_rotary_emb of WanAttnProcessor.__call__ is not importable; run the processor's own code object
    for const in WanAttnProcessor.__call__.__code__.co_consts:
        if getattr(const, "co_name", None) == "apply_rotary_emb":
            apply = type(lambda: 0)(const, transformer_wan.__dict__)
    assert apply is not None, "apply_rotary_emb not found in WanAttnProcessor.__call__"
    note = ("diffusers WanAttnProcessor apply_rotary_emb(hidden_states, freqs_cos, freqs_sin): hidden_states "
            "[B, L, H, D] (query/key after unflatten(2, (heads, -1)), before the transpose for attention); cos/sin "
            "[1, L, 1, D] as returned by WanRotaryPosEmbed; pairs (x[2i], x[2i+1]) rotate: out[2i] = x[2i]*cos[2i] - "
            "x[2i+1]*sin[2i+1], out[2i+1] = x[2i]*sin[2i+1] + x[2i+1]*cos[2i] (cos taken at even, sin at odd "
            "indices); the maths runs in float32 (bf16 x promotes) and the result is stored in x's dtype")
    cos, sin = made["rope_hd40_f2h7w4"]
    name = "rope_apply_f32_hd40"
    rng = rng_for(name)
    x = randn(rng, 2, cos.shape[1], 3, 40)
    y = apply(x, cos, sin)
    add(name, "rope_apply", {"rope_case": "rope_hd40_f2h7w4", "note": note}, [x, cos, sin], [y],
        tol("max_abs", 2e-6, "two float32 products and a sum per element, O(3) values"),
        [[np_rope_apply(x, cos, sin)]])

    cos, sin = made["rope_hd24_f3h6w10"]
    name = "rope_apply_bf16_hd24"
    rng = rng_for(name)
    x = randn(rng, 1, cos.shape[1], 2, 24).to(torch.bfloat16)
    y = apply(x, cos, sin)
    assert y.dtype == torch.bfloat16
    add(name, "rope_apply", {"rope_case": "rope_hd24_f3h6w10", "note": note}, [x, cos, sin], [y],
        bf16_out_tol(y, "float32 maths from bf16 x and float32 cos/sin, rounded once"),
        [[round_to(np_rope_apply(x, cos, sin), "bfloat16")]])


def cases_timestep():
    ts = torch.tensor([1000.0, 999.0, 900.0, 750.0, 500.0, 1.0, 0.5, 0.0], dtype=torch.float32)
    for dim in (256, 7):
        name = f"timestep_embedding_{dim}"
        y = get_timestep_embedding(ts, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        half = dim // 2
        fr = np.exp(-math.log(10000) * np.arange(half) / half)
        arg = as_f64(ts)[:, None] * fr[None]
        ref = np.concatenate([np.cos(arg), np.sin(arg)] + ([np.zeros((len(ts), 1))] if dim % 2 else []), 1)
        # float32 emulation of the diffusers steps (exp of a float32 exponent, float32 product)
        ex = (np.float32(-math.log(10000)) * np.arange(half, dtype=np.float32)).astype(np.float32) / np.float32(half)
        argf = (f32(ts.numpy())[:, None] * np.exp(ex.astype(np.float32)).astype(np.float32)[None]).astype(np.float32)
        alt = np.concatenate([np.cos(argf), np.sin(argf)] + ([np.zeros((len(ts), 1), np.float32)] if dim % 2 else []),
                             1)
        add(name, "timestep_embedding",
            {"embedding_dim": dim, "flip_sin_to_cos": True, "downscale_freq_shift": 0.0, "scale": 1.0,
             "max_period": 10000,
             "note": "diffusers get_timestep_embedding: half = dim//2, freq_i = exp(-ln(10000)*i/(half - shift)) in "
                     "float32, arg = t*freq_i (float32), out = [cos(arg), sin(arg)] (flipped), odd dim: one zero "
                     "column appended at the end"},
            [ts], [y], tol("max_abs", 3e-4, "arguments reach 1000 rad in float32: one ulp of freq or of t*freq moves "
                                           "the angle by up to 6e-5 (float64 maths differs from torch by ~5e-5)"),
            [[ref], [alt]])


def py_bucket(rp, bidirectional, num_buckets, max_distance):
    """transformers' _relative_position_bucket in float64 Python maths (for the report of boundary cases)."""
    b = 0
    if bidirectional:
        num_buckets //= 2
        b += num_buckets if rp > 0 else 0
        rp = abs(rp)
    else:
        rp = -min(rp, 0)
    max_exact = num_buckets // 2
    if rp < max_exact:
        return b + rp
    large = max_exact + int(math.log(rp / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return b + min(large, num_buckets - 1)


BUCKET_NOTES = []


def cases_buckets():
    specs = [("t5_buckets_bidir_160", 160, 160, True), ("t5_buckets_causal_160", 160, 160, False),
             ("t5_buckets_bidir_7x150", 7, 150, True)]
    for name, L, S, bidir in specs:
        ctx = torch.arange(L, dtype=torch.long)[:, None]
        mem = torch.arange(S, dtype=torch.long)[None, :]
        rel = mem - ctx
        y = T5Attention._relative_position_bucket(rel, bidirectional=bidir, num_buckets=32, max_distance=128)
        assert y.dtype == torch.int64
        # float32 emulation (what torch does) and float64 maths
        relf = rel.numpy()
        nb = 16 if bidir else 32
        base = np.where(relf > 0, 16, 0) if bidir else 0
        rp = np.abs(relf) if bidir else -np.minimum(relf, 0)
        me = nb // 2
        with np.errstate(divide="ignore"):
            lg = (np.log((rp.astype(np.float32) / np.float32(me)).astype(np.float32)).astype(np.float32)
                  / np.float32(math.log(128 / me)) * np.float32(nb - me)).astype(np.float32)
        large = np.minimum(me + lg.astype(np.int64, casting="unsafe"), nb - 1)
        alt = base + np.where(rp < me, rp, large)
        add(name, "t5_relative_buckets",
            {"query_length": L, "key_length": S, "bidirectional": bidir, "num_buckets": 32, "max_distance": 128,
             "note": "transformers T5Attention._relative_position_bucket(memory_position - context_position), "
                     "context = arange(L)[:, None], memory = arange(S)[None, :]; the log is taken in float32 and "
                     "truncated with .to(long)"},
            [], [y], tol("exact", 0, "integer bucket ids"), [[alt]])
        d64 = {}
        for r in range(-(L - 1), S):
            tb = int(y[max(0, -r), max(0, -r) + r]) if 0 <= max(0, -r) + r < S else None
            if tb is not None and tb != py_bucket(r, bidir, 32, 128):
                d64[r] = (tb, py_bucket(r, bidir, 32, 128))
        BUCKET_NOTES.append((name, d64))


def cases_embedding():
    name = "embedding_f32_i64"
    rng = rng_for(name)
    w = randn(rng, 50, 12)
    ids = torch.from_numpy(np.array([[0, 49, 3, 3, 17, 28, 1], [5, 0, 44, 9, 9, 12, 31]], np.int64))
    y = F.embedding(ids, w)
    add(name, "embedding", {}, [w, ids], [y], tol("exact", 0, "row gather"), [[as_f64(w)[ids.numpy()]]])
    name = "embedding_bf16_i32"
    rng = rng_for(name)
    w = randn(rng, 50, 12).to(torch.bfloat16)
    ids = torch.from_numpy(np.array([49, 0, 7, 7, 23, 2, 40, 11, 36], np.int32))
    y = F.embedding(ids, w)
    assert y.dtype == torch.bfloat16
    add(name, "embedding", {}, [w, ids], [y], tol("exact", 0, "row gather, output keeps the weight dtype"),
        [[as_f64(w)[ids.numpy()]]])


def cases_resample():
    for name, xs in (("upsample_nearest2x_odd", (1, 3, 5, 7)), ("upsample_nearest2x_batch", (2, 4, 4, 3))):
        rng = rng_for(name)
        x = randn(rng, *xs)
        y = torch.nn.Upsample(scale_factor=2.0, mode="nearest-exact")(x)
        assert torch.equal(y, torch.nn.Upsample(scale_factor=2.0, mode="nearest")(x))
        ref = as_f64(x).repeat(2, axis=2).repeat(2, axis=3)
        add(name, "upsample_nearest2x", {"mode": "nearest-exact", "scale_factor": 2.0,
                                         "note": "identical to mode 'nearest' for factor 2 (checked)"},
            [x], [y], tol("exact", 0, "copies"), [[ref]])
    for name, xs in (("avg_pool2x2_odd", (1, 3, 7, 9)), ("avg_pool2x2_mixed", (2, 2, 6, 5))):
        rng = rng_for(name)
        x = randn(rng, *xs)
        y = F.avg_pool2d(x, 2, 2)
        n, c, h, w = xs
        xv = f32(x.numpy())[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
        ref = ((((xv[:, :, :, 0, :, 0] + xv[:, :, :, 0, :, 1]) + xv[:, :, :, 1, :, 0]) + xv[:, :, :, 1, :, 1])
               * np.float32(0.25)).astype(np.float32)
        add(name, "avg_pool2x2", {"kernel": 2, "stride": 2, "ceil_mode": False}, [x], [y],
            tol("max_abs", 1e-6, "4-term float32 mean of O(1) values; summation order may move 1 ulp"), [[ref]])


def cases_pad():
    specs = [("pad4d_zero", (1, 3, 5, 6), [1, 1, 1, 1], 0.0), ("pad4d_value_br", (2, 2, 3, 5), [0, 1, 0, 1], 1.5),
             ("pad5d_causal", (1, 2, 3, 4, 5), [1, 1, 1, 1, 2, 0], 0.0),
             ("pad5d_value", (1, 3, 2, 3, 3), [2, 0, 0, 3, 1, 1], 1.5)]
    for name, xs, p, val in specs:
        rng = rng_for(name)
        x = randn(rng, *xs)
        y = F.pad(x, p, value=val)
        width = [(0, 0)] * len(xs)
        for i in range(len(p) // 2):
            width[len(xs) - 1 - i] = (p[2 * i], p[2 * i + 1])
        ref = np.pad(as_f64(x), width, constant_values=val)
        add(name, "pad", {"pad": p, "value": val, "mode": "constant",
                          "note": "F.pad order: (last-dim left, last-dim right, 2nd-last before, after, ...)"},
            [x], [y], tol("exact", 0, "copies and a constant"), [[ref]])


def cases_shape_ops():
    name = "concat_dim1"
    rng = rng_for(name)
    xs = [randn(rng, 2, 3, 4, 5), randn(rng, 2, 1, 4, 5), randn(rng, 2, 2, 4, 5)]
    add(name, "concat", {"dim": 1}, xs, [torch.cat(xs, 1)], tol("exact", 0, "copies"),
        [[np.concatenate([as_f64(t) for t in xs], 1)]])
    name = "concat_last"
    rng = rng_for(name)
    xs = [randn(rng, 3, 5), randn(rng, 3, 7)]
    add(name, "concat", {"dim": -1}, xs, [torch.cat(xs, -1)], tol("exact", 0, "copies"),
        [[np.concatenate([as_f64(t) for t in xs], -1)]])

    name = "split_dim1"
    rng = rng_for(name)
    x = randn(rng, 2, 9, 5)
    outs = list(torch.split(x, [2, 3, 4], dim=1))
    add(name, "split", {"sizes": [2, 3, 4], "dim": 1}, [x], outs, tol("exact", 0, "copies"),
        [np.split(as_f64(x), [2, 5], axis=1)])
    name = "split_last"
    rng = rng_for(name)
    x = randn(rng, 3, 2, 5)
    outs = list(torch.split(x, [1, 4], dim=-1))
    add(name, "split", {"sizes": [1, 4], "dim": -1}, [x], outs, tol("exact", 0, "copies"),
        [np.split(as_f64(x), [1], axis=-1)])

    for name, xs, dims in (("permute_0231", (2, 3, 4, 5), [0, 2, 3, 1]), ("permute_5d", (2, 3, 1, 4, 5),
                                                                           [0, 2, 3, 4, 1])):
        rng = rng_for(name)
        x = randn(rng, *xs)
        add(name, "permute", {"dims": dims}, [x], [x.permute(dims).contiguous()], tol("exact", 0, "copies"),
            [[np.transpose(as_f64(x), dims)]])

    name = "transpose_12"
    rng = rng_for(name)
    x = randn(rng, 2, 3, 7)
    add(name, "transpose", {"dim0": 1, "dim1": 2}, [x], [x.transpose(1, 2).contiguous()], tol("exact", 0, "copies"),
        [[np.swapaxes(as_f64(x), 1, 2)]])
    name = "transpose_flatten_wan"
    rng = rng_for(name)
    x = randn(rng, 1, 6, 2, 3, 4)
    y = x.flatten(2).transpose(1, 2).contiguous()
    add(name, "transpose", {"dim0": 1, "dim1": 2, "flatten_start": 2,
                            "note": "x.flatten(2).transpose(1, 2) as Wan does after the patch embedding: [N,C,T,H,W] "
                                    "-> [N, T*H*W, C]; flatten first, then transpose"},
        [x], [y], tol("exact", 0, "copies"), [[np.swapaxes(as_f64(x).reshape(1, 6, 24), 1, 2)]])

    name = "reshape_basic"
    rng = rng_for(name)
    x = randn(rng, 2, 3, 20)
    add(name, "reshape", {"shape": [6, 4, 5]}, [x], [x.reshape(6, 4, 5)], tol("exact", 0, "same bytes"),
        [[as_f64(x).reshape(6, 4, 5)]])
    name = "reshape_of_transposed"
    rng = rng_for(name)
    base = randn(rng, 4, 6)
    x = base.t()                                       # non-contiguous [6, 4]
    y = x.reshape(-1, 3)
    add(name, "reshape", {"shape": [-1, 3], "note": "the input file holds the logical (contiguous) values of a "
                                                    "transposed view; reshape reads them in logical row-major order"},
        [x.contiguous()], [y.contiguous()], tol("exact", 0, "copies"), [[as_f64(base).T.reshape(-1, 3)]])


def cases_reductions():
    def red_tol(x, dim, n, what):
        a = np.abs(as_f64(x))
        s = float(a.sum() if dim is None else a.sum(dim).max())
        if what == "mean":
            s /= n
        return tol("max_abs", 2 * math.sqrt(n) * EPS32 * s,
                   f"float32 {what} over {n} in any order (sequential included): 2*sqrt(n)*2^-23*"
                   f"{'sum' if what == 'sum' else 'mean'}|x| = {s:.3g} along the axis")

    def seq_sum(x, dim, keep):
        """Sequential float32 accumulation along `dim` (None = all, row-major)."""
        a = f32(x)
        if dim is None:
            a, dim = a.reshape(-1), 0
        c = np.cumsum(a, axis=dim, dtype=np.float32)
        r = np.take(c, [-1], axis=dim)
        return r if keep else np.squeeze(r, axis=dim)

    specs = [  # name, op, shape, dim, keepdim, scale, offset
        ("sum_dim1_keep", "sum", (3, 257, 5), 1, True, 1.0, 0.0),
        ("sum_last_long", "sum", (4, 1000), -1, False, 1.0, 0.5),
        ("sum_full", "sum", (3, 5, 700), None, False, 1.0, 0.1),
        ("mean_dim0", "mean", (9, 4, 3), 0, False, 2.0, 0.0),
        ("mean_last_keep", "mean", (5, 300), -1, True, 1.0, 3.0),
        ("mean_full", "mean", (6, 250), None, False, 1.0, 1.0),
        ("var_last_keep", "var", (5, 300), -1, True, 2.0, 10.0),
        ("var_dim1", "var", (3, 77, 4), 1, False, 1.0, -2.0),
        ("var_full", "var", (7, 150), None, False, 0.5, 4.0),
    ]
    for name, op, shape, dim, keep, sc, off in specs:
        rng = rng_for(name)
        x = randn(rng, *shape, scale=sc, offset=off)
        xd = as_f64(x)
        n = x.numel() if dim is None else shape[dim]
        if op == "sum":
            y = x.sum() if dim is None else x.sum(dim, keepdim=keep)
            refs = [[xd.sum() if dim is None else xd.sum(dim, keepdims=keep)], [seq_sum(x.numpy(), dim, keep)]]
            t = red_tol(x, dim, n, "sum")
        elif op == "mean":
            y = x.mean() if dim is None else x.mean(dim, keepdim=keep)
            seq = (seq_sum(x.numpy(), dim, keep) / np.float32(n)).astype(np.float32)
            refs = [[xd.mean() if dim is None else xd.mean(dim, keepdims=keep)], [seq]]
            t = red_tol(x, dim, n, "mean")
        else:
            y = torch.var(x, correction=0) if dim is None else torch.var(x, dim, keepdim=keep, correction=0)
            r = xd.var() if dim is None else xd.var(dim, keepdims=keep)
            m32 = (seq_sum(x.numpy(), dim, True) / np.float32(n)).astype(np.float32)
            d32 = (f32(x.numpy()) - m32).astype(np.float32)
            two_pass = (seq_sum(d32 * d32, dim, keep) / np.float32(n)).astype(np.float32)
            refs = [[r], [two_pass]]
            var_scale = float(r.max()) if np.ndim(r) else float(r)
            t = tol("max_abs", 1e-5 * var_scale, f"two-pass float32 variance over {n} (mean up to 5 std from 0), "
                                                 f"sequential sums: ~1e-6 relative; bound 1e-5 of the largest "
                                                 f"variance ({var_scale:.3g}); one-pass E[x^2]-E[x]^2 may fail")
        attrs = {"dim": dim, "keepdim": keep}
        if op == "var":
            attrs["correction"] = 0
            attrs["note"] = "population variance (unbiased=False): mean((x - mean)^2)"
        add(name, op, attrs, [x], [y], t, refs)

    for name, shape, dim, keep in (("max_dim1_keep", (3, 41, 5), 1, True), ("max_last", (4, 19), -1, False)):
        rng = rng_for(name)
        x = randn(rng, *shape)
        vals, idx = torch.max(x, dim, keepdim=keep)
        xd = as_f64(x)
        add(name, "max", {"dim": dim, "keepdim": keep, "note": "outputs: values, int64 indices (no ties in the data)"},
            [x], [vals, idx], tol("exact", 0, "selection"),
            [[xd.max(dim, keepdims=keep), np.argmax(xd, dim, keepdims=keep)]])
    name = "max_full"
    rng = rng_for(name)
    x = randn(rng, 6, 35)
    add(name, "max", {"dim": None, "keepdim": False, "note": "full reduction: one scalar value, no indices"}, [x],
        [torch.max(x)], tol("exact", 0, "selection"), [[as_f64(x).max()]])


def f32_from_bits(bits):
    return np.asarray(bits, np.uint32).view(np.float32)


def cases_cast():
    # ---- float32 -> bfloat16 -------------------------------------------------------------------------------------
    name = "cast_f32_to_bf16"
    rng = rng_for(name)
    hi = rng.integers(0, 1 << 16, 96, dtype=np.uint32)
    lows = np.array([0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF, 0x4000], np.uint32)
    rnd = (hi[:, None] << 16 | lows[None, :]).reshape(-1)
    rnd = rnd[(rnd & 0x7F800000) != 0x7F800000]                  # keep finite for the random part
    special = np.array([
        0x00000000, 0x80000000, 0x3F800000, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,   # 1, ties at 1
        0x00000001, 0x00008000, 0x00018000, 0x00008001, 0x007FFFFF, 0x00800000, 0x807FFFFF,   # subnormals
        0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0x7F7F0000, 0xFF7F8000,                          # around bf16 max
        0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0xFFFFFFFF,   # inf, NaNs
        0x4B7FFF80, 0xC0490FDB, 0x3EAAAAAB,
    ], np.uint32)
    x = torch.from_numpy(f32_from_bits(np.concatenate([special, rnd])).copy())
    y = x.to(torch.bfloat16)
    add(name, "cast", {"to": "bfloat16", "note": "round to nearest even; NaN stays NaN (incl. 0x7F800001, which naive "
                                                 "truncation would turn into inf); above bf16 max rounds to inf; "
                                                 "subnormals kept"},
        [x], [y], tol("exact", 0, "IEEE round-to-nearest-even"), [[round_to(as_f64(x), "bfloat16")]])

    # ---- float32 -> float16 --------------------------------------------------------------------------------------
    name = "cast_f32_to_f16"
    rng = rng_for(name)
    v = [0.0, -0.0, 1.0, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -23, 2049.0, 2051.0, 65504.0, 65519.0,
         65519.996, 65520.0, 70000.0, 1e5, -65520.0, 3.4e38, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -25 + 2 ** -40,
         2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, -2 ** -24, 6.1e-5, math.inf, -math.inf, math.nan, 0.1, 1 / 3]
    x = torch.from_numpy(np.concatenate([np.array(v, np.float32),
                                         (rng.standard_normal(120) * np.exp2(rng.integers(-26, 17, 120))).astype(
                                             np.float32)]))
    y = x.to(torch.float16)
    add(name, "cast", {"to": "float16", "note": "round to nearest even; overflow (>= 65520) -> inf; float16 subnormals"},
        [x], [y], tol("exact", 0, "IEEE round-to-nearest-even"), [[round_to(as_f64(x), "float16")]])

    # ---- bfloat16 -> float32 ---------------------------------------------------------------------------------------
    name = "cast_bf16_to_f32"
    rng = rng_for(name)
    bits = np.concatenate([np.array([0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0,
                                     0x7F81, 0xFFFF, 0x3F80, 0xBF80], np.uint16),
                           rng.integers(0, 1 << 16, 242, dtype=np.uint16)])
    x = torch.from_numpy(bits.astype(np.int16)).view(torch.bfloat16)
    y = x.to(torch.float32)
    add(name, "cast", {"to": "float32"}, [x], [y], tol("exact", 0, "widening is exact"),
        [[f32_from_bits(bits.astype(np.uint32) << 16).astype(np.float64)]])

    # ---- float32 -> float8 (saturating) and float8 -> float32 -------------------------------------------------------
    for fmt, tdt, fmax in (("float8_e4m3fn", torch.float8_e4m3fn, 448.0), ("float8_e5m2", torch.float8_e5m2, 57344.0)):
        allv = torch.arange(256, dtype=torch.uint8).view(tdt).float().numpy().astype(np.float64)
        fin = np.unique(allv[np.isfinite(allv)])                   # sorted representable values, -max..max
        mids = (fin[:-1] + fin[1:]) / 2                             # every rounding tie (exact in float32)
        mids32 = mids.astype(np.float32)
        assert np.array_equal(mids32.astype(np.float64), mids)
        up = np.nextafter(mids32, np.float32(np.inf))
        dn = np.nextafter(mids32, np.float32(-np.inf))
        sub_min = fin[fin > 0].min()
        extra = np.array([0.0, -0.0, sub_min, -sub_min, sub_min / 2, -sub_min / 2, sub_min / 4, sub_min * 0.75,
                          sub_min * 0.5000001, fmax, -fmax, fmax * 1.03, fmax * 1.0625, fmax * 1.2, -fmax * 1.5, 1e6,
                          -1e30, 3.4e38, math.inf, -math.inf, math.nan, -math.nan, 0.1, -1 / 3], np.float32)
        # one entry per representable value plus ties, as float32
        x = torch.from_numpy(np.concatenate([fin.astype(np.float32), mids32, up, dn, extra]))
        y = x.clamp(-fmax, fmax).to(tdt)
        ref = round_to(np.clip(as_f64(x), -fmax, fmax), fmt)       # np.clip keeps NaN
        short = "e4m3" if "e4m3" in fmt else "e5m2"
        add(f"cast_f32_to_{short}_sat", "cast",
            {"to": fmt, "saturate": True, "max": fmax,
             "note": f"expected = x.clamp(-{fmax:g}, {fmax:g}).to({fmt}): every representable value, every tie "
                     "(midpoint) and its float32 neighbours, subnormal edges, overflow (saturates, +-inf -> +-max), "
                     "NaN stays NaN; ties round to even"},
            [x], [y], tol("exact", 0, "round-to-nearest-even after clamping"), [[ref]])
        xb = torch.arange(256, dtype=torch.uint8).view(tdt)
        add(f"cast_{short}_to_f32", "cast", {"to": "float32", "note": "all 256 bit patterns"},
            [xb], [xb.float()], tol("exact", 0, "widening is exact"),
            [[decode_fp8(np.arange(256), fmt)]])


def decode_fp8(b, fmt):
    """Independent decoding of float8 bit patterns."""
    b = np.asarray(b, np.int64)
    ebits, mbits, bias = (4, 3, 7) if fmt == "float8_e4m3fn" else (5, 2, 15)
    s = np.where(b >> 7, -1.0, 1.0)
    e = (b >> mbits) & ((1 << ebits) - 1)
    m = b & ((1 << mbits) - 1)
    val = np.where(e == 0, m * 2.0 ** (1 - bias - mbits), (1 + m / 2 ** mbits) * np.exp2(e - bias))
    if fmt == "float8_e4m3fn":
        val = np.where((e == 15) & (m == 7), np.nan, val)
    else:
        val = np.where(e == 31, np.where(m == 0, np.inf, np.nan), val)
    return s * val


def cases_matmul():
    name = "matmul_batched_f32"
    rng = rng_for(name)
    a, b = randn(rng, 2, 17, 53), randn(rng, 2, 53, 11, scale=0.2)
    y = torch.matmul(a, b)
    ref = np.stack([seq_dot_f32(a.numpy()[i], b.numpy()[i].T) for i in range(2)])
    add(name, "matmul", {}, [a, b], [y], dot_tol(y, 53), [[ref]])
    name = "matmul_2d_bf16"
    rng = rng_for(name)
    a, b = randn(rng, 37, 53).to(torch.bfloat16), randn(rng, 53, 29, scale=0.2).to(torch.bfloat16)
    y = torch.matmul(a, b)
    add(name, "matmul", {"note": "bfloat16 x bfloat16 -> bfloat16 (torch CPU: fp32 accumulation, one rounding)"},
        [a, b], [y], bf16_out_tol(y, "K = 53"), [[round_to(as_f64(a) @ as_f64(b), "bfloat16")]])


def main():
    np.seterr(over="ignore", invalid="ignore", divide="ignore")   # the references meet inf/NaN on purpose
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    cases_linear()
    cases_conv2d()
    cases_patch_embed()
    cases_layer_norm()
    cases_t5_rms_norm()
    cases_channel_rms_norm()
    cases_activations()
    cases_softmax()
    cases_sdpa()
    made = cases_rope()
    cases_rope_apply(made)
    cases_timestep()
    cases_buckets()
    cases_embedding()
    cases_resample()
    cases_pad()
    cases_shape_ops()
    cases_reductions()
    cases_cast()
    cases_matmul()

    manifest = {
        "generator": "tools/engine/make_op_fixtures.py",
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "transformers_version": transformers.__version__,
        "cases": CASES,
    }
    text = json.dumps(manifest, indent=1, allow_nan=False) + "\n"
    (OUT / "manifest.json").write_text(text)
    total = TOTAL[0] + len(text.encode())
    counts = {}
    for c in CASES:
        counts[c["op"]] = counts.get(c["op"], 0) + 1
    for name, op, metric, value, worst in REPORT:
        print(f"{name:32s} {op:22s} {metric:8s} {value:10.3g}  reference used {worst:6.1%}")
    print("cases per op:", json.dumps(counts))
    print(f"{len(CASES)} cases, {total} bytes")
    for name, d in BUCKET_NOTES:
        if d:
            print(f"{name}: float32 buckets differ from float64 maths at relative positions {d}")
    if total > BUDGET:
        raise SystemExit(f"fixtures are {total} bytes, over the {BUDGET} budget")


if __name__ == "__main__":
    main()
