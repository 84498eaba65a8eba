#!/usr/bin/env python3
"""Parity fixtures for the Wan2.2 VAE (diffusers `AutoencoderKLWan`), single frame, tiny random weights.

Writes Tests/ModelTests/Fixtures/vae-tiny/ (committed; the Swift tests never run Python):

    config.json                           written by diffusers' save_pretrained (plus "clip_output": false, see below)
    diffusion_pytorch_model.safetensors   written by save_pretrained: float32, diffusers key names, causal conv kernels
                                          in their full (out, in, 3, 3, 3) shape (the Swift side does the surgery)
    inputs.safetensors                    image x [1,3,1,32,48] in [-1,1]; latent z [1,4,1,2,3]
    outputs.safetensors                   encode / decode results computed by diffusers itself, float32, CPU
    intermediates.safetensors             forward-hook captures of the encoder and decoder modules (names = module paths)
    manifest.json                         every tensor with shape and meaning, the config, the calls, tolerances,
                                          measured noise floors, the weight-surgery check and semantic notes

Set-up and run (CPU only, a few seconds; nothing is downloaded), from the repository root:

    python3 -m venv /tmp/gsvenv
    /tmp/gsvenv/bin/pip install torch numpy diffusers safetensors      # CPU wheel of torch is enough
    /tmp/gsvenv/bin/python tools/models/make_vae_fixtures.py

The committed files were made with torch 2.13.0+cpu and diffusers 0.42.1 (recorded in manifest.json). Weights and
inputs come from numpy's PCG64 seeded per tensor (crc32 of its name), torch runs on one thread, so a rerun with the same
versions writes identical bytes (`--check` reruns everything in memory and compares with the committed files).

Why the model is smaller than Wan2.2 suggests: every flag of the Wan2.2-TI2V-5B VAE is kept (is_residual, patch 2,
12 in/out channels, temperal_downsample [F,T,T], dim_mult [1,2,4,4], 2 res blocks, no attn_scales, z_dim = latents
48 -> 4), but the widths are base_dim 3 / decoder_base_dim 2. With base_dim 8 / decoder_base_dim 16 the weights alone
are 9.8 MB (3x3x3 kernels; the decoder runs at 64 channels), far over the 600 KB budget for committed fixtures; 3 / 2
gives 359 KB. The channel ratios that decide the AvgDown3D / DupUp3D shortcut semantics (c -> 2c in the two temporal
encoder blocks, 4d -> 2d in decoder up2) are the same as in the real model, and 3-wide stages keep channel counts
that are not powers of two.

Besides writing the files, the script checks (and stops on failure):
  * a float64 rerun of the same model (noise floor of float32),
  * FlashWorld's weight surgery (spec section 3.1): every WanCausalConv3d replaced by a 2D conv with the LAST temporal
    tap only gives the same encoder (and decoder) output for one frame; using tap 0 instead does not,
  * an independent numpy float64 re-implementation of the single-frame encoder and decoder written from the spec's
    formulas (2D convs, AvgDown3D / DupUp3D closed forms, patchify channel = 4c + 2dx + dy), which must match,
  * from_pretrained on the written folder reproduces the outputs bit for bit.
"""

import argparse
import copy
import hashlib
import json
import pathlib
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import diffusers
import safetensors
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders import autoencoder_kl_wan as wan
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "ModelTests" / "Fixtures" / "vae-tiny"
SEED = 22_2025
SIZE_BUDGET = 600_000

# The public Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json, i.e. `vae22_diffusers_config` in diffusers'
# scripts/convert_wan_to_diffusers.py (the 48-value latents_mean/latents_std are in the spec's Appendix A).
WAN22_TI2V_5B_VAE = {
    "_class_name": "AutoencoderKLWan",
    "attn_scales": [],
    "base_dim": 160,
    "clip_output": False,
    "decoder_base_dim": 256,
    "dim_mult": [1, 2, 4, 4],
    "dropout": 0.0,
    "in_channels": 12,
    "is_residual": True,
    "latents_mean": "48 floats (spec Appendix A)",
    "latents_std": "48 floats (spec Appendix A)",
    "num_res_blocks": 2,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "temperal_downsample": [False, True, True],
    "z_dim": 48,
}

Z_DIM = 4
_stats_rng = np.random.default_rng([SEED, 1])
TINY_CONFIG = dict(
    base_dim=3,
    decoder_base_dim=2,
    z_dim=Z_DIM,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
    latents_mean=[round(float(v), 4) for v in _stats_rng.uniform(-0.3, 0.3, Z_DIM)],
    latents_std=[round(float(v), 4) for v in _stats_rng.uniform(0.4, 1.2, Z_DIM)],
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_temporal=4,
    scale_factor_spatial=16,
)

IMAGE_SHAPE = (1, 3, 1, 32, 48)
LATENT_SHAPE = (1, Z_DIM, 1, 2, 3)

SRC = "diffusers/models/autoencoders/autoencoder_kl_wan.py"
VAE_SRC = "diffusers/models/autoencoders/vae.py"


# Captured but not written: each equals a stored tensor (kept within the size budget).
NOT_STORED = {
    "encoder.mid_block.resnets.1": "equals encoder.mid_block (the last layer of the mid block)",
    "decoder.mid_block.resnets.1": "equals decoder.mid_block",
    "decoder.up_blocks.3.resnets.2": "equals decoder.up_blocks.3 (no upsampler, no shortcut in up3)",
    "decoder.conv_out": "equals patchify(outputs.decode_sample_unclamped): unpatchify is the exact inverse of the "
                        "patchify that encoder.input_patchified checks",
}


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def weight_gain(name: str) -> float:
    """Multiplier on 1/sqrt(fan_in) for each weight, chosen so activations stay O(1) through the blocks."""
    if ".conv2." in name:
        return 0.8  # second conv of a residual block feeds the residual sum
    if name.endswith("to_qkv.weight"):
        return 1.5  # sharper attention than uniform weights would give
    return 1.0


