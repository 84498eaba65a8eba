#!/usr/bin/env python3
"""Tiny random-weight reference models for the Swift FlashWorld port (Wan transformer + UMT5 text encoder).

Writes Tests/ModelTests/Fixtures/ (committed; the Swift tests never run Python):

    manifest.json                                   what every file and tensor is, configs, calls, tolerances, notes
    wan-tiny/config.json                            diffusers WanTransformer3DModel.save_pretrained output
    wan-tiny/diffusion_pytorch_model.safetensors    (float32 weights, diffusers key names)
    wan-tiny/inputs.safetensors                     hidden_states, timestep, encoder_hidden_states
    wan-tiny/outputs.safetensors                    sample (the forward's only output)
    wan-tiny/intermediates.safetensors              per-stage tensors captured with forward hooks
    umt5-tiny/config.json                           transformers UMT5EncoderModel.save_pretrained output
    umt5-tiny/model.safetensors
    umt5-tiny/inputs.safetensors                    input_ids, attention_mask (both int64)
    umt5-tiny/outputs.safetensors                   last_hidden_state with / without the mask, FlashWorld's zeroed form
    umt5-tiny/intermediates.safetensors             position biases, buckets, per-layer hidden states

Set-up and run (CPU only, ~10 s, no model weights are downloaded), from the repository root:

    python3 -m venv /tmp/gsvenv
    /tmp/gsvenv/bin/pip install torch numpy safetensors     # CPU wheel is enough
    /tmp/gsvenv/bin/pip install diffusers transformers
    /tmp/gsvenv/bin/python tools/models/make_model_fixtures.py

The committed files were made with torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.23.0, safetensors 0.8.0 (the
versions are recorded in manifest.json). Weights come from a seeded torch.Generator, torch runs on one thread with
deterministic algorithms, so a rerun with the same versions writes identical bytes.

Besides running the real diffusers / transformers modules, the script re-implements both forwards independently in
float64 (plain torch ops on the saved state dict, written from the maths in flashworld-model.md §5 and the notes in the
manifest). It stops if the float32 library output is further than the manifest's tolerance from that float64
re-implementation, so the notes in the manifest are checked, not just read off the source. It also runs the library
models after .double() and reports both float32-vs-float64 distances in the manifest ("precision" sections).
"""

import json
import math
import pathlib
import platform
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file, load_file

import diffusers
import safetensors
import transformers
from diffusers import WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "ModelTests" / "Fixtures"
BUDGET = 1_500_000
SEED = 20260311
TOL = 1e-4  # scale-relative max error, see manifest["tolerance"]

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------

def metrics(got: torch.Tensor, ref: torch.Tensor) -> dict:
    """Distances between two tensors, computed in float64."""
    g = got.detach().double()
    r = ref.detach().double()
    diff = (g - r).abs()
    scale = r.abs().max().item()
    big = r.abs() >= 1e-2 * scale  # elementwise relative error only where the value is not tiny
    return {
        "max_abs": diff.max().item(),
        "max_abs_ref": scale,
        "scale_rel": diff.max().item() / scale if scale > 0 else 0.0,
        "rel_l2": (diff.norm() / r.norm()).item() if r.norm() > 0 else 0.0,
        "max_elem_rel_where_abs_ge_1pct_of_max": (diff[big] / r.abs()[big]).max().item() if big.any() else 0.0,
    }


def fmt(m: dict) -> str:
    return f"scale_rel {m['scale_rel']:.2e}  rel_l2 {m['rel_l2']:.2e}  max_abs {m['max_abs']:.2e} (|ref|max {m['max_abs_ref']:.3g})"


def save_st(path: pathlib.Path, tensors: dict):
    clean = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    # a single metadata key: safetensors writes __metadata__ in hash-map order, so several keys would make the
    # header bytes differ from run to run
    save_file(clean, str(path), metadata={"format": "pt"})
    return clean


