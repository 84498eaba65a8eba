#!/usr/bin/env python3
"""Parity fixtures for Wan2.2-TI2V-5B video generation (diffusers' WanPipeline / WanImageToVideoPipeline), tiny weights.

Writes Tests/ModelTests/Fixtures/video-tiny/ (committed; the Swift tests never run Python):

    model/                 a model folder in the published Wan-AI/Wan2.2-TI2V-5B-Diffusers layout, written by
                           diffusers' own `save_pretrained` (model_index.json with expand_timesteps, scheduler/, tokenizer/,
                           text_encoder/, transformer/, vae/): tiny widths, every flag of the 5B model; weights in 60 KB
                           shards with their index files, as the published folder shards them
    schedulers.safetensors UniPC (flow, shift 5, order 2, bh2) and flow-match Euler: sigmas, timesteps, and a run of
                           `step` over recorded velocities (samples[k+1] = step(velocities[k], samples[k]))
    vae_decode.safetensors the video VAE decoder (causal 3D convolutions with diffusers' chunk cache) over 3 latent frames
    t2v.safetensors        text-to-video: the noise, the latents after every step, the final video frames (float16)
    i2v.safetensors, i2v.png  image-to-video (first frame from i2v.png, expand_timesteps' per-token timesteps)
    lora/                  one LoRA in kohya, diffusers and original-Wan key layouts, and the weights it merges to
    manifest.json          the calls, the shapes, the versions, the tolerance

The tokenizer and text encoder are the ones of Fixtures/pipeline-tiny, the VAE is Fixtures/vae-tiny; the transformer is
made here (seeded). Run from the repository root (CPU only, a few seconds, nothing downloaded):

    python3 -m venv /tmp/gsvenv
    /tmp/gsvenv/bin/pip install torch numpy safetensors diffusers transformers pillow
    /tmp/gsvenv/bin/python tools/models/make_video_fixtures.py
"""

import json
import pathlib
import shutil
import zlib

import numpy as np
import torch
from PIL import Image

import diffusers
import transformers
from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler, WanImageToVideoPipeline,
                       WanPipeline, WanTransformer3DModel)
from safetensors.torch import save_file
from transformers import T5TokenizerFast, UMT5EncoderModel

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "Tests" / "ModelTests" / "Fixtures"
OUT = FIX / "video-tiny"
SIZE_BUDGET = 1_550_000

TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                   text_dim=32, freq_dim=16, ffn_dim=48, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                   eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024)
SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0)
PROMPT = "a lighthouse on a cliff at dusk, waves below"
NEGATIVE = "blurry, static"
FRAMES, HEIGHT, WIDTH, STEPS, GUIDANCE, TEXT_LEN = 9, 32, 64, 4, 5.0, 512


def rng_for(name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode()) + 20261207))


def normal(name: str, shape) -> torch.Tensor:
    return torch.from_numpy(rng_for(name).standard_normal(shape).astype(np.float32))


def randomise(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * normal(name, p.shape))
            elif "scale_shift_table" in name:
                p.copy_(0.1 * normal(name, p.shape))
            else:
                fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else 1
                p.copy_(normal(name, p.shape) / np.sqrt(fan_in))