def init_weights(vae: nn.Module) -> None:
    for name, p in vae.named_parameters():
        rng = rng_for(name)
        if name.endswith(".gamma"):
            val = rng.uniform(0.5, 1.5, p.shape)  # every RMS-norm gamma differs from 1, per channel
        elif name.endswith(".bias"):
            val = 0.1 * rng.standard_normal(p.shape)
        else:
            # Conv3d (out, in, kt, kh, kw): only one temporal tap meets data for a single frame, so fan_in leaves kt
            # out; all three taps still get random values, so the surgery check below is not vacuous.
            spatial = p.shape[3:] if p.dim() == 5 else p.shape[2:]
            fan_in = p.shape[1] * int(np.prod(spatial))
            val = weight_gain(name) / np.sqrt(fan_in) * rng.standard_normal(p.shape)
        with torch.no_grad():
            p.copy_(torch.from_numpy(val.astype(np.float32)))


def make_inputs():
    x = rng_for("input.image").uniform(-1.0, 1.0, IMAGE_SHAPE).astype(np.float32)
    z = rng_for("input.latent").standard_normal(LATENT_SHAPE).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(z)


# ----------------------------------------------------------------------------------------------------------------------
# Forward hooks
# ----------------------------------------------------------------------------------------------------------------------

def hooked_module_names(vae: AutoencoderKLWan):
    enc, dec = [], []
    enc.append("encoder.conv_in")
    for i, block in enumerate(vae.encoder.down_blocks):
        for j in range(len(block.resnets)):
            enc.append(f"encoder.down_blocks.{i}.resnets.{j}")
        if block.downsampler is not None:
            enc.append(f"encoder.down_blocks.{i}.downsampler")
        enc.append(f"encoder.down_blocks.{i}.avg_shortcut")
        enc.append(f"encoder.down_blocks.{i}")
    enc += ["encoder.mid_block.resnets.0", "encoder.mid_block.attentions.0", "encoder.mid_block.resnets.1",
            "encoder.mid_block", "encoder.norm_out", "encoder.conv_out", "quant_conv"]
    dec += ["post_quant_conv", "decoder.conv_in", "decoder.mid_block.resnets.0", "decoder.mid_block.attentions.0",
            "decoder.mid_block.resnets.1", "decoder.mid_block"]
    for i, block in enumerate(vae.decoder.up_blocks):
        for j in range(len(block.resnets)):
            dec.append(f"decoder.up_blocks.{i}.resnets.{j}")
        if block.upsampler is not None:
            dec.append(f"decoder.up_blocks.{i}.upsampler")
        if block.avg_shortcut is not None:
            dec.append(f"decoder.up_blocks.{i}.avg_shortcut")
        dec.append(f"decoder.up_blocks.{i}")
    dec += ["decoder.norm_out", "decoder.conv_out"]
    return enc, dec


def run_reference(vae: AutoencoderKLWan, x: torch.Tensor, z: torch.Tensor, capture: bool = True):
    """The fixture calls, exactly as a user of diffusers makes them, with forward hooks recording module outputs."""
    captured, calls, handles = {}, {}, []
    modules = dict(vae.named_modules())
    if capture:
        enc_names, dec_names = hooked_module_names(vae)

        def out_hook(name):
            def hook(_module, _args, output):
                assert name not in captured, f"{name} ran twice"
                captured[name] = output.detach().clone()
            return hook

        def encoder_in_hook(_module, args, kwargs):
            captured["encoder.input_patchified"] = args[0].detach().clone()

        handles.append(vae.encoder.register_forward_pre_hook(encoder_in_hook, with_kwargs=True))
        for name in enc_names + dec_names:
            handles.append(modules[name].register_forward_hook(out_hook(name)))
    # Count calls of every temporal-only conv (time_conv): the single-frame path must never run them.
    for name, m in modules.items():
        if name.endswith("time_conv"):
            calls[name] = 0

            def count(_m, _a, _o, name=name):
                calls[name] += 1
            handles.append(m.register_forward_hook(count))

    with torch.no_grad():
        posterior = vae.encode(x).latent_dist          # AutoencoderKLOutput.latent_dist: DiagonalGaussianDistribution
        decoded = vae.decode(z).sample                 # DecoderOutput.sample, clamped to [-1, 1] in diffusers 0.42.1
    for h in handles:
        h.remove()
    outputs = {
        "posterior_params": posterior.parameters.detach().clone(),
        "posterior_mean": posterior.mean.detach().clone(),
        "posterior_logvar": posterior.logvar.detach().clone(),
        "decode_sample": decoded.detach().clone(),
    }
    if capture:
        outputs["encoder_output"] = captured["encoder.conv_out"].clone()
        outputs["decode_sample_unclamped"] = wan.unpatchify(captured["decoder.conv_out"], 2).clone()
        mean_t = torch.tensor(vae.config.latents_mean, dtype=x.dtype).view(1, -1, 1, 1, 1)
        std_t = torch.tensor(vae.config.latents_std, dtype=x.dtype).view(1, -1, 1, 1, 1)
        outputs["posterior_mean_scaled"] = (outputs["posterior_mean"] - mean_t) / std_t
    return outputs, captured, calls


# ----------------------------------------------------------------------------------------------------------------------
# Weight surgery (FlashWorld app.py L154-161, spec section 3.1)
# ----------------------------------------------------------------------------------------------------------------------

class LastTapConv2d(nn.Module):
    """A WanCausalConv3d replaced by a plain 2D conv on the single frame, weight = one temporal tap."""

    def __init__(self, conv: wan.WanCausalConv3d, tap: int):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[:, :, tap].clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())
        self.stride = conv.stride[1:]
        self.pad_hw = (conv._padding[2], conv._padding[0])  # _padding = (pw, pw, ph, ph, 2pt, 0)

    def forward(self, x, cache_x=None):
        assert x.shape[2] == 1, "single-frame path only"
        y = F.conv2d(x[:, :, 0], self.weight, self.bias, stride=self.stride, padding=self.pad_hw)
        return y.unsqueeze(2)