def describe(tensors: dict, docs: dict) -> list:
    out = []
    for k in sorted(tensors):
        v = tensors[k]
        out.append({"name": k, "dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                    "doc": docs.get(k, "")})
    return out


def randomise(model: torch.nn.Module, gen: torch.Generator, rule) -> None:
    """Overwrite every parameter, in sorted-name order, with a + b * randn(generator); rule(name, shape) -> (kind, a, b)."""
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            _kind, a, b = rule(name, tuple(p.shape))
            p.copy_(a + b * torch.randn(p.shape, generator=gen, dtype=torch.float32))


WAN_INIT = ("every parameter overwritten, in sorted-name order, with a + b*N(0,1) from torch.Generator(seed): "
            "scale_shift_tables a=0 b=0.3; attn norm_q/norm_k weights a=1.5 b=0.3; norm2 (cross-attn LayerNorm) "
            "weight a=1 b=0.25, bias a=0 b=0.1; other biases a=0 b=0.1; other weights (linears, patch conv) "
            "a=0 b=1/sqrt(fan_in)")
UMT5_INIT = ("every parameter overwritten, in sorted-name order, with a + b*N(0,1) from torch.Generator(seed+2): "
             "layer_norm weights a=1 b=0.25; relative_attention_bias a=0 b=0.5; shared a=0 b=1; q a=0 "
             "b=2/sqrt(d_model*d_kv); k, v, wi_0, wi_1 b=1/sqrt(d_model); o b=1/sqrt(heads*d_kv); wo b=1/sqrt(d_ff)")


# ----------------------------------------------------------------------------------------------------------------
# Wan transformer
# ----------------------------------------------------------------------------------------------------------------

# Wan2.2-TI2V-5B: diffusers scripts/convert_wan_to_diffusers.py get_transformer_config("Wan2.2-TI2V-5B")
# (added_kv_proj_dim None, attention_head_dim 128, cross_attn_norm True, eps 1e-6, ffn_dim 14336, freq_dim 256,
# in/out 48, 24 heads, 30 layers, patch [1,2,2], qk_norm rms_norm_across_heads, text_dim 4096); the class defaults
# supply image_dim None, rope_max_seq_len 1024, pos_embed_seq_len None.
WAN_TI2V_5B = {
    "patch_size": [1, 2, 2], "num_attention_heads": 24, "attention_head_dim": 128, "in_channels": 48,
    "out_channels": 48, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 14336, "num_layers": 30,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
    "added_kv_proj_dim": None, "rope_max_seq_len": 1024, "pos_embed_seq_len": None,
}
WAN_TINY = {
    "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 40, "in_channels": 20,
    "out_channels": 12, "text_dim": 32, "freq_dim": 16, "ffn_dim": 64, "num_layers": 2,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
    "added_kv_proj_dim": None, "rope_max_seq_len": 1024, "pos_embed_seq_len": None,
}
WAN_SHAPES = {"hidden_states": (1, 20, 3, 6, 8), "timestep": 900.0, "text_len": 7}


def wan_rule(name, shape):
    if name.endswith("scale_shift_table"):
        return ("table", 0.0, 0.3)
    if ".norm_q." in name or ".norm_k." in name:  # torch RMSNorm weight (default ones); > 1 sharpens attention
        return ("norm", 1.5, 0.3)
    if ".norm2.weight" in name:  # affine LayerNorm of the cross-attention
        return ("norm", 1.0, 0.25)
    if ".norm2.bias" in name:
        return ("norm", 0.0, 0.1)
    if name.endswith(".bias"):
        return ("bias", 0.0, 0.1)
    fan_in = int(np.prod(shape[1:]))
    return ("weight", 0.0, 1.0 / math.sqrt(fan_in))


def build_wan():
    torch.manual_seed(SEED)  # the constructors' own init is overwritten below anyway
    model = WanTransformer3DModel(**{k: (tuple(v) if k == "patch_size" else v) for k, v in WAN_TINY.items()})
    gen = torch.Generator().manual_seed(SEED)
    randomise(model, gen, wan_rule)
    model.eval()
    gen_in = torch.Generator().manual_seed(SEED + 1)
    inputs = {
        "hidden_states": torch.randn(WAN_SHAPES["hidden_states"], generator=gen_in),
        "timestep": torch.tensor([WAN_SHAPES["timestep"]], dtype=torch.float32),
        "encoder_hidden_states": torch.randn((1, WAN_SHAPES["text_len"], WAN_TINY["text_dim"]), generator=gen_in),
    }
    return model, inputs


def load_wan(folder: pathlib.Path):
    """Rebuild from the saved config.json + safetensors (from_pretrained would need `accelerate` here)."""
    model = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(str(folder)))
    model.load_state_dict(load_file(str(folder / "diffusion_pytorch_model.safetensors")), strict=True)
    return model.eval()


def run_wan_with_hooks(model, inputs):
    cap = {}
    hooks = []

    def out_hook(name, index=None):
        def h(_m, _args, out):
            cap[name] = (out[index] if index is not None else out).detach().clone()
        return h

    def in_hook(name):
        def h(_m, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            cap[name] = x.detach().clone()
        return h

    ce = model.condition_embedder
    def rope_hook(_m, _a, o):  # hooks must return None, or they replace the module's output
        cap["rope.freqs_cos"], cap["rope.freqs_sin"] = o[0].clone(), o[1].clone()

    def cond_hook(_m, _a, o):
        cap["condition.temb"] = o[0].clone()

    hooks.append(model.rope.register_forward_hook(rope_hook))
    hooks.append(model.patch_embedding.register_forward_hook(out_hook("patch_embedding.out")))
    hooks.append(ce.timesteps_proj.register_forward_hook(out_hook("condition.timestep_sinusoid")))
    hooks.append(ce.time_embedder.register_forward_hook(out_hook("condition.time_embedder.out")))
    hooks.append(ce.time_proj.register_forward_hook(out_hook("condition.time_proj.out")))
    hooks.append(ce.text_embedder.register_forward_hook(out_hook("condition.text_embeds")))
    hooks.append(ce.register_forward_hook(cond_hook))
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}"
        hooks.append(blk.register_forward_pre_hook(in_hook(f"{p}.in"), with_kwargs=True))
        hooks.append(blk.register_forward_hook(out_hook(f"{p}.out")))
        hooks.append(blk.norm1.register_forward_hook(out_hook(f"{p}.norm1.out")))
        hooks.append(blk.attn1.register_forward_pre_hook(in_hook(f"{p}.attn1.in"), with_kwargs=True))
        hooks.append(blk.attn1.register_forward_hook(out_hook(f"{p}.attn1.out")))
        hooks.append(blk.norm2.register_forward_pre_hook(in_hook(f"{p}.after_self_attn"), with_kwargs=True))
        hooks.append(blk.norm2.register_forward_hook(out_hook(f"{p}.norm2.out")))
        hooks.append(blk.attn2.register_forward_hook(out_hook(f"{p}.attn2.out")))
        hooks.append(blk.norm3.register_forward_pre_hook(in_hook(f"{p}.after_cross_attn"), with_kwargs=True))
        hooks.append(blk.ffn.register_forward_pre_hook(in_hook(f"{p}.ffn.in"), with_kwargs=True))
        hooks.append(blk.ffn.net[0].register_forward_hook(out_hook(f"{p}.ffn.act.out")))
        hooks.append(blk.ffn.register_forward_hook(out_hook(f"{p}.ffn.out")))
        if i == 0:  # attention internals of the first block only (budget)
            for a in ("attn1", "attn2"):
                att = getattr(blk, a)
                for sub in ("to_q", "to_k", "to_v", "norm_q", "norm_k"):
                    hooks.append(getattr(att, sub).register_forward_hook(out_hook(f"{p}.{a}.{sub}.out")))
    hooks.append(model.norm_out.register_forward_hook(out_hook("head.norm_out.out")))
    hooks.append(model.proj_out.register_forward_pre_hook(in_hook("head.proj_out.in"), with_kwargs=True))
    hooks.append(model.proj_out.register_forward_hook(out_hook("head.proj_out.out")))

    with torch.no_grad():
        sample = model(hidden_states=inputs["hidden_states"], timestep=inputs["timestep"],
                       encoder_hidden_states=inputs["encoder_hidden_states"], return_dict=False)[0]
    for h in hooks:
        h.remove()

    # derived (not hooked) tensors that a port computes explicitly
    cap["tokens.in"] = cap["patch_embedding.out"].flatten(2).transpose(1, 2).contiguous()
    cap["condition.timestep_proj"] = cap["condition.time_proj.out"].unflatten(1, (6, -1))
    del cap["condition.time_proj.out"]
    assert torch.equal(cap["condition.time_embedder.out"], cap["condition.temb"])
    del cap["condition.time_embedder.out"]
    with torch.no_grad():
        for i, blk in enumerate(model.blocks):
            cap[f"blocks.{i}.modulation"] = (blk.scale_shift_table + cap["condition.timestep_proj"].float())
        cap["head.modulation"] = model.scale_shift_table + cap["condition.temb"].unsqueeze(1)
    return sample, cap


WAN_DOCS = {
    "rope.freqs_cos": "WanRotaryPosEmbed output [1, L, 1, head_dim]; column j of token (f,h,w) is cos(pos*theta) of "
                      "pair j//2, bands t:16, h:12, w:12 columns (each value repeated twice, repeat_interleave)",
    "rope.freqs_sin": "same for sin",
    "patch_embedding.out": "Conv3d(in, D, k=s=(1,2,2)) output [1, D, F', H', W']",
    "tokens.in": "patch_embedding.out.flatten(2).transpose(1,2): token index = (f*H' + h)*W' + w, [1, L, D]",
    "condition.timestep_sinusoid": "Timesteps(freq_dim, flip_sin_to_cos=True, shift=0)(timestep): [cos(t f_k), sin(t f_k)], f_k = exp(-ln(1e4) k / (freq_dim/2)), computed in float32",
    "condition.temb": "TimestepEmbedding: linear_2(SiLU(linear_1(sinusoid))) [1, D] (no activation after linear_2)",
    "condition.timestep_proj": "time_proj(SiLU(temb)) [1, 6*D] unflattened to [1, 6, D]",
    "condition.text_embeds": "PixArtAlphaTextProjection: linear_2(GELU_tanh(linear_1(encoder_hidden_states))) [1, T, D]",
    "head.modulation": "scale_shift_table[1,2,D] + temb[:, None] -> rows (shift, scale); note: temb, not timestep_proj",
    "head.norm_out.out": "LayerNorm(no affine, eps)(tokens after the last block)",
    "head.proj_out.in": "norm_out.out * (1 + scale) + shift",
    "head.proj_out.out": "proj_out output [1, L, prod(patch)*out_channels], feature index = p*out_channels + c, p = (pt_i*2 + dy)*2 + dx",
}
for _i in range(WAN_TINY["num_layers"]):
    _p = f"blocks.{_i}"
    WAN_DOCS.update({
        f"{_p}.in": "block input tokens [1, L, D]",
        f"{_p}.modulation": "scale_shift_table[1,6,D] + timestep_proj[1,6,D]; rows = shift, scale, gate, c_shift, c_scale, c_gate",
        f"{_p}.norm1.out": "LayerNorm(no affine)(in), before modulation",
        f"{_p}.attn1.in": "norm1.out * (1 + scale) + shift (self-attention input)",
        f"{_p}.attn1.out": "self-attention output after to_out (before the gate)",
        f"{_p}.after_self_attn": "in + attn1.out * gate",
        f"{_p}.norm2.out": "LayerNorm(affine, eps)(after_self_attn) = cross-attention query input (no modulation)",
        f"{_p}.attn2.out": "cross-attention output after to_out (added with no gate)",
        f"{_p}.after_cross_attn": "after_self_attn + attn2.out",
        f"{_p}.ffn.in": "LayerNorm(no affine)(after_cross_attn) * (1 + c_scale) + c_shift",
        f"{_p}.ffn.act.out": "GELU(tanh)(Linear D->ffn_dim (ffn.net.0.proj)) [1, L, ffn_dim]",
        f"{_p}.ffn.out": "ffn.net.2 output (before the gate)",
        f"{_p}.out": "after_cross_attn + ffn.out * c_gate",
    })
for _a, _kv in (("attn1", "the block's own tokens"), ("attn2", "text_embeds")):
    WAN_DOCS.update({
        f"blocks.0.{_a}.to_q.out": "q projection of the attention input (before norm_q)",
        f"blocks.0.{_a}.to_k.out": f"k projection of {_kv} (before norm_k)",
        f"blocks.0.{_a}.to_v.out": f"v projection of {_kv}",
        f"blocks.0.{_a}.norm_q.out": "RMSNorm over all heads*head_dim channels of to_q.out (then split into heads"
                                     + (", then RoPE)" if _a == "attn1" else ", no RoPE)"),
        f"blocks.0.{_a}.norm_k.out": "RMSNorm over all heads*head_dim channels of to_k.out",
    })


# ---- independent float64 re-implementation (written from the maths, not from diffusers' code) ----

def wan_reference_f64(sd: dict, cfg: dict, x: torch.Tensor, t: torch.Tensor, enc: torch.Tensor) -> tuple:
    W = {k: v.double() for k, v in sd.items()}
    eps = cfg["eps"]
    nh, dh = cfg["num_attention_heads"], cfg["attention_head_dim"]
    D = nh * dh
    pt, ph, pw = cfg["patch_size"]
    x, t, enc = x.double(), t.double(), enc.double()
    B, C, Fr, H, Wd = x.shape
    Fp, Hp, Wp = Fr // pt, H // ph, Wd // pw
    L = Fp * Hp * Wp
    lin = lambda v, p: v @ W[p + ".weight"].T + W[p + ".bias"]
    silu = lambda v: v * torch.sigmoid(v)
    gelu_tanh = lambda v: 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))

    def layer_norm(v, w=None, b=None):
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        y = (v - mu) / torch.sqrt(var + eps)
        return y * w + b if w is not None else y

    def rms_norm(v, w):
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * w

    inter = {}
    half = cfg["freq_dim"] // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    arg = t[:, None] * freqs[None]
    sinus = torch.cat([torch.cos(arg), torch.sin(arg)], -1)
    inter["condition.timestep_sinusoid"] = sinus
    temb = lin(silu(lin(sinus, "condition_embedder.time_embedder.linear_1")), "condition_embedder.time_embedder.linear_2")
    tproj = lin(silu(temb), "condition_embedder.time_proj").view(B, 6, D)
    ctx = lin(gelu_tanh(lin(enc, "condition_embedder.text_embedder.linear_1")), "condition_embedder.text_embedder.linear_2")
    inter["condition.temb"], inter["condition.timestep_proj"], inter["condition.text_embeds"] = temb, tproj, ctx

    # patch embedding as a matmul over (c, i, j, k) patches; tokens in (f, h, w) row-major order
    patches = x.reshape(B, C, Fp, pt, Hp, ph, Wp, pw).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, L, C * pt * ph * pw)
    tok = patches @ W["patch_embedding.weight"].reshape(D, -1).T + W["patch_embedding.bias"]
    inter["tokens.in"] = tok

    # 3D RoPE angles: head_dim split t / h / w with h = w = 2*(dh//6), t = rest
    dhw = 2 * (dh // 6)
    dt = dh - 2 * dhw
    fi, hi, wi = torch.meshgrid(torch.arange(Fp), torch.arange(Hp), torch.arange(Wp), indexing="ij")
    band = lambda d, pos: pos.reshape(-1, 1).double() * (10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d))[None]
    ang = torch.cat([band(dt, fi), band(dhw, hi), band(dhw, wi)], 1)  # [L, dh/2], pair j uses ang[:, j]
    inter["rope.angles"] = ang
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]

    def rope(v):  # v [B, L, nh, dh]; interleaved pairs (2j, 2j+1)
        a, b = v[..., 0::2], v[..., 1::2]
        out = torch.empty_like(v)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    def attention(p, xq, xkv, use_rope):
        q = rms_norm(lin(xq, p + ".to_q"), W[p + ".norm_q.weight"]).view(B, -1, nh, dh)
        k = rms_norm(lin(xkv, p + ".to_k"), W[p + ".norm_k.weight"]).view(B, -1, nh, dh)
        v = lin(xkv, p + ".to_v").view(B, -1, nh, dh)
        if use_rope:
            q, k = rope(q), rope(k)
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
        o = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, -1), v).reshape(B, -1, D)
        return lin(o, p + ".to_out.0")

    h = tok
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}"
        mod = W[p + ".scale_shift_table"] + tproj
        shift, scale, gate, c_shift, c_scale, c_gate = [mod[:, j:j + 1] for j in range(6)]
        xn = layer_norm(h) * (1 + scale) + shift
        h = h + attention(p + ".attn1", xn, xn, True) * gate
        inter[p + ".after_self_attn"] = h
        h = h + attention(p + ".attn2", layer_norm(h, W[p + ".norm2.weight"], W[p + ".norm2.bias"]), ctx, False)
        inter[p + ".after_cross_attn"] = h
        f_in = layer_norm(h) * (1 + c_scale) + c_shift
        h = h + lin(gelu_tanh(lin(f_in, p + ".ffn.net.0.proj")), p + ".ffn.net.2") * c_gate
        inter[p + ".out"] = h

    hm = W["scale_shift_table"] + temb[:, None]
    y = lin(layer_norm(h) * (1 + hm[:, 1:2]) + hm[:, 0:1], "proj_out")
    inter["head.proj_out.out"] = y
    Co = y.shape[-1] // (pt * ph * pw)
    out = torch.empty(B, Co, Fr, H, Wd, dtype=torch.float64)
    for f in range(Fp):
        for hh in range(Hp):
            for ww in range(Wp):
                tkn = (f * Hp + hh) * Wp + ww
                for a in range(pt):
                    for b in range(ph):
                        for c in range(pw):
                            pidx = (a * ph + b) * pw + c
                            out[:, :, f * pt + a, hh * ph + b, ww * pw + c] = y[:, tkn, pidx * Co:(pidx + 1) * Co]
    return out, inter


