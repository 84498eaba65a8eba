#!/usr/bin/env python3
"""TeaCache and LoRA merging against VideoX-Fun's own code (aigc-apps/VideoX-Fun), on the tiny video model.

VideoX-Fun runs Wan in the original Wan module layout (`blocks.N.self_attn.q`, `head.head`, ...), so the tiny
transformer of Fixtures/video-tiny/model (diffusers' layout) is loaded into VideoX-Fun's `Wan2_2Transformer3DModel`
under the original names; both implementations' outputs are checked equal first. Then:

    video-tiny/teacache_videoxfun.safetensors
        VideoX-Fun's TeaCache (Wan2.2's coefficients) over a 10-step flow-match Euler run with guidance, its transformer
        called as its Wan2.2 pipeline's [uncond, cond] batch reaches it through `cfg_skip` (the conditional half,
        then the unconditional one; per-token timesteps): every step's input latents and timestep, the conditional
        and unconditional predictions, and whether the blocks ran for each (`computed`, `uncond_computed`), with the
        threshold and start steps as tensors. The threshold is picked
        from the run's own distances so that both decisions occur.
    video-tiny/lora/merged_videoxfun.safetensors
        `videox_fun.utils.lora_utils.merge_lora` at multiplier 0.75 of lora/kohya.safetensors (alpha 4, rank 2) and
        lora/wan.safetensors (no alpha), the merged weights renamed to diffusers' layout (kohya.*, wan.*).

Needs the VideoX-Fun sources (read, never committed; only its model and LoRA files are imported, its package
__init__ files are bypassed), torch, diffusers, safetensors and einops. Run from the repository root:

    git clone https://github.com/aigc-apps/VideoX-Fun /tmp/vxf
    /tmp/gsvenv/bin/pip install einops
    /tmp/gsvenv/bin/python tools/models/make_videoxfun_fixtures.py /tmp/vxf
"""

import importlib
import pathlib
import sys
import types

import numpy as np
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = ROOT / "Tests" / "ModelTests" / "Fixtures" / "video-tiny"
STEPS, GUIDANCE, START_STEPS = 10, 5.0, 2
LATENT = (1, 4, 3, 4, 8)  # [b, c, f, h, w]: 3 latent frames of 2x4 tokens
TEXT_LEN, TEXT_DIM = 512, 32


def import_videoxfun(root):
    """VideoX-Fun's transformer and LoRA merge without its package __init__ files (which import every model)."""
    def package(name, path):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
        return module
    package("videox_fun", f"{root}/videox_fun")
    package("videox_fun.models", f"{root}/videox_fun/models")
    utils = package("videox_fun.utils", f"{root}/videox_fun/utils")
    dist = package("videox_fun.dist", f"{root}/videox_fun/dist")
    # One process: the sequence-parallel helpers the transformer imports are not used.
    dist.get_sequence_parallel_rank = lambda: 0
    dist.get_sequence_parallel_world_size = lambda: 1
    dist.get_sp_group = lambda: None
    dist.usp_attn_forward = None
    dist.xFuserLongContextAttention = None
    utils.cfg_skip = importlib.import_module("videox_fun.utils.cfg_optimization").cfg_skip
    transformer = importlib.import_module("videox_fun.models.wan_transformer3d")
    cache = importlib.import_module("videox_fun.models.cache_utils")
    lora = importlib.import_module("videox_fun.utils.lora_utils")
    return transformer.Wan2_2Transformer3DModel, cache, lora.merge_lora


# diffusers' names -> the original Wan names VideoX-Fun uses (the inverse of diffusers' conversion script).
RENAMES = [
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("proj_out", "head.head"),
    ("attn1.to_q", "self_attn.q"), ("attn1.to_k", "self_attn.k"), ("attn1.to_v", "self_attn.v"), ("attn1.to_out.0", "self_attn.o"),
    ("attn1.norm_q", "self_attn.norm_q"), ("attn1.norm_k", "self_attn.norm_k"),
    ("attn2.to_q", "cross_attn.q"), ("attn2.to_k", "cross_attn.k"), ("attn2.to_v", "cross_attn.v"), ("attn2.to_out.0", "cross_attn.o"),
    ("attn2.norm_q", "cross_attn.norm_q"), ("attn2.norm_k", "cross_attn.norm_k"),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
    # diffusers' norm2 is the cross-attention norm (Wan's norm3).
    ("norm2", "norm3"),
]


def wan_name(name):
    if name == "scale_shift_table":
        return "head.modulation"
    if name.endswith(".scale_shift_table"):
        return name.replace(".scale_shift_table", ".modulation")
    for theirs, ours in RENAMES:
        if f".{theirs}." in f".{name}":
            return name.replace(theirs, ours, 1)
    return name