def scheduler_cases() -> dict:
    out = {}
    shape = (2, 3, 4)
    for label, sched in [("unipc", UniPCMultistepScheduler(**SCHEDULER)),
                         ("euler", FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0))]:
        sched.set_timesteps(6)
        sample = normal(f"{label}.sample", shape)
        velocities, samples = [], [sample]
        for k, t in enumerate(sched.timesteps):
            v = normal(f"{label}.v{k}", shape) + 0.5 * samples[-1]
            samples.append(sched.step(v, t, samples[-1], return_dict=False)[0].float())
            velocities.append(v)
        out[f"{label}.sigmas"] = sched.sigmas.double()
        out[f"{label}.timesteps"] = sched.timesteps.double()
        out[f"{label}.velocities"] = torch.stack(velocities)
        out[f"{label}.samples"] = torch.stack(samples)
    long = UniPCMultistepScheduler(**SCHEDULER)
    long.set_timesteps(50)
    out["unipc50.sigmas"], out["unipc50.timesteps"] = long.sigmas.double(), long.timesteps.double()
    return out


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "model").mkdir(parents=True)

    tokenizer = T5TokenizerFast.from_pretrained(str(FIX / "pipeline-tiny" / "tokenizer"))
    text_encoder = UMT5EncoderModel.from_pretrained(str(FIX / "pipeline-tiny" / "text_encoder")).eval()
    vae = AutoencoderKLWan.from_pretrained(str(FIX / "vae-tiny")).eval()
    transformer = WanTransformer3DModel(**TRANSFORMER).eval()
    randomise(transformer)
    WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                scheduler=UniPCMultistepScheduler(**SCHEDULER), expand_timesteps=True).save_pretrained(str(OUT / "model"), max_shard_size="60KB")

    # Everything again from the written folder, as a user would load it.
    t2v = WanPipeline.from_pretrained(str(OUT / "model"))
    i2v = WanImageToVideoPipeline.from_pretrained(str(OUT / "model"))
    assert t2v.config.expand_timesteps and i2v.config.expand_timesteps
    tensors = scheduler_cases()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "schedulers.safetensors"))

    # The video decoder over 3 latent frames (9 video frames): latents → [1, 3, 9, 32, 48].
    z = normal("vae.latents", (1, 4, 3, 2, 3))
    with torch.no_grad():
        video = t2v.vae.decode(z).sample
    save_file({"latents": z, "video": video.contiguous()}, str(OUT / "vae_decode.safetensors"))

    latent_shape = (1, 4, (FRAMES - 1) // 4 + 1, HEIGHT // 16, WIDTH // 16)
    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=HEIGHT, width=WIDTH, num_frames=FRAMES,
                  num_inference_steps=STEPS, guidance_scale=GUIDANCE, max_sequence_length=TEXT_LEN, output_type="np")

    def run(pipe, label, **extra):
        noise = normal(f"{label}.noise", latent_shape)
        steps = []

        def record(_pipe, _i, _t, kwargs):
            steps.append(kwargs["latents"].detach().clone())
            return {}

        with torch.no_grad():
            frames = pipe(latents=noise.clone(), callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents"],
                          **common, **extra).frames
        frames = torch.from_numpy(np.asarray(frames)).float()  # [1, frames, h, w, 3] in [0, 1]
        save_file({"noise": noise, "step_latents": torch.stack(steps).contiguous(), "frames": frames.half().contiguous()},
                  str(OUT / f"{label}.safetensors"))
        return frames

    run(t2v, "t2v")
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb[..., 0], rgb[..., 1] = (xx * 4) % 256, (yy * 8) % 256
    rgb[..., 2] = rng_for("i2v.image").integers(0, 256, (HEIGHT, WIDTH))
    Image.fromarray(rgb).save(OUT / "i2v.png")
    run(i2v, "i2v", image=Image.open(OUT / "i2v.png").convert("RGB"))

    # LoRAs in the three key layouts people publish, and the transformer weights merged by VideoX-Fun's rule
    # (W += m * alpha/rank * up @ down; the factor is m when there is no alpha).
    (OUT / "lora").mkdir()
    sd = transformer.state_dict()
    rank, strength = 2, 0.75
    targets = [("blocks.0.attn1.to_q", "blocks_0_self_attn_q", "blocks.0.self_attn.q"),
               ("blocks.1.ffn.net.2", "blocks_1_ffn_2", "blocks.1.ffn.2"),
               ("blocks.0.attn2.to_out.0", "blocks_0_cross_attn_o", "blocks.0.cross_attn.o")]
    kohya, peft, wan, merged = {}, {}, {}, {}
    for module, kohya_name, wan_name in targets:
        out_f, in_f = sd[module + ".weight"].shape
        up, down = normal(module + ".up", (out_f, rank)), normal(module + ".down", (rank, in_f))
        kohya[f"lora_unet__{kohya_name}.lora_up.weight"] = up
        kohya[f"lora_unet__{kohya_name}.lora_down.weight"] = down
        kohya[f"lora_unet__{kohya_name}.alpha"] = torch.tensor(4.0)
        peft[f"transformer.{module}.lora_B.weight"] = up
        peft[f"transformer.{module}.lora_A.weight"] = down
        wan[f"diffusion_model.{wan_name}.lora_B.weight"] = up
        wan[f"diffusion_model.{wan_name}.lora_A.weight"] = down
        merged[f"kohya.{module}.weight"] = sd[module + ".weight"] + strength * (4.0 / rank) * (up @ down)
        merged[f"plain.{module}.weight"] = sd[module + ".weight"] + strength * (up @ down)
    save_file(kohya, str(OUT / "lora" / "kohya.safetensors"))
    save_file(peft, str(OUT / "lora" / "diffusers.safetensors"))
    save_file(wan, str(OUT / "lora" / "wan.safetensors"))
    save_file({k: v.contiguous() for k, v in merged.items()}, str(OUT / "lora" / "merged.safetensors"))

    manifest = {
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__},
        "transformer": {k: list(v) if isinstance(v, tuple) else v for k, v in TRANSFORMER.items()},
        "scheduler": SCHEDULER,
        "calls": {
            "schedulers": "set_timesteps(6), then samples[k+1] = step(velocities[k], timesteps[k], samples[k]); "
                          "velocities[k] = seeded normal + 0.5 * samples[k]; unipc50: set_timesteps(50)",
            "vae_decode": "vae.decode(latents).sample, latents [1,4,3,2,3] (3 latent frames -> 9 frames)",
            "t2v": "WanPipeline(**common, latents=noise), step_latents[k] = latents after step k (callback_on_step_end)",
            "i2v": "WanImageToVideoPipeline(**common, image=PIL i2v.png, latents=noise); step_latents are the "
                   "scheduler's latents (frame 0 is replaced by the image's latents before every model call and at the end)",
            "common": {k: v for k, v in common.items()},
            "lora": "lora/{kohya,diffusers,wan}.safetensors hold the same rank-2 matrices for three modules in three key "
                    "layouts (kohya/VideoX-Fun with alpha 4, diffusers/PEFT and original-Wan names without alpha); "
                    "lora/merged.safetensors: kohya.* = W + 0.75*(4/2)*up@down, plain.* = W + 0.75*up@down",
        },
        "tolerance": "1e-4 of the largest magnitude (float32 arithmetic in a different order); frames are stored as float16, so 2e-3 for them",
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")
    assert total < SIZE_BUDGET, f"fixtures are {total} bytes, over the {SIZE_BUDGET} budget"


if __name__ == "__main__":
    main()