# ----------------------------------------------------------------------------------------------------------------
# UMT5 encoder
# ----------------------------------------------------------------------------------------------------------------

# google/umt5-xxl config.json (the text encoder Wan2.2 ships): d_model 4096, d_ff 10240, d_kv 64, num_heads 64,
# num_layers 24, num_decoder_layers 24, vocab 256384, feed_forward_proj gated-gelu (dense_act_fn gelu_new,
# is_gated_act), relative buckets 32 / max distance 128, layer_norm_epsilon 1e-6, dropout_rate 0.1,
# initializer_factor 1.0, pad 0, eos 1, decoder_start 0, scalable_attention true, tie_word_embeddings false,
# tokenizer_class T5Tokenizer.
UMT5_XXL = {
    "vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_decoder_layers": 24,
    "num_heads": 64, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
    "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": True, "use_cache": True, "pad_token_id": 0, "eos_token_id": 1,
    "decoder_start_token_id": 0, "scalable_attention": True, "tie_word_embeddings": False,
    "tokenizer_class": "T5Tokenizer",
}
UMT5_TINY = {
    "vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_decoder_layers": 2,
    "num_heads": 4, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
    "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": True, "use_cache": True, "pad_token_id": 0, "eos_token_id": 1,
    "decoder_start_token_id": 0, "scalable_attention": True, "tokenizer_class": "T5Tokenizer",
    "classifier_dropout": 0.0,
}
UMT5_LENGTHS = [12, 7]  # real tokens per row, the last of them is </s> (id 1); the rest is pad (id 0)
UMT5_SEQ = 12