def main():
    torch.manual_seed(0)
    Model, cache_utils, merge_lora = import_videoxfun(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vxf")
    reference = WanTransformer3DModel.from_pretrained(TINY / "model" / "transformer").float().eval()
    c = reference.config
    model = Model(
        model_type="ti2v", patch_size=tuple(c.patch_size), text_len=TEXT_LEN, in_dim=c.in_channels,
        dim=c.num_attention_heads * c.attention_head_dim, ffn_dim=c.ffn_dim, freq_dim=c.freq_dim, text_dim=c.text_dim,
        out_dim=c.out_channels, num_heads=c.num_attention_heads, num_layers=c.num_layers, qk_norm=True, cross_attn_norm=True,
        eps=c.eps).float().eval()
    state = {wan_name(k): v for k, v in reference.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("freqs" in m for m in missing), (missing, unexpected)

    rng = np.random.Generator(np.random.PCG64(20261207))
    latents = torch.from_numpy(rng.standard_normal(LATENT).astype(np.float32))
    texts = torch.from_numpy(rng.standard_normal((2, TEXT_LEN, TEXT_DIM)).astype(np.float32))  # [uncond, cond]
    f, h, w = LATENT[2], LATENT[3] // c.patch_size[1], LATENT[4] // c.patch_size[2]
    seq_len = f * h * w

    def videoxfun(x, t):
        # As VideoX-Fun's `cfg_skip` wrapper runs its pipeline's [uncond, cond] batch: the conditional half first, then
        # the unconditional one, each with the timestep per token; the model's flag says whether the blocks ran.
        timestep = torch.full((1, seq_len), float(t))
        cond = model(x=x, t=timestep, context=[texts[1]], seq_len=seq_len, cond_flag=True)
        cond_ran = getattr(model, "should_calc", True)
        uncond = model(x=x, t=timestep, context=[texts[0]], seq_len=seq_len, cond_flag=False)
        return uncond, cond, cond_ran, getattr(model, "should_calc", True)

    with torch.no_grad():
        # The two implementations agree before TeaCache is involved.
        mine_uncond, mine_cond, _, _ = videoxfun(latents, 700.0)
        theirs = reference(latents.expand(2, *LATENT[1:]), timestep=torch.full((2, seq_len), 700.0), encoder_hidden_states=texts,
                           return_dict=False)[0]
        gap = max((mine_uncond - theirs[0:1]).abs().max().item(), (mine_cond - theirs[1:2]).abs().max().item())
        print(f"VideoX-Fun vs diffusers transformer: max |difference| {gap:.2e}")
        assert gap < 1e-4

        sigmas = torch.linspace(1.0, 0.0, STEPS + 1)
        sigmas = 5.0 * sigmas / (1 + 4.0 * sigmas)  # flow shift 5
        timesteps = sigmas[:-1] * 1000

        # The run's own distances, to pick a threshold at which both decisions occur.
        distances, previous = [], None
        for t in timesteps:
            tt = torch.full((1, seq_len), float(t))
            e = model.time_embedding(importlib.import_module("videox_fun.models.wan_transformer3d").sinusoidal_embedding_1d(
                model.freq_dim, tt.flatten()).unflatten(0, (1, seq_len)).float())
            modulated = model.time_projection(e).unflatten(2, (6, model.dim))[:, -1, :]
            if previous is not None:
                distances.append(float(np.poly1d(cache_utils.get_teacache_coefficients("wan2.2-ti2v-5b"))(
                    cache_utils.TeaCache.compute_rel_l1_distance(previous, modulated))))
            previous = modulated
        steady = sorted(distances[START_STEPS - 1:])
        threshold = 1.6 * steady[len(steady) // 2]
        print("rescaled distances", [round(d, 4) for d in distances], "threshold", round(threshold, 4))

        model.enable_teacache(cache_utils.get_teacache_coefficients("wan2.2-ti2v-5b"), STEPS, threshold,
                              num_skip_start_steps=START_STEPS, offload=False)
        record = {"latents": [], "cond": [], "uncond": []}
        computed, uncond_computed = [], []
        x = latents
        for k, t in enumerate(timesteps):
            uncond, cond, cond_ran, uncond_ran = videoxfun(x, t)
            record["latents"].append(x.clone())
            record["cond"].append(cond)
            record["uncond"].append(uncond)
            computed.append(1.0 if cond_ran else 0.0)
            uncond_computed.append(1.0 if uncond_ran else 0.0)
            velocity = uncond + GUIDANCE * (cond - uncond)
            x = x + (sigmas[k + 1] - sigmas[k]) * velocity
        # The unconditional pass follows the conditional decision, except at the last step: the cache resets after
        # the conditional pass of the last step, so its unconditional pass always runs.
        print("computed", computed, "unconditional", uncond_computed)
        assert 0 < sum(computed[START_STEPS:]) < STEPS - START_STEPS, "the threshold must give both decisions"
        out = {name: torch.cat(values) for name, values in record.items()}
        out.update(computed=torch.tensor(computed), uncond_computed=torch.tensor(uncond_computed), timesteps=timesteps.float(), texts=texts,
                   threshold=torch.tensor([threshold]), start_steps=torch.tensor([float(START_STEPS)]),
                   guidance=torch.tensor([GUIDANCE]), sigmas=sigmas.float())
        save_file({k: v.contiguous() for k, v in out.items()}, str(TINY / "teacache_videoxfun.safetensors"))

    # LoRA: VideoX-Fun's merge_lora on its own model object, renamed back to diffusers' layout.
    names = {wan_name(k): k for k in reference.state_dict()}
    merged = {}
    for layout in ["kohya", "wan"]:
        model.load_state_dict(state, strict=False)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        merge_lora(types.SimpleNamespace(transformer=model), str(TINY / "lora" / f"{layout}.safetensors"), 0.75)
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert len(changed) == 3, changed
        for k in changed:
            merged[f"{layout}.{names[k]}"] = model.state_dict()[k].clone().contiguous()
    save_file(merged, str(TINY / "lora" / "merged_videoxfun.safetensors"))
    ours = load_file(str(TINY / "lora" / "merged.safetensors"))
    for name, value in merged.items():
        plain = name.replace("wan.", "plain.")
        print(f"{name}: max |VideoX-Fun - fixture rule| {(value - ours[plain]).abs().max().item():.2e}")
    print("wrote", TINY / "teacache_videoxfun.safetensors", "and", TINY / "lora" / "merged_videoxfun.safetensors")


if __name__ == "__main__":
    main()