def surgery_2d(vae: AutoencoderKLWan, tap: str) -> AutoencoderKLWan:
    """Copy of vae with every causal conv (except the temporal-only time_conv, never called for one frame) turned 2D.
    tap 'last' keeps weight[:, :, -1] (what FlashWorld does: weight[:, :, time_pad:] with time_pad = 2 for k = 3);
    tap 'first' keeps weight[:, :, 0] (a deliberately wrong choice, to show the check can fail)."""
    model = copy.deepcopy(vae)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, wan.WanCausalConv3d) and child_name != "time_conv":
                k = child.weight.shape[2]
                setattr(module, child_name, LastTapConv2d(child, k - 1 if tap == "last" else 0))
    return model


def surgery_flashworld_inplace(vae: AutoencoderKLWan) -> AutoencoderKLWan:
    """FlashWorld's own form of the surgery, written from the spec: keep the Conv3d, but padding (0, ph, pw), no causal
    padding, weight = weight[:, :, time_pad:] with time_pad = _padding[4]."""
    model = copy.deepcopy(vae)
    for m in model.modules():
        if isinstance(m, wan.WanCausalConv3d):
            time_pad = m._padding[4]
            m.padding = (0, m._padding[2], m._padding[0])
            m._padding = (0, 0, 0, 0, 0, 0)
            m.weight = nn.Parameter(m.weight.detach()[:, :, time_pad:].clone())
    return model


# ----------------------------------------------------------------------------------------------------------------------
# Independent numpy float64 reference, written from the spec's single-frame formulas (not from diffusers' code paths)
# ----------------------------------------------------------------------------------------------------------------------