def umt5_rule(name, shape):
    d, dkv, nh, dff = UMT5_TINY["d_model"], UMT5_TINY["d_kv"], UMT5_TINY["num_heads"], UMT5_TINY["d_ff"]
    if "layer_norm" in name:
        return ("norm", 1.0, 0.25)
    if name.endswith("relative_attention_bias.weight"):
        return ("bias_table", 0.0, 0.5)
    if name == "shared.weight":
        return ("embedding", 0.0, 1.0)
    if name.endswith(".q.weight"):  # no 1/sqrt(d_kv) in the scores; Mesh-TF folds it into q's init
        return ("weight", 0.0, 2.0 / math.sqrt(d * dkv))
    if name.endswith(".o.weight"):
        return ("weight", 0.0, 1.0 / math.sqrt(nh * dkv))
    if name.endswith(".wo.weight"):
        return ("weight", 0.0, 1.0 / math.sqrt(dff))
    return ("weight", 0.0, 1.0 / math.sqrt(d))  # k, v, wi_0, wi_1


def build_umt5():
    torch.manual_seed(SEED)
    config = UMT5Config(architectures=["UMT5EncoderModel"], **UMT5_TINY)
    model = UMT5EncoderModel(config)
    gen = torch.Generator().manual_seed(SEED + 2)
    randomise(model, gen, umt5_rule)
    model.eval()
    gen_in = torch.Generator().manual_seed(SEED + 3)
    ids = torch.zeros((len(UMT5_LENGTHS), UMT5_SEQ), dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(UMT5_LENGTHS):
        ids[r, :n - 1] = torch.randint(2, UMT5_TINY["vocab_size"], (n - 1,), generator=gen_in)
        ids[r, n - 1] = UMT5_TINY["eos_token_id"]
        mask[r, :n] = 1
    return model, {"input_ids": ids, "attention_mask": mask}


def umt5_relative_bucket_exact(rel: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 bucket in exact integer / float64 arithmetic (independent of transformers)."""
    out = []
    half = num_buckets // 2
    max_exact = half // 2
    for r in rel.reshape(-1).tolist():
        b = half if r > 0 else 0
        a = abs(r)
        if a < max_exact:
            b += a
        else:
            b += min(max_exact + int(math.log(a / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)),
                     half - 1)
        out.append(b)
    return torch.tensor(out, dtype=torch.int64).reshape(rel.shape)


def umt5_reference_f64(sd: dict, cfg: dict, ids: torch.Tensor, mask) -> tuple:
    W = {k: v.double() for k, v in sd.items()}
    emb = W["shared.weight"] if "shared.weight" in W else W["encoder.embed_tokens.weight"]
    eps = cfg["layer_norm_epsilon"]
    nh, dkv = cfg["num_heads"], cfg["d_kv"]
    B, S = ids.shape
    rms = lambda v, w: v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * w
    gelu_new = lambda v: 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    rel = torch.arange(S)[None, :] - torch.arange(S)[:, None]  # key - query
    buckets = umt5_relative_bucket_exact(rel, cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"])
    neg = torch.zeros(B, 1, 1, S, dtype=torch.float64)
    if mask is not None:
        neg = torch.where(mask[:, None, None, :] > 0, 0.0, -math.inf).double()
    h = emb[ids]
    inter = {"embeddings": h}
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}.layer"
        n = rms(h, W[f"{p}.0.layer_norm.weight"])
        q = (n @ W[f"{p}.0.SelfAttention.q.weight"].T).view(B, S, nh, dkv)
        k = (n @ W[f"{p}.0.SelfAttention.k.weight"].T).view(B, S, nh, dkv)
        v = (n @ W[f"{p}.0.SelfAttention.v.weight"].T).view(B, S, nh, dkv)
        bias = W[f"{p}.0.SelfAttention.relative_attention_bias.weight"][buckets].permute(2, 0, 1)[None]
        inter[f"layers.{i}.position_bias"] = bias
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) + bias + neg  # no 1/sqrt(d_kv)
        o = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, -1), v).reshape(B, S, nh * dkv)
        h = h + o @ W[f"{p}.0.SelfAttention.o.weight"].T
        n = rms(h, W[f"{p}.1.layer_norm.weight"])
        ff = gelu_new(n @ W[f"{p}.1.DenseReluDense.wi_0.weight"].T) * (n @ W[f"{p}.1.DenseReluDense.wi_1.weight"].T)
        h = h + ff @ W[f"{p}.1.DenseReluDense.wo.weight"].T
        inter[f"layers.{i}.out"] = h
    return rms(h, W["encoder.final_layer_norm.weight"]), inter, buckets


def run_umt5_with_hooks(model, ids, mask, tag):
    cap = {}
    hooks = [model.encoder.embed_tokens.register_forward_hook(lambda m, a, o: cap.__setitem__(f"{tag}embeddings", o.clone()))]
    for i, blk in enumerate(model.encoder.block):
        hooks.append(blk.register_forward_hook(lambda m, a, o, i=i: cap.__setitem__(f"{tag}layers.{i}.out", o.clone())))
        hooks.append(blk.layer[0].register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f"{tag}layers.{i}.after_self_attn", o[0].clone())))
        hooks.append(blk.layer[0].layer_norm.register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f"{tag}layers.{i}.self_attn_norm.out", o.clone())))
        hooks.append(blk.layer[1].layer_norm.register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f"{tag}layers.{i}.ff_norm.out", o.clone())))
    with torch.no_grad():
        if mask is None:
            out = model(input_ids=ids).last_hidden_state
        else:
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    for h in hooks:
        h.remove()
    return out, cap


# ----------------------------------------------------------------------------------------------------------------
# notes (semantics read in the installed packages; paths relative to site-packages)
# ----------------------------------------------------------------------------------------------------------------

TW = "diffusers/models/transformers/transformer_wan.py"
EMB = "diffusers/models/embeddings.py"
UM = "transformers/models/umt5/modeling_umt5.py"

WAN_NOTES = [
    f"Timestep embedding ({TW}:320-345, {EMB}:27-78, {EMB}:1060-1072): Timesteps(freq_dim, flip_sin_to_cos=True, "
    "downscale_freq_shift=0) gives [cos(t f_k), sin(t f_k)] (cos first because of flip_sin_to_cos) with "
    "f_k = exp(-ln(10000) k / (freq_dim/2)), k = 0..freq_dim/2-1. It is always computed in float32: the exponent is a "
    "float32 arange and timesteps[:, None].float() (embeddings.py:57-63), even when the model is float64; at t=900 "
    "the float32 argument t*f_0 = 900 has an ulp of 6e-5, so the sinusoid carries ~3e-5 absolute error vs exact maths "
    "(measured in manifest precision). For bit-closeness the port should also compute exponent, exp, t*f and sin/cos "
    "in Float. temb = time_embedder.linear_2(SiLU(time_embedder.linear_1(sinusoid))) with no activation after linear_2 "
    "(TimestepEmbedding post_act None). timestep_proj = time_proj(SiLU(temb)) [B, 6D], unflattened to [B, 6, D] "
    f"({TW}:691). The timestep is a float tensor of shape [B] (FlashWorld passes scheduler.timesteps[idx], float32); a "
    f"2-D [B, L] timestep would switch to the Wan2.2-TI2V per-token path ({TW}:677-688), which FlashWorld does not use.",
    f"Modulation order ({TW}:483-485): (scale_shift_table[1,6,D] + timestep_proj[B,6,D]).chunk(6, dim=1) = shift_msa, "
    "scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa, i.e. row 0 shift, row 1 scale, row 2 gate for the "
    "self-attention, rows 3-5 the same for the FFN. Used as LN(x)*(1+scale)+shift and x + out*gate. The head "
    f"({TW}:714, 723) adds scale_shift_table[1,2,D] to temb (NOT timestep_proj, and with no SiLU): row 0 shift, row 1 "
    "scale, no gate.",
    f"Block order ({TW}:487-502): x += attn1(LN(x)(1+scale)+shift)*gate; x += attn2(norm2(x), text) with no gate and no "
    "modulation; x += ffn(LN(x)(1+c_scale)+c_shift)*c_gate. norm1/norm3/norm_out are FP32LayerNorm without affine "
    f"(eps from config); norm2 is FP32LayerNorm WITH affine weight and bias ({TW}:434, 454, 458). The diffusers names "
    "norm2/norm3 are swapped relative to the original Wan checkpoint (convert_wan_to_diffusers.py renames norm2<->norm3), "
    "so norm2.weight/bias in diffusers keys is the cross-attention norm. FP32LayerNorm casts its input to float32 "
    "(diffusers/models/normalization.py:84-93), and the block does hidden_states.float() around every residual add.",
    f"Cross-attention norms ({TW}:93-96, 445-454): the query input is norm2(x) (affine LayerNorm); K and V come from "
    "the projected text (condition.text_embeds) with no norm on the text before to_k/to_v; then norm_q is applied to "
    "to_q(...) and norm_k to to_k(text) exactly as in self-attention. No RoPE and no mask in cross-attention (all T text "
    "slots are attended, including FlashWorld's zeroed pads).",
    f"q/k norms act ACROSS heads ({TW}:95-100, 208-209): norm_q / norm_k are torch.nn.RMSNorm(heads*head_dim, eps, "
    "elementwise_affine=True) applied to the flat [B, L, heads*head_dim] projection BEFORE unflatten into heads: "
    "y = x * rsqrt(mean over all D channels of x^2 + eps) * weight[D]. In diffusers 0.42.1 the config value qk_norm is "
    f"accepted by WanTransformerBlock ({TW}:426) but never used: WanAttention always builds these RMSNorms.",
    f"Attention ({TW}:98-118, 143-155): heads split as unflatten(2, (heads, head_dim)) of the channel axis (head h owns "
    "channels h*head_dim..), RoPE on q and k of self-attention only, SDPA with scale 1/sqrt(head_dim), no mask, no "
    "dropout; to_q/to_k/to_v/to_out.0 all have bias.",
    f"RoPE ({TW}:354-416, 104-115, {EMB}:885-940): head_dim split into t = head_dim - 2*h, h = w = 2*(head_dim//6) "
    "(tiny: 16/12/12; real: 44/42/42). Band frequencies theta_k = 10000^(-2k/d_band), k < d_band/2, computed in float64 "
    "then cos/sin cast to float32 (.float() at embeddings.py:938-939, regardless of model dtype). Positions are the "
    "integer (frame, row, col) of the post-patch grid. Interleaved pairs: out[2j] = x[2j] cos - x[2j+1] sin, "
    "out[2j+1] = x[2j] sin + x[2j+1] cos, with the angle of pair j (the table stores each cos/sin twice; the code reads "
    "cos[0::2], sin[1::2]). WARNING: FlashWorld's vendored models/transformer_wan.py (424db44, WanRotaryPosEmbed.forward) "
    "splits the table with [D-2*(D//3), D//3, D//3] while building it with 2*(D//6): identical for head_dim 128 "
    "(44/42/42) but NOT for the tiny head_dim 40 (it would use 14/13/13 on a 16/12/12 table). This fixture follows "
    "diffusers 0.42.1; the port should implement the 2*(D//6) split, which equals FlashWorld at head_dim 128.",
    f"Patch embedding and token order ({TW}:670-674): Conv3d(in, D, kernel=stride=patch) -> [B, D, F', H', W'] -> "
    "flatten(2).transpose(1, 2): token index = (f*H' + h)*W' + w (frame-major, then row, then column). The conv weight "
    "[D, C, pt, ph, pw] contracts over (c, i, j, k) with x[c, f*pt+i, h*ph+j, w*pw+k].",
    f"Unpatchify ({TW}:726-730): proj_out output [B, L, pt*ph*pw*C_out] is reshaped to [B, F', H', W', pt, ph, pw, C_out] "
    "and permuted (0,7,1,4,2,5,3,6): out[b, c, f*pt+i, h*ph+j, w*pw+k] = y[b, (f*H'+h)*W'+w, ((i*ph+j)*pw+k)*C_out + c]. "
    "So proj_out row index = p*C_out + c with p = 2*dy + dx for patch (1,2,2), matching flashworld-model.md §3.1 "
    "(there C_out = 1072; here 12).",
    f"FFN ({TW}:457, diffusers/models/attention.py:1714-1715, diffusers/models/activations.py:81-85): net.0.proj Linear "
    "D->ffn_dim, GELU approximate='tanh', net.1 Dropout, net.2 Linear ffn_dim->D. Text projection "
    f"({EMB}:1964-1982): linear_1, GELU(tanh), linear_2 (all with bias).",
    "Dtypes in diffusers: the block adds in float32 (hidden_states.float() + ...).type_as(hidden_states); with a float32 "
    "model this is a no-op. After model.double() those .float() calls, FP32LayerNorm, the float32 sinusoid and the "
    "float32 RoPE table still round to float32, so model.double() is NOT a float64 reference; the precision section "
    "reports both model.double() and an independent float64 re-implementation.",
    "Config flags mirrored from Wan2.2-TI2V-5B (diffusers scripts/convert_wan_to_diffusers.py "
    "get_transformer_config('Wan2.2-TI2V-5B'), class defaults for the rest): see manifest wan.config_ti2v_5b vs "
    "wan.config. The TI2V pipeline's expand_timesteps=True (per-token timesteps) is a pipeline option, not a model "
    "flag; FlashWorld calls the model directly with a [B] timestep.",
    "Not covered at tiny scale: FlashWorld's surgery widens patch_embedding to 1174 input channels and proj_out to "
    "4288 = 4*1072 rows (flashworld-model.md §3.1); here in=20, out=12 keep in != out and prod(patch)*out = 48 != D = 80 "
    "so a port cannot conflate them. FlashWorld runs the blocks with a bf16 residual stream and bf16 RoPE tables "
    "(models/transformer_wan.py forward, 'if True:' cast); this fixture is float32 throughout.",
]

UMT5_NOTES = [
    f"Relative attention bias is per layer ({UM}:372-380): every UMT5 self-attention has its own "
    "relative_attention_bias Embedding(num_buckets, num_heads) (has_relative_attention_bias=True in every layer; "
    "T5 has it only in layer 0 and reuses it). compute_bias ({UM}:279-289): rel = key_pos - query_pos, bucket -> "
    "table[bucket] -> [1, heads, q, k]. The bias is recomputed in every layer; nothing is passed between layers.",
    f"Buckets ({UM}:232-277): encoder (is_decoder False) is bidirectional: num_buckets//2 = 16 per direction, "
    "+16 when rel > 0 (key after query), then on |rel|: exact below max_exact = 8, else "
    "8 + int(log(|rel|/8) / log(max_distance/8) * 8), capped at 15. The log is evaluated in float32 "
    "(relative_position.float()) divided by a Python float; intermediates.relative_position_bucket_table gives the "
    "transformers result for rel = -160..160 and the manifest records whether it matches exact maths.",
    f"No scaling of scores ({UM}:208-209, 171): scaling = 1.0 (Mesh-TF folds 1/sqrt(d_kv) into the q init); scores = "
    "q k^T + position_bias + mask, softmax over keys, no dropout at inference. q/k/v/o have no bias.",
    f"Mask ({UM}:698-702, transformers/masking_utils.py create_bidirectional_mask, "
    "transformers/integrations/sdpa_attention.py:55-92): the [B, S] mask (1 = keep) masks KEYS only: masked keys get "
    "the dtype minimum (sdpa: torch.where(mask, position_bias, finfo.min); eager: additive finfo.min). Padded QUERY "
    "rows are still computed and are not zero; FlashWorld zeroes them afterwards. Without a mask every key, pads "
    "included, is attended (position bias only). In transformers 4.x (FlashWorld's pin) the mask was folded into "
    "position_bias instead; same result.",
    f"Gated GELU ({UM}:106-133, transformers/models/umt5/configuration_umt5.py:68-73, transformers/activations.py:59-66, "
    "328): feed_forward_proj 'gated-gelu' sets dense_act_fn 'gelu_new' = NewGELUActivation = "
    "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (the tanh approximation); FF(x) = wo(gelu_new(wi_0 x) * wi_1 x), "
    "no biases. wo is kept in float32 (_keep_in_fp32_modules = ['wo'], {UM}:520).",
    f"Norm placement ({UM}:57-80, 137-152, 384-400, 714-727): pre-norm residual blocks: x += SelfAttn(RMS(x)); "
    "x += FF(RMS(x)); after the last block final_layer_norm, then dropout (identity at inference; the fixture config "
    "has dropout_rate 0 as well), and a dropout on the embeddings before the first block. UMT5LayerNorm is RMSNorm "
    "without mean subtraction or bias: x * rsqrt(mean(x^2) + eps) * weight, variance always computed in float32.",
    f"Embeddings ({UM}:1107-1118, configuration_umt5.py:75-76): transformers 5 forces tie_word_embeddings=True for the "
    "T5 family, so encoder.embed_tokens is the same tensor as shared; the saved model.safetensors holds the keys listed "
    "in manifest umt5.weight_keys. A loader should accept shared.weight or encoder.embed_tokens.weight (Wan's real "
    "checkpoint, saved by older transformers, may have either or both). No embedding scaling (no sqrt(d_model)).",
    "FlashWorld (app.py L223-252 at 424db44) calls text_encoder(input_ids, mask) positionally, i.e. WITH "
    "attention_mask = the tokenizer's int64 mask, then replaces rows at and after seq_len = mask.sum() by zeros "
    "and casts to float32. outputs.text_embeds_flashworld is that result for the tiny model. (In FlashWorld the call "
    "runs inside generate()'s bf16 autocast; this fixture is float32.)",
]


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------

def main():
    # Only this script's folders: vae-tiny/ and tokenizer-tiny/ belong to the other generators.
    for own in ("wan-tiny", "umt5-tiny"):
        if (OUT / own).exists():
            shutil.rmtree(OUT / own)
    (OUT / "wan-tiny").mkdir(parents=True)
    (OUT / "umt5-tiny").mkdir(parents=True)
    problems = []

    # ================= Wan =================
    wan, wan_in = build_wan()
    wan.save_pretrained(str(OUT / "wan-tiny"), safe_serialization=True)
    sd = load_file(str(OUT / "wan-tiny" / "diffusion_pytorch_model.safetensors"))
    assert all(v.dtype == torch.float32 for v in sd.values())
    sample, wan_cap = run_wan_with_hooks(wan, wan_in)
    print("wan sample", tuple(sample.shape), "std", sample.std().item())
    for k in ("tokens.in", "condition.temb", "condition.timestep_proj", "condition.text_embeds", "blocks.0.out",
              "blocks.1.out", "head.proj_out.out"):
        v = wan_cap[k]
        print(f"  {k:28s} std {v.std().item():.3f} max {v.abs().max().item():.3f}")

    # reload check: the saved folder must reproduce the output bit for bit
    wan_re = load_wan(OUT / "wan-tiny")
    with torch.no_grad():
        again = wan_re(hidden_states=wan_in["hidden_states"], timestep=wan_in["timestep"],
                       encoder_hidden_states=wan_in["encoder_hidden_states"], return_dict=False)[0]
    assert torch.equal(again, sample), "reloaded wan-tiny differs"

    save_st(OUT / "wan-tiny" / "inputs.safetensors", wan_in)
    save_st(OUT / "wan-tiny" / "outputs.safetensors", {"sample": sample})
    wan_inter = save_st(OUT / "wan-tiny" / "intermediates.safetensors", wan_cap)

    # precision: independent float64 re-implementation and diffusers model.double()
    ref_out, ref_inter = wan_reference_f64(sd, WAN_TINY, wan_in["hidden_states"], wan_in["timestep"],
                                           wan_in["encoder_hidden_states"])
    wan_prec = {"sample_vs_independent_f64": metrics(sample, ref_out)}
    for k, v in ref_inter.items():
        if k in wan_cap:
            wan_prec[f"{k}_vs_independent_f64"] = metrics(wan_cap[k], v)
    # rope table: compare the library cos/sin against exact angles
    ang = ref_inter["rope.angles"]
    exp_cos = torch.cos(ang).repeat_interleave(2, 1)
    wan_prec["rope.freqs_cos_vs_independent_f64"] = metrics(wan_cap["rope.freqs_cos"][0, :, 0], exp_cos)
    wan_prec["rope.freqs_sin_vs_independent_f64"] = metrics(wan_cap["rope.freqs_sin"][0, :, 0],
                                                            torch.sin(ang).repeat_interleave(2, 1))
    wan64 = load_wan(OUT / "wan-tiny").double()
    with torch.no_grad():
        s64 = wan64(hidden_states=wan_in["hidden_states"].double(), timestep=wan_in["timestep"],
                    encoder_hidden_states=wan_in["encoder_hidden_states"].double(), return_dict=False)[0]
    wan_prec["sample_vs_diffusers_model_double"] = metrics(sample, s64)
    wan_prec["diffusers_model_double_vs_independent_f64"] = metrics(s64, ref_out)
    # the same fp32 library run, but with the exact (float64-computed, then float32-rounded) sinusoid
    # injected: isolates how much of the fp32 error comes from the float32 timestep sinusoid alone
    orig = wan.condition_embedder.timesteps_proj.forward
    wan.condition_embedder.timesteps_proj.forward = lambda ts: ref_inter["condition.timestep_sinusoid"].float()
    with torch.no_grad():
        s_exact_sin = wan(hidden_states=wan_in["hidden_states"], timestep=wan_in["timestep"],
                          encoder_hidden_states=wan_in["encoder_hidden_states"], return_dict=False)[0]
    wan.condition_embedder.timesteps_proj.forward = orig
    wan_prec["sample_fp32_with_exact_sinusoid_vs_independent_f64"] = metrics(s_exact_sin, ref_out)
    wan_prec["sample_vs_sample_fp32_with_exact_sinusoid"] = metrics(sample, s_exact_sin)
    for k in ("sample_vs_independent_f64", "sample_vs_diffusers_model_double",
              "sample_fp32_with_exact_sinusoid_vs_independent_f64", "condition.timestep_sinusoid_vs_independent_f64"):
        print(f"  {k:55s} {fmt(wan_prec[k])}")
    for k, m in wan_prec.items():
        if k.endswith("_vs_independent_f64") and m["scale_rel"] > TOL and "diffusers_model_double" not in k:
            problems.append(f"wan {k}: {fmt(m)}")

    # ================= UMT5 =================
    t5, t5_in = build_umt5()
    t5.save_pretrained(str(OUT / "umt5-tiny"), safe_serialization=True)
    t5_sd = load_file(str(OUT / "umt5-tiny" / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in t5_sd.values())
    attn_impl = t5.config._attn_implementation
    ids, mask = t5_in["input_ids"], t5_in["attention_mask"]
    out_m, cap_m = run_umt5_with_hooks(t5, ids, mask, "masked.")
    out_u, cap_u = run_umt5_with_hooks(t5, ids, None, "unmasked.")
    seq_lens = mask.gt(0).sum(1)
    zeroed = torch.stack([torch.cat([u[:n], u.new_zeros(UMT5_SEQ - n, u.shape[1])]) for u, n in zip(out_m, seq_lens)])
    print("umt5 attn implementation", attn_impl, "out std", out_m.std().item())

    t5_re = UMT5EncoderModel.from_pretrained(str(OUT / "umt5-tiny")).eval()
    with torch.no_grad():
        assert torch.equal(t5_re(input_ids=ids, attention_mask=mask).last_hidden_state, out_m), "reloaded umt5 differs"
        t5_eager = UMT5EncoderModel.from_pretrained(str(OUT / "umt5-tiny"), attn_implementation="eager").eval()
        out_m_eager = t5_eager(input_ids=ids, attention_mask=mask).last_hidden_state
        out_u_eager = t5_eager(input_ids=ids).last_hidden_state

    t5_cap = {}
    t5_cap.update(cap_m)
    t5_cap.update({k: v for k, v in cap_u.items() if k != "unmasked.embeddings"})
    t5_cap["embeddings"] = t5_cap.pop("masked.embeddings")
    assert torch.equal(t5_cap["embeddings"], cap_u["unmasked.embeddings"])
    with torch.no_grad():
        for i, blk in enumerate(t5.encoder.block):
            t5_cap[f"layers.{i}.position_bias"] = blk.layer[0].SelfAttention.compute_bias(UMT5_SEQ, UMT5_SEQ)
    rel_range = torch.arange(-160, 161)
    hf_buckets = t5.encoder.block[0].layer[0].SelfAttention._relative_position_bucket(rel_range)
    t5_cap["relative_position_bucket_table"] = hf_buckets.to(torch.int64)
    exact_buckets = umt5_relative_bucket_exact(rel_range, UMT5_TINY["relative_attention_num_buckets"],
                                               UMT5_TINY["relative_attention_max_distance"])
    bucket_mismatch = [int(r) for r, a, b in zip(rel_range, hf_buckets, exact_buckets) if int(a) != int(b)]
    print("bucket mismatches (transformers float32 log vs exact):", bucket_mismatch)

    t5_outputs = {"last_hidden_state": out_m, "last_hidden_state_unmasked": out_u, "text_embeds_flashworld": zeroed}
    save_st(OUT / "umt5-tiny" / "inputs.safetensors", t5_in)
    save_st(OUT / "umt5-tiny" / "outputs.safetensors", t5_outputs)
    save_st(OUT / "umt5-tiny" / "intermediates.safetensors", t5_cap)

    ref_m, ref_inter_m, ref_buckets = umt5_reference_f64(t5_sd, UMT5_TINY, ids, mask)
    ref_u, ref_inter_u, _ = umt5_reference_f64(t5_sd, UMT5_TINY, ids, None)
    t5_prec = {
        "last_hidden_state_vs_independent_f64": metrics(out_m, ref_m),
        "last_hidden_state_unmasked_vs_independent_f64": metrics(out_u, ref_u),
        "last_hidden_state_sdpa_vs_eager": metrics(out_m, out_m_eager),
        "last_hidden_state_unmasked_sdpa_vs_eager": metrics(out_u, out_u_eager),
    }
    for k, v in ref_inter_m.items():
        if k == "embeddings":
            continue
        src = t5_cap[k] if k.endswith("position_bias") else t5_cap[f"masked.{k}"]
        t5_prec[f"{k}_vs_independent_f64" if k.endswith("position_bias") else f"masked.{k}_vs_independent_f64"] = metrics(src, v)
    for k, v in ref_inter_u.items():
        if k.endswith(".out"):
            t5_prec[f"unmasked.{k}_vs_independent_f64"] = metrics(t5_cap[f"unmasked.{k}"], v)
    t5_64 = UMT5EncoderModel.from_pretrained(str(OUT / "umt5-tiny")).double().eval()
    with torch.no_grad():
        o64m = t5_64(input_ids=ids, attention_mask=mask).last_hidden_state
        o64u = t5_64(input_ids=ids).last_hidden_state
    t5_prec["last_hidden_state_vs_transformers_model_double"] = metrics(out_m, o64m)
    t5_prec["last_hidden_state_unmasked_vs_transformers_model_double"] = metrics(out_u, o64u)
    t5_prec["transformers_model_double_vs_independent_f64"] = metrics(o64m, ref_m)
    # mask semantics check: the valid rows of the masked run must not depend on what the pad ids are
    ids2 = ids.clone()
    ids2[mask == 0] = 57
    with torch.no_grad():
        o_pad57 = t5(input_ids=ids2, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    t5_prec["masked_valid_rows_independent_of_pad_ids"] = metrics(o_pad57[valid], out_m[valid])
    for k in ("last_hidden_state_vs_independent_f64", "last_hidden_state_unmasked_vs_independent_f64",
              "last_hidden_state_vs_transformers_model_double", "last_hidden_state_sdpa_vs_eager",
              "masked_valid_rows_independent_of_pad_ids"):
        print(f"  {k:55s} {fmt(t5_prec[k])}")
    for k, m in t5_prec.items():
        if k.endswith("_vs_independent_f64") and m["scale_rel"] > TOL and "transformers_model_double" not in k:
            problems.append(f"umt5 {k}: {fmt(m)}")
    diff_rows = (out_m - out_u).abs().amax(-1)
    print("umt5 masked vs unmasked max |diff| per row (row 0 has no padding):", diff_rows.amax(-1).tolist())

    # ================= manifest =================
    wan_cfg_saved = json.loads((OUT / "wan-tiny" / "config.json").read_text())
    t5_cfg_saved = json.loads((OUT / "umt5-tiny" / "config.json").read_text())
    wan_in_saved = load_file(str(OUT / "wan-tiny" / "inputs.safetensors"))
    t5_in_saved = load_file(str(OUT / "umt5-tiny" / "inputs.safetensors"))

    manifest = {
        "generator": "tools/models/make_model_fixtures.py",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "seed": SEED,
        "determinism": "torch.Generator seeds (weights SEED / SEED+2, inputs SEED+1 / SEED+3), one CPU thread, "
                       "torch.use_deterministic_algorithms(True); a rerun with the same versions writes identical bytes",
        "dtypes": "every floating tensor in every file is float32; input_ids and attention_mask are int64; "
                  "intermediates.relative_position_bucket_table is int64",
        "tolerance": {
            "metric": "scale_rel = max|got - expected| / max|expected| over the whole tensor (both widened to float64); "
                      "also reported: rel_l2 = ||got - expected|| / ||expected||",
            "per_module": TOL,
            "end_to_end": TOL,
            "why": "the issue asks for 1e-4 relative error per module; the float32 fixtures themselves are within the "
                   "'precision' numbers below of exact float64 maths, 1-2 orders of magnitude under 1e-4, so a correct "
                   "float32 port should land at a few times those numbers. Elementwise relative error is not used "
                   "because outputs cross zero; use scale_rel (or rel_l2) per tensor.",
            "suggested_use": "compare each module by feeding it the fixture's own input intermediate (e.g. "
                             "blocks.1.in -> blocks.1.out) so errors do not accumulate, then the end-to-end sample.",
            "measured_noise_floor": {
                "what": "scale_rel of the committed float32 outputs against an independent float64 "
                        "re-implementation (exact maths) and against the library model after .double()",
                "wan.sample_vs_exact_f64": wan_prec["sample_vs_independent_f64"]["scale_rel"],
                "wan.sample_vs_diffusers_double": wan_prec["sample_vs_diffusers_model_double"]["scale_rel"],
                "wan.sample_vs_exact_f64_if_sinusoid_were_exact":
                    wan_prec["sample_fp32_with_exact_sinusoid_vs_independent_f64"]["scale_rel"],
                "wan.worst_intermediate_vs_exact_f64": max(v["scale_rel"] for k, v in wan_prec.items()
                                                           if k.endswith("_vs_independent_f64")),
                "umt5.last_hidden_state_vs_exact_f64": t5_prec["last_hidden_state_vs_independent_f64"]["scale_rel"],
                "umt5.last_hidden_state_unmasked_vs_exact_f64":
                    t5_prec["last_hidden_state_unmasked_vs_independent_f64"]["scale_rel"],
                "umt5.last_hidden_state_vs_transformers_double":
                    t5_prec["last_hidden_state_vs_transformers_model_double"]["scale_rel"],
                "umt5.sdpa_vs_eager": t5_prec["last_hidden_state_sdpa_vs_eager"]["scale_rel"],
            },
        },
        "wan": {
            "dir": "wan-tiny",
            "class": "diffusers.WanTransformer3DModel",
            "config": WAN_TINY,
            "config_json_as_saved": wan_cfg_saved,
            "config_ti2v_5b": WAN_TI2V_5B,
            "config_mapping": "every flag of the Wan2.2-TI2V-5B config is kept (patch (1,2,2), cross_attn_norm True, "
                              "qk_norm rms_norm_across_heads, eps 1e-6, image_dim/added_kv_proj_dim/pos_embed_seq_len "
                              "None, rope_max_seq_len 1024); only sizes shrink: heads 24->2, head_dim 128->40 (RoPE "
                              "split 16/12/12, three different band widths), in 48 (FlashWorld 1174)->20, out 48 "
                              "(FlashWorld 1072)->12, text_dim 4096->32, freq_dim 256->16, ffn 14336->64, layers 30->2",
            "files": {
                "config.json": "WanTransformer3DModel.save_pretrained (diffusers writes _class_name, _diffusers_version)",
                "diffusion_pytorch_model.safetensors": "save_pretrained(safe_serialization=True) weights, float32, "
                                                       "diffusers key names",
                "inputs.safetensors": describe(wan_in_saved, {
                    "hidden_states": "[B, in_channels, F, H, W] latent video (frames 3, latent 6x8)",
                    "timestep": "[B] float32 = 900.0 (raw scheduler timestep, not sigma)",
                    "encoder_hidden_states": "[B, T, text_dim] text features (UMT5 output in FlashWorld)"}),
                "outputs.safetensors": describe({"sample": sample},
                                                {"sample": "[B, out_channels, F, H, W] = model(...)[0]"}),
                "intermediates.safetensors": describe(wan_inter, WAN_DOCS),
            },
            "call": "with torch.no_grad(): model.eval()(hidden_states=inputs['hidden_states'], "
                    "timestep=inputs['timestep'], encoder_hidden_states=inputs['encoder_hidden_states'], "
                    "return_dict=False)[0]  # float32, CPU",
            "token_grid": {"F'": 3, "H'": 3, "W'": 4, "L": 36, "D": 80},
            "weight_init": WAN_INIT,
            "precision": wan_prec,
            "notes": WAN_NOTES,
        },
        "umt5": {
            "dir": "umt5-tiny",
            "class": "transformers.UMT5EncoderModel",
            "config": UMT5_TINY,
            "config_json_as_saved": t5_cfg_saved,
            "config_umt5_xxl": UMT5_XXL,
            "config_mapping": "UMT5-XXL flags kept (gated-gelu/gelu_new, 32 buckets, max distance 128, eps 1e-6, pad 0, "
                              "eos 1, scalable_attention true (unused by transformers), relative bias in every layer); "
                              "sizes shrink: vocab 256384->100, d_model 4096->32, heads 64->4, d_kv 64->8, d_ff "
                              "10240->48, layers 24->2; dropout 0.1->0 (inference ignores dropout anyway). "
                              "tie_word_embeddings: transformers 5 forces True for T5 models.",
            "attn_implementation_used": attn_impl,
            "weight_keys": sorted(t5_sd.keys()),
            "files": {
                "config.json": "UMT5EncoderModel.save_pretrained",
                "model.safetensors": "save_pretrained(safe_serialization=True) weights, float32",
                "inputs.safetensors": describe(t5_in_saved, {
                    "input_ids": f"[2, {UMT5_SEQ}] int64; row r has {UMT5_LENGTHS} real tokens ending with </s> (1), "
                                 "then pad id 0 (row 0 has no padding)",
                    "attention_mask": "[2, 12] int64 (1 = real token, 0 = pad), as T5TokenizerFast returns it and "
                                      "FlashWorld passes it"}),
                "outputs.safetensors": describe(t5_outputs, {
                    "last_hidden_state": "model(input_ids, attention_mask=mask).last_hidden_state [2, 12, 32]; the "
                                         "variant FlashWorld uses (padded rows are NOT zero here)",
                    "last_hidden_state_unmasked": "model(input_ids).last_hidden_state (no mask: pads attended)",
                    "text_embeds_flashworld": "last_hidden_state with rows >= mask.sum() replaced by zeros = what "
                                              "FlashWorld's encode_text returns (app.py L241-252)"}),
                "intermediates.safetensors": describe(t5_cap, {
                    "embeddings": "shared[input_ids] [2, 12, 32] (no scaling)",
                    "relative_position_bucket_table": "transformers _relative_position_bucket(rel) for rel = "
                                                      "key - query = -160..160 (index rel+160), bidirectional",
                    **{f"layers.{i}.position_bias": f"layer {i} compute_bias(12, 12) [1, heads, q, k] (no mask in it)"
                       for i in range(UMT5_TINY['num_layers'])},
                    **{f"{tag}.layers.{i}.{what}": f"{desc} ({'with' if tag == 'masked' else 'without'} the mask)"
                       for tag in ("masked", "unmasked") for i in range(UMT5_TINY['num_layers'])
                       for what, desc in (("self_attn_norm.out", f"layer {i} RMSNorm before self-attention"),
                                          ("after_self_attn", f"layer {i} x + SelfAttn(RMS(x))"),
                                          ("ff_norm.out", f"layer {i} RMSNorm before the gated FF"),
                                          ("out", f"layer {i} output (after the FF residual; before final_layer_norm for the last layer)"))},
                }),
            },
            "call": "with torch.no_grad(): model.eval()(input_ids=ids, attention_mask=mask).last_hidden_state, and "
                    "model(input_ids=ids).last_hidden_state for the unmasked variant",
            "flashworld_variant": "WITH the mask: app.py L247 text_encoder(text_input_ids, mask) (positional 2nd "
                                  "argument = attention_mask), then rows >= seq_len zeroed (outputs.text_embeds_flashworld)",
            "bucket_mismatches_vs_exact_maths": bucket_mismatch,
            "weight_init": UMT5_INIT,
            "precision": t5_prec,
            "notes": UMT5_NOTES,
        },
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(OUT)}  {p.stat().st_size}")
    print(f"total {total} bytes (budget {BUDGET})")
    if total > BUDGET:
        problems.append(f"fixtures are {total} bytes, over the {BUDGET} budget")
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
