#!/usr/bin/env python3
"""The peer for `diorama bench video`: diffusers' WanPipeline (Wan2.2-TI2V-5B, expand_timesteps, UniPC) with random
full-size weights on one GPU, timed the same way: seconds per guided step (two transformer passes), the VAE decoder,
and peak memory. Run it on the GPU machine in the same device call as Diorama's benchmark:

    PYTHONPATH=/tmp/site python3 tools/bench/video_peer_diffusers.py --frames 121 --size 1280x704 --steps 3

Needs torch and diffusers (refharness/whl carries the diffusers wheel; refharness/device.sh installs it into
/tmp/site). The text encoder is left out (its time is not part of the comparison); the prompt embeddings are random.
Weights: transformer in bf16 (as diffusers' examples load it), VAE in float32 (as they recommend for Wan).
"""

import argparse
import time

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--size", default="1280x704")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    device = torch.device("cuda")
    torch.manual_seed(0)

    with device:
        torch.set_default_dtype(torch.bfloat16)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48, text_dim=4096,
            freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
            rope_max_seq_len=1024).eval()
        torch.set_default_dtype(torch.float32)
        vae = AutoencoderKLWan(
            base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
            temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12, patch_size=2,
            scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=[0.0] * 48, latents_std=[1.0] * 48).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae, scheduler=scheduler, expand_timesteps=True)
    embeds = torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16)
    negative = torch.randn(1, 512, 4096, device=device, dtype=torch.bfloat16)
    print(f"{torch.cuda.get_device_name()}: weights built, {torch.cuda.memory_allocated() / 2**30:.2f} GiB resident", flush=True)

    marks = []

    def mark(_pipe, _i, _t, kwargs):
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
        return {}

    def run(frames, steps):
        marks.clear()
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
        with torch.no_grad():
            latents = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, height=height, width=width, num_frames=frames,
                           num_inference_steps=steps, guidance_scale=5.0, output_type="latent", callback_on_step_end=mark).frames
        return latents, [b - a for a, b in zip(marks, marks[1:])]

    run(1, 1)  # warm-up
    torch.cuda.reset_peak_memory_stats()
    latents, steps = run(args.frames, args.steps)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        vae.decode(latents.to(torch.float32)).sample
    torch.cuda.synchronize()
    decode = time.perf_counter() - start
    per_step = sum(steps[1:]) / max(len(steps) - 1, 1) if len(steps) > 1 else steps[0]
    print(f"diffusers video {args.frames}x{height}x{width}, {latents.shape[2]} latent frames, guidance on")
    print(f"  per step       {per_step:8.3f} s  (steps: {', '.join(f'{s:.3f}' for s in steps)}; the first includes set-up)")
    print(f"  decoder        {decode:8.3f} s")
    print(f"  50-step video  {50 * per_step + decode:8.1f} s (estimate: 50 steps + decoder)")
    print(f"  peak device memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