class NumpyWan22SingleFrame:
    def __init__(self, state: dict, config: dict):
        self.w = {k: v.double().numpy() for k, v in state.items()}
        self.cfg = config

    # primitives on (C, H, W)
    def conv(self, x, name, stride=1, pad=(1, 1, 1, 1)):
        """2D conv; 5D causal weights keep their LAST temporal tap. pad = (top, bottom, left, right)."""
        w = self.w[name + ".weight"]
        if w.ndim == 5:
            w = w[:, :, -1]
        b = self.w[name + ".bias"]
        o, i, kh, kw = w.shape
        xp = np.pad(x, ((0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
        ho = (xp.shape[1] - kh) // stride + 1
        wo = (xp.shape[2] - kw) // stride + 1
        cols = np.stack([xp[:, a:a + stride * (ho - 1) + 1:stride, c:c + stride * (wo - 1) + 1:stride]
                         for a in range(kh) for c in range(kw)], axis=1)  # (i, kh*kw, ho, wo)
        return np.einsum("oik,ikhw->ohw", w.reshape(o, i, kh * kw), cols) + b[:, None, None]

    def rms(self, x, name):
        g = self.w[name + ".gamma"].reshape(-1)
        norm = np.sqrt((x * x).sum(axis=0, keepdims=True))
        return x / np.maximum(norm, 1e-12) * np.sqrt(x.shape[0]) * g[:, None, None]

    @staticmethod
    def silu(x):
        return x / (1.0 + np.exp(-x))

    def resblock(self, x, p):
        h = self.conv(x, p + ".conv_shortcut", pad=(0, 0, 0, 0)) if p + ".conv_shortcut.weight" in self.w else x
        y = self.conv(self.silu(self.rms(x, p + ".norm1")), p + ".conv1")
        y = self.conv(self.silu(self.rms(y, p + ".norm2")), p + ".conv2")
        return y + h

    def attention(self, x, p):
        c, hh, ww = x.shape
        qkv = self.conv(self.rms(x, p + ".norm"), p + ".to_qkv", pad=(0, 0, 0, 0)).reshape(3 * c, hh * ww)
        q, k, v = qkv[:c].T, qkv[c:2 * c].T, qkv[2 * c:].T          # (tokens, C), one head
        s = q @ k.T / np.sqrt(c)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        a = (s / s.sum(axis=1, keepdims=True)) @ v
        return self.conv(a.T.reshape(c, hh, ww), p + ".proj", pad=(0, 0, 0, 0)) + x

    def mid(self, x, p):
        x = self.resblock(x, p + ".resnets.0")
        x = self.attention(x, p + ".attentions.0")
        return self.resblock(x, p + ".resnets.1")

    @staticmethod
    def avg2x2(x):
        c, h, w = x.shape
        return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))

    @staticmethod
    def up2x(x):
        return x.repeat(2, axis=1).repeat(2, axis=2)

    # spec section 7
    def patchify(self, img):  # img (3, H, W) -> (12, H/2, W/2), channel = 4c + 2dx + dy
        c3, h, w = img.shape
        out = np.empty((4 * c3, h // 2, w // 2))
        for c in range(c3):
            for dx in range(2):
                for dy in range(2):
                    out[4 * c + 2 * dx + dy] = img[c, dy::2, dx::2]
        return out

    def unpatchify(self, x):
        c3 = x.shape[0] // 4
        out = np.empty((c3, 2 * x.shape[1], 2 * x.shape[2]))
        for c in range(c3):
            for dx in range(2):
                for dy in range(2):
                    out[c, dy::2, dx::2] = x[4 * c + 2 * dx + dy]
        return out

    def encode(self, img):
        t = {}
        x = self.patchify(img)
        x = self.conv(x, "encoder.conv_in")
        t["encoder.conv_in"] = x
        n = len(self.cfg["dim_mult"])
        for i in range(n):
            p = f"encoder.down_blocks.{i}"
            if i == n - 1:
                short = x                                           # no downsampling: identity
            elif self.cfg["temperal_downsample"][i]:
                a = self.avg2x2(x)                                  # c -> 2c: zero frame prepended
                short = np.zeros((2 * x.shape[0],) + a.shape[1:])
                short[1::2] = a                                     # out[2c] = 0, out[2c+1] = avg2x2(in[c])
            else:
                short = self.avg2x2(x)                              # spatial only
            t[p + ".avg_shortcut"] = short
            for j in range(self.cfg["num_res_blocks"]):
                x = self.resblock(x, f"{p}.resnets.{j}")
            if i != n - 1:
                x = self.conv(x, p + ".downsampler.resample.1", stride=2, pad=(0, 1, 0, 1))  # ZeroPad2d(0,1,0,1)
            x = x + short
            t[p] = x
        x = self.mid(x, "encoder.mid_block")
        t["encoder.mid_block"] = x
        x = self.conv(self.silu(self.rms(x, "encoder.norm_out")), "encoder.conv_out")
        t["encoder.conv_out"] = x
        h = self.conv(x, "quant_conv", pad=(0, 0, 0, 0))
        z = self.cfg["z_dim"]
        return h, h[:z], np.clip(h[z:], -30.0, 20.0), t

    # spec section 8.1 (with the VAE's own post_quant_conv / conv_out / unpatchify / clamp around it)
    def decode(self, z):
        t = {}
        x = self.conv(z, "post_quant_conv", pad=(0, 0, 0, 0))
        x = self.conv(x, "decoder.conv_in")
        t["decoder.conv_in"] = x
        x = self.mid(x, "decoder.mid_block")
        t["decoder.mid_block"] = x
        n = len(self.cfg["dim_mult"])
        t_up = self.cfg["temperal_downsample"][::-1]
        for i in range(n):
            p = f"decoder.up_blocks.{i}"
            inp = x
            for j in range(self.cfg["num_res_blocks"] + 1):
                x = self.resblock(x, f"{p}.resnets.{j}")
            if i != n - 1:
                x = self.conv(self.up2x(x), p + ".upsampler.resample.1")      # nearest x2, then 3x3 conv
                if t_up[i]:
                    short = self.up2x(inp)                                    # DupUp3D first chunk: nearest copy
                else:
                    co = x.shape[0]                                           # out[o, 2y+sy, 2x+sx] = in[2o+sy, y, x]
                    short = np.empty((co, 2 * inp.shape[1], 2 * inp.shape[2]))
                    for o in range(co):
                        for sy in range(2):
                            short[o, sy::2, :] = inp[2 * o + sy].repeat(2, axis=1)
                t[p + ".avg_shortcut"] = short
                x = x + short
            t[p] = x
        x = self.conv(self.silu(self.rms(x, "decoder.norm_out")), "decoder.conv_out")
        t["decoder.conv_out"] = x
        img = self.unpatchify(x)
        return np.clip(img, -1.0, 1.0), img, t


# ----------------------------------------------------------------------------------------------------------------------

def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|, both widened to float64 (the metric of Tests/ModelTests/ModelParityTests.swift)."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def max_abs(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


def t5(t: torch.Tensor) -> torch.Tensor:
    """(C,H,W) numpy -> (1,C,1,H,W) torch."""
    return torch.from_numpy(np.ascontiguousarray(t))[None, :, None]


def build_model() -> AutoencoderKLWan:
    torch.manual_seed(SEED)
    vae = AutoencoderKLWan(**TINY_CONFIG)
    init_weights(vae)
    return vae.eval()


def describe_intermediate(name: str, shape) -> str:
    base = {
        "encoder.input_patchified": "encoder input after patchify (the pre-hook on WanEncoder3d): x [1,3,1,32,48] -> "
                                    "[1,12,1,16,24], channel = 4c + 2dx + dy",
        "encoder.conv_in": "encoder conv_in output (3x3x3 causal conv, zero history)",
        "encoder.mid_block": "encoder mid block output (resnet, attention, resnet)",
        "encoder.norm_out": "encoder norm_out output (RMS norm, before SiLU)",
        "encoder.conv_out": "encoder conv_out output = quant_conv input = encoder output",
        "quant_conv": "quant_conv output = posterior parameters [mean | logvar] before the logvar clamp",
        "post_quant_conv": "post_quant_conv output (1x1x1) = decoder input",
        "decoder.conv_in": "decoder conv_in output",
        "decoder.mid_block": "decoder mid block output",
        "decoder.norm_out": "decoder norm_out output (RMS norm, before SiLU)",
        "decoder.conv_out": "decoder conv_out output, before unpatchify and clamp",
    }
    if name in base:
        return base[name]
    parts = name.split(".")
    if name.endswith("avg_shortcut"):
        kind = "AvgDown3D" if parts[0] == "encoder" else "DupUp3D (first_chunk=True)"
        return f"{kind} shortcut of {'.'.join(parts[:3])} applied to the block input"
    if name.endswith("downsampler"):
        return "downsampler (WanResample: ZeroPad2d(0,1,0,1) + 3x3 stride-2 Conv2d; time_conv not run)"
    if name.endswith("upsampler"):
        return "upsampler (WanResample: nearest-exact x2 + 3x3 Conv2d; time_conv not run, cache set to 'Rep')"
    if "resnets" in parts:
        return f"output of residual block {parts[-1]} of {'.'.join(parts[:-2])}"
    if "attentions" in parts:
        return "single-head spatial self-attention block output (includes its residual)"
    if parts[1] in ("down_blocks", "up_blocks") and len(parts) == 3:
        return "block output = main path + shortcut"
    return name


def generate():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vae = build_model()
    x, z = make_inputs()
    outputs, captured, time_conv_calls = run_reference(vae, x, z)
    assert all(v == 0 for v in time_conv_calls.values()), time_conv_calls

    checks = {}

    # patchify channel order and unpatchify inverse (diffusers functions)
    px = wan.patchify(x, 2)
    for c in range(3):
        for dx in range(2):
            for dy in range(2):
                assert torch.equal(px[0, 4 * c + 2 * dx + dy, 0], x[0, c, 0, dy::2, dx::2])
    assert torch.equal(wan.unpatchify(px, 2), x)
    assert torch.equal(px, captured["encoder.input_patchified"])

    # float64 rerun of the same weights and inputs: float32 noise floor
    vae64 = copy.deepcopy(vae).double()
    out64, cap64, _ = run_reference(vae64, x.double(), z.double())
    noise = {k: rel_err(outputs[k], out64[k]) for k in outputs}
    noise_inter = {k: rel_err(captured[k], cap64[k]) for k in captured}
    checks["float64_rerun"] = {
        "what": "the same model converted with .double() and run on the float64 inputs; "
                "max |f32 - f64| / max |f64| per tensor",
        "outputs": noise,
        "intermediates_max": max(noise_inter.values()),
        "intermediates_worst": max(noise_inter, key=noise_inter.get),
    }

    # weight surgery
    surgery = {}
    for label, model in (("2d_last_tap", surgery_2d(vae, "last")),
                         ("flashworld_inplace", surgery_flashworld_inplace(vae)),
                         ("2d_first_tap_WRONG", surgery_2d(vae, "first"))):
        o, _, _ = run_reference(model, x, z, capture=False)
        surgery[label] = {k: {"max_abs": max_abs(o[k], outputs[k]), "rel": rel_err(o[k], outputs[k])}
                          for k in ("posterior_params", "posterior_mean", "posterior_logvar", "decode_sample")}
    # float64 version of the 2D surgery, against the float64 reference: isolates the claim from float32 rounding
    o, _, _ = run_reference(surgery_2d(vae64, "last"), x.double(), z.double(), capture=False)
    surgery["2d_last_tap_float64"] = {k: {"max_abs": max_abs(o[k], out64[k]), "rel": rel_err(o[k], out64[k])}
                                      for k in ("posterior_params", "decode_sample")}
    assert max(v["rel"] for v in surgery["2d_last_tap"].values()) < 1e-5
    assert max(v["rel"] for v in surgery["flashworld_inplace"].values()) < 1e-5
    assert surgery["2d_last_tap_float64"]["posterior_params"]["rel"] < 1e-12
    assert surgery["2d_last_tap_float64"]["decode_sample"]["rel"] < 1e-6
    assert surgery["2d_first_tap_WRONG"]["posterior_params"]["rel"] > 1e-2
    checks["weight_surgery"] = surgery

    # independent numpy reference from the spec's formulas
    ref = NumpyWan22SingleFrame(vae.state_dict(), TINY_CONFIG)
    h, mean, logvar, t_enc = ref.encode(x[0, :, 0].double().numpy())
    dec, dec_raw, t_dec = ref.decode(z[0, :, 0].double().numpy())
    np_cmp = {
        "posterior_params": rel_err(outputs["posterior_params"], t5(h)),
        "posterior_mean": rel_err(outputs["posterior_mean"], t5(mean)),
        "posterior_logvar": rel_err(outputs["posterior_logvar"], t5(logvar)),
        "decode_sample": rel_err(outputs["decode_sample"], t5(dec)),
        "decode_sample_unclamped": rel_err(outputs["decode_sample_unclamped"], t5(dec_raw)),
    }
    np_inter = {k: rel_err(captured[k], t5(v)) for k, v in {**t_enc, **t_dec}.items()}
    np_f64 = {k: rel_err(out64[k], t5(v)) for k, v in
              (("posterior_params", h), ("decode_sample_unclamped", dec_raw))}
    assert max(np_cmp.values()) < 1e-5 and max(np_inter.values()) < 1e-5, (np_cmp, np_inter)
    # WanUpsample casts to float32 (autoencoder_kl_wan.py:224-225), so the float64 decoder is not pure float64
    assert np_f64["posterior_params"] < 1e-12 and np_f64["decode_sample_unclamped"] < 1e-6, np_f64
    checks["numpy_spec_reference"] = {
        "what": "independent numpy float64 single-frame implementation from the spec formulas (2D convs with the last "
                "tap, AvgDown3D/DupUp3D closed forms, patchify 4c+2dx+dy); rel error of the diffusers float32 tensors "
                "against it, and of the diffusers float64 run",
        "float32_outputs": np_cmp,
        "float32_intermediates_max": max(np_inter.values()),
        "float32_intermediates_checked": len(np_inter),
        "float64_outputs": np_f64,
        "float64_note": "the diffusers 'float64' decoder still rounds to float32 inside WanUpsample "
                        "(autoencoder_kl_wan.py:224-225: super().forward(x.float()).type_as(x)), hence ~1e-7 there",
    }

    clamp_frac = float((outputs["decode_sample_unclamped"].abs() > 1).double().mean())
    logvar_raw = outputs["posterior_params"][:, Z_DIM:]
    checks["value_ranges"] = {
        "decode_unclamped_min_max": [float(outputs["decode_sample_unclamped"].min()),
                                     float(outputs["decode_sample_unclamped"].max())],
        "decode_fraction_clamped": clamp_frac,
        "logvar_min_max_before_clamp": [float(logvar_raw.min()), float(logvar_raw.max())],
        "intermediate_rms": {k: round(float(v.double().pow(2).mean().sqrt()), 3) for k, v in captured.items()
                             if k not in NOT_STORED},
    }
    assert 0.01 < clamp_frac < 0.5, clamp_frac  # decode's clamp must matter, without flattening everything
    return vae, x, z, outputs, captured, checks


def write(vae, x, z, outputs, captured, checks, out_dir: pathlib.Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        f.unlink()
    vae.save_pretrained(out_dir, safe_serialization=True)
    cfg_path = out_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["clip_output"] = False  # as in the public Wan2.2 config; diffusers 0.42.1 drops it (see notes)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    def c(t):
        return t.detach().to(torch.float32).contiguous()

    save_file({"image": c(x), "latent": c(z)}, out_dir / "inputs.safetensors")
    save_file({k: c(v) for k, v in outputs.items()}, out_dir / "outputs.safetensors")
    save_file({k: c(v) for k, v in captured.items() if k not in NOT_STORED}, out_dir / "intermediates.safetensors")

    # from_pretrained must give the same numbers, bit for bit
    reloaded = AutoencoderKLWan.from_pretrained(out_dir).eval()
    assert reloaded.dtype == torch.float32
    o2, c2, _ = run_reference(reloaded, x, z)
    for k in outputs:
        assert torch.equal(o2[k], outputs[k]), k
    for k in captured:
        assert torch.equal(c2[k], captured[k]), k

    for f in out_dir.iterdir():
        f.chmod(0o644)
    manifest = build_manifest(vae, outputs, captured, checks, out_dir)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out_dir / "manifest.json").chmod(0o644)
    total = sum(f.stat().st_size for f in out_dir.iterdir())
    assert total < SIZE_BUDGET, total
    return total


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(vae, outputs, captured, checks, out_dir):
    enc_names, dec_names = hooked_module_names(vae)
    inter = {}
    for name in ["encoder.input_patchified"] + enc_names + dec_names:
        if name in NOT_STORED:
            continue
        t = captured[name]
        inter[name] = {"shape": list(t.shape), "meaning": describe_intermediate(name, t.shape)}
        if name.endswith(("downsampler", "upsampler")):
            inter[name]["time_dim"] = f"internally [B*T,C,H,W] = [1,C,H,W] through nn.Conv2d ({SRC}:300-303)"
        if name.endswith("attentions.0"):
            inter[name]["time_dim"] = f"internally [B*T,C,H,W] = [1,C,H,W] ({SRC}:412-433)"

    tensor_meaning = {
        "image": "input image, one frame, uniform in [-1,1]",
        "latent": "latent fed to vae.decode (standard normal; NOT un-normalised by latents_mean/std)",
        "posterior_params": "vae.encode(image).latent_dist.parameters = quant_conv output [mean | logvar] (no clamp)",
        "posterior_mean": "vae.encode(image).latent_dist.mean (first z_dim channels)",
        "posterior_logvar": "vae.encode(image).latent_dist.logvar (last z_dim channels, clamped to [-30, 20]; "
                            "the clamp is a no-op on these values)",
        "encoder_output": "encoder output = quant_conv input (hook on encoder.conv_out)",
        "posterior_mean_scaled": "(posterior_mean - latents_mean) / latents_std with the config's stats "
                                 "(FlashWorld's latent_scale_fn)",
        "decode_sample": "vae.decode(latent).sample in diffusers 0.42.1: post_quant_conv, decoder (first_chunk=True), "
                         "unpatchify, clamp to [-1,1]",
        "decode_sample_unclamped": "the same without the clamp = unpatchify(decoder.conv_out output): what "
                                   "clip_output=false gives in FlashWorld's vendored class",
    }
    with safetensors.safe_open(str(out_dir / "inputs.safetensors"), "pt") as f:
        input_shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}

    files = {}
    for f in sorted(out_dir.iterdir()):
        if f.name != "manifest.json":
            files[f.name] = {"bytes": f.stat().st_size, "sha256": sha256(f)}

    return {
        "generator": "tools/models/make_vae_fixtures.py",
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "seed": SEED,
        "dtype": "float32 everywhere (weights, inputs, outputs, intermediates); layouts are PyTorch's, C order",
        "files": files,
        "config": {
            "tiny": {k: v for k, v in TINY_CONFIG.items()},
            "tiny_written_to_config_json_extra": {"clip_output": False},
            "wan2.2_ti2v_5b_reference": WAN22_TI2V_5B_VAE,
            "differences_from_wan2.2": {
                "base_dim": "160 -> 3", "decoder_base_dim": "256 -> 2", "z_dim": "48 -> 4",
                "latents_mean/latents_std": "random, fixed, length z_dim",
                "why": "budget: base_dim 8 / decoder_base_dim 16 would be 9.8 MB of float32 weights (3x3x3 kernels, "
                       "decoder at 64 channels); every flag and every channel ratio is kept",
            },
            "derived": {
                "encoder_dims": [3, 3, 6, 12, 12],
                "encoder_blocks": [
                    "down0 3->3, spatial downsample (downsample2d), AvgDown3D factor_t 1 factor_s 2",
                    "down1 3->6, downsample3d, AvgDown3D factor_t 2 factor_s 2",
                    "down2 6->12, downsample3d, AvgDown3D factor_t 2 factor_s 2",
                    "down3 12->12, no downsample, AvgDown3D factor 1 (identity)"],
                "decoder_dims": [8, 8, 8, 4, 2],
                "decoder_blocks": [
                    "up0 8->8, upsample3d, DupUp3D factor_t 2 factor_s 2 (repeats 8)",
                    "up1 8->8, upsample3d, DupUp3D factor_t 2 factor_s 2 (repeats 8)",
                    "up2 8->4, upsample2d, DupUp3D factor_t 1 factor_s 2 (repeats 2)",
                    "up3 4->2, no upsample, no shortcut"],
                "residual_blocks_per_stage": "encoder num_res_blocks = 2, decoder num_res_blocks + 1 = 3",
                "spatial": "image 32x48 -> patchified 16x24 -> 8x12 -> 4x6 -> 2x3 (latent); decoder the reverse",
            },
            "weights": "numpy PCG64 seeded [seed, crc32(param name)]; conv weights N(0, gain^2/fan_in) with fan_in = "
                       "in * kh * kw (temporal taps excluded, all 3 taps random), gain 0.8 for resnet conv2, 1.5 for "
                       "attention to_qkv, else 1; biases N(0, 0.1^2); every RMS-norm gamma U(0.5, 1.5)",
        },
        "calls": [
            "vae = AutoencoderKLWan.from_pretrained('vae-tiny').eval()   # float32, CPU, torch.set_num_threads(1)",
            "posterior = vae.encode(image).latent_dist",
            "posterior_params, posterior_mean, posterior_logvar = posterior.parameters, posterior.mean, "
            "posterior.logvar   # before any sampling",
            "decode_sample = vae.decode(latent).sample",
            "intermediates: register_forward_hook on the named modules (register_forward_pre_hook on vae.encoder "
            "for encoder.input_patchified), during those two calls",
        ],
        "inputs": {k: {"shape": s, "meaning": tensor_meaning[k]} for k, s in input_shapes.items()},
        "outputs": {k: {"shape": list(v.shape), "meaning": tensor_meaning[k]} for k, v in outputs.items()},
        "intermediates_time_dim": "every intermediate is [B,C,T,H,W] with T = 1: all modules run on the first "
                                  "chunk with zero causal history; entries with a time_dim note fold T into the batch "
                                  "inside the module and run 2D layers",
        "intermediates": inter,
        "intermediates_not_stored": NOT_STORED,
        "tolerance": {
            "metric": "max |got - expected| / max |expected| per tensor, both widened to float64 (relativeError in "
                      "Tests/ModelTests/ModelParityTests.swift)",
            "value": 1e-4,
            "why": "float32 parity target; the measured float32-vs-float64 floor is in checks.float64_rerun and the "
                   "independent numpy float64 reference sits at the same level (checks.numpy_spec_reference), so 1e-4 "
                   "leaves two orders of magnitude for a different summation order. decode_sample compares clamped "
                   "values: use the same metric (clamped elements match exactly when both sides clamp).",
            "intermediates": "same metric and value for every intermediate; compare them in network order and "
                             "report the first that fails. The largest float32 floor is decoder.norm_out (~1e-5): "
                             "with 2 channels the RMS norm divides by a per-pixel norm as small as 0.18 (median "
                             "2.9), amplifying absolute errors where both channels are near zero.",
        },
        "checks": checks,
        "notes": notes(),
    }


def notes():
    return {
        "patchify": f"{SRC}:921-941. x.view(B,C,F,H/2,2(q=row offset dy),W/2,2(r=column offset dx)).permute(0,1,6,4,2,3,5)"
                    " -> channel = 4c + 2*dx + dy (the column offset is the MORE significant bit). unpatchify "
                    f"({SRC}:944-961) is the exact inverse. Checked in the script on the input.",
        "single_frame_encode": f"_encode ({SRC}:1137-1162) calls clear_cache(), patchifies, and runs the encoder on "
                               "x[:, :, :1] with feat_cache = a list of None (iter_ = 1 + (T-1)//4 = 1, L1147). Every "
                               "WanCausalConv3d sees cache_x = None, so its causal padding (0,0 after, 2*p_t = 2 before "
                               f"for k=3, _padding at L167) prepends 2 ZERO frames ({SRC}:170-177): output = last "
                               "temporal tap applied to the frame. The resblocks store their cache (L358-366) but it is "
                               "never read. FlashWorld's vendored copy passes feat_cache=None instead for one frame: "
                               "same numbers.",
        "causal_conv_surgery": "For T=1 with zero history, WanCausalConv3d(k=3,p=1) == Conv2d(k=3,p=1) with "
                               "weight[:, :, 2] (the last tap); k=1 convs (conv_shortcut, quant_conv, post_quant_conv)"
                               " keep their single tap. Checked numerically, see checks.weight_surgery.",
        "time_conv": f"downsample3d ({SRC}:305-310): on the first chunk feat_cache[idx] is None, so the downsampled "
                     "frame is stored and time_conv is NOT applied. upsample3d (L275-280): first call sets the cache "
                     "to 'Rep' and skips time_conv, so T stays 1. The script counts 0 calls of every time_conv. "
                     "downsample time_conv has padding 0 (_padding[4] = 0, untouched by the surgery); upsample "
                     "time_conv has padding (1,0,0), so FlashWorld's loop would trim it too, but the recon decoder "
                     "deletes it (spec 8.1).",
        "downsample": f"WanResample downsample2d/3d ({SRC}:264-267, 300-303): T folded into batch, ZeroPad2d((0,1,0,1))"
                      " (one zero column on the RIGHT and one zero row at the BOTTOM), then Conv2d 3x3 stride 2 "
                      "padding 0: H,W even -> H/2,W/2.",
        "avgdown3d": f"AvgDown3D ({SRC}:34-88), pad_t = (f_t - T % f_t) % f_t zero frames PREPENDED (L57-59), then "
                     "channel index c*f + ft*f_s^2 + sy*f_s + sx grouped into out_channels groups of group_size and "
                     "averaged. One frame: down0 (3->3, f_t 1, f_s 2) = 2x2 average pool; down1 (3->6) and down2 "
                     "(6->12) (f_t 2, f_s 2, group 4): out[2c] = 0 (the padded zero frame), out[2c+1] = 2x2 average of "
                     "in[c]; down3 (12->12, factor 1) = identity. FlashWorld's vendored single-frame branch gives the "
                     "same for these ratios (its special branch is only taken for f_t = 1 here).",
        "down_block": f"WanResidualDownBlock ({SRC}:477-510): out = downsampler(resnet1(resnet0(x))) + AvgDown3D(x); the "
                      "shortcut uses the block INPUT (x_copy, L504). Blocks 0-2 downsample, block 3 does not (L568-569:"
                      " the last block gets temperal_downsample False and down_flag False). attn_scales is ignored on "
                      "the is_residual path: no attention inside down blocks.",
        "resblock": f"WanResidualBlock ({SRC}:319-390): h = conv_shortcut(x) (1x1x1 causal conv if in != out, else "
                    "identity); y = conv1(SiLU(RMS1(x))); y = conv2(SiLU(RMS2(y))) (dropout 0); return y + h. The "
                    "shortcut uses the un-normalised input.",
        "rms_norm": f"WanRMS_norm ({SRC}:180-210): F.normalize(x, dim=1) = x / max(||x||_2 over channels, 1e-12), "
                    "times sqrt(C), times gamma; bias=False everywhere so the bias is the float 0.0 (no parameter). "
                    "The eps is F.normalize's 1e-12 on the NORM (not on the mean square, and not added). gamma is "
                    "(C,1,1,1) for resblocks/norm_out (images=False) and (C,1,1) in attention (images=True). fp16/bf16 "
                    "inputs are normalised in float32 (L203-208); float32 here.",
        "attention": f"WanAttentionBlock ({SRC}:393-435): x -> [B*T,C,H,W], RMS norm (images=True), to_qkv Conv2d 1x1 "
                     "C->3C, reshape [BT,1,3C,HW] -> permute [BT,1,HW,3C] -> chunk(3, dim=-1): q = channels [0,C), "
                     "k = [C,2C), v = [2C,3C); ONE head of width C; F.scaled_dot_product_attention with the default "
                     "scale 1/sqrt(C), no mask; back to [BT,C,H,W], proj Conv2d 1x1, + identity (the un-normalised "
                     "input).",
        "mid_block": f"WanMidBlock ({SRC}:438-474), num_layers 1: resnet0, attention, resnet1, same width.",
        "encoder_head": f"{SRC}:617-632: norm_out (RMS) -> SiLU -> conv_out 3x3x3 causal (C -> 2*z_dim, L1045 "
                        "passes z_dim*2), then quant_conv 1x1x1 (2z -> 2z) in _encode (L1160).",
        "posterior": f"DiagonalGaussianDistribution ({VAE_SRC}:690-697): mean, logvar = chunk(params, 2, dim=1); logvar "
                     "= clamp(logvar, -30, 20); std = exp(0.5*logvar). mode() returns mean. The fixture's raw logvar "
                     "lies well inside the clamp range (checks.value_ranges), so the clamp is not exercised here.",
        "decode": f"_decode ({SRC}:1191-1220): post_quant_conv on all frames, then the decoder per latent frame; frame 0 "
                  "runs with first_chunk=True (L1203-1206). Output is unpatchified and then ALWAYS clamped to [-1, 1] "
                  "(L1214) in diffusers 0.42.1: AutoencoderKLWan.__init__ has no clip_output argument, and the public "
                  "Wan2.2 config's \"clip_output\": false is dropped by ConfigMixin (only __init__'s "
                  "keys are passed on, configuration_utils.py:545-558; the rest is warned about and ignored, 560-566). FlashWorld's vendored class (pinned diffusers 447e8322 lineage) takes "
                  "clip_output and, with the Wan2.2 config, does NOT clamp: hence decode_sample (clamped) and "
                  "decode_sample_unclamped. config.json carries \"clip_output\": false like the real one.",
        "decoder_trunk": f"WanDecoder3d ({SRC}:792-918): dims = decoder_base_dim * [m[-1]] + m[::-1] (L831); with "
                         "is_residual the in_dim is NOT halved (L843). conv_in (z -> 4d), mid block, 4 "
                         "WanResidualUpBlocks, norm_out, SiLU, conv_out (d -> 12).",
        "up_block": f"WanResidualUpBlock ({SRC}:635-720): x_copy = x; num_res_blocks+1 = 3 resnets (first one in->out); "
                    "upsampler (WanResample upsample2d/3d with upsample_out_dim = out_dim: nearest-exact x2 in float32, "
                    "which for an exact factor 2 is plain pixel replication, then Conv2d 3x3 p1 out->out); then "
                    "+ DupUp3D(x_copy, first_chunk) if the block upsamples. up3 has neither.",
        "dupup3d": f"DupUp3D ({SRC}:91-132): repeat_interleave(repeats = out*f/in, dim=1), view as "
                   "(out, f_t, f_s, f_s, T, H, W), interleave into (out, T*f_t, H*f_s, W*f_s); first_chunk drops the "
                   "first f_t - 1 frames (L130-131). One frame: up0/up1 (8->8, f_t 2, repeats 8): nearest x2 copy of "
                   "the same channel (the kept frame is ft = 1, identical to ft = 0); up2 (8->4, f_t 1, repeats 2): "
                   "out[o, 2y+sy, 2x+sx] = in[2o+sy, y, x] (the ROW offset picks the input channel, the column offset "
                   "does not matter).",
        "silu": "get_activation('silu') = torch.nn.SiLU: x * sigmoid(x).",
        "dropout": "0.0, and eval(): identity.",
        "latents_mean_std": "Used by pipelines (and FlashWorld's latent_scale_fn), never inside encode/decode. The "
                            "fixture's latent input to decode is used as is.",
        "tiling_slicing": "use_tiling and use_slicing are False; 32x48 is below the 256 tile minimum anyway.",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary folder and compare bytes with --out instead of writing it")
    args = ap.parse_args()
    vae, x, z, outputs, captured, checks = generate()
    if args.check:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp) / "vae-tiny"
            write(vae, x, z, outputs, captured, checks, tmp)
            bad = [f.name for f in sorted(tmp.iterdir())
                   if not (args.out / f.name).exists() or (args.out / f.name).read_bytes() != f.read_bytes()]
            print("identical" if not bad else f"DIFFERENT: {bad}")
            raise SystemExit(1 if bad else 0)
    total = write(vae, x, z, outputs, captured, checks, args.out)
    print(f"wrote {args.out} ({total} bytes)")
    print("float64 noise floor:", json.dumps(checks["float64_rerun"]["outputs"], indent=1))
    print("surgery:", json.dumps(checks["weight_surgery"], indent=1))
    print("numpy reference:", json.dumps(checks["numpy_spec_reference"]["float32_outputs"], indent=1),
          "intermediates max", checks["numpy_spec_reference"]["float32_intermediates_max"])
    vr = checks["value_ranges"]
    print("decode clamped fraction", vr["decode_fraction_clamped"], "logvar", vr["logvar_min_max_before_clamp"])
    for k, v in vr["intermediate_rms"].items():
        print(f"  rms {k:45s} {v:.3f}")


if __name__ == "__main__":
    main()
