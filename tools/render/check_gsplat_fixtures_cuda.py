#!/usr/bin/env python3
"""Compares the fixtures in Tests/SplatRenderTests/Fixtures/gsplat with gsplat 1.5.3's real CUDA rasterization().

Needs an NVIDIA GPU, a CUDA build of torch, nvcc and ``pip install gsplat==1.5.3`` (gsplat compiles its extension on
first use, about a minute with 16 cores). make_gsplat_fixtures.py runs on the CPU from gsplat's torch code and its own
transcriptions of the CUDA kernels; this script checks those against the kernels themselves. Run from the repository
root:  python3 tools/render/check_gsplat_fixtures_cuda.py   It prints one line per view and exits non-zero when a view
differs by more than float32 noise (or on a fragile pixel or radius, which the manifest names, by more than that).
"""
import json
import pathlib
import sys

import numpy as np
import torch
import gsplat
from gsplat.cuda._wrapper import spherical_harmonics
from gsplat.rendering import rasterization

FIX = pathlib.Path(__file__).resolve().parents[2] / "Tests/SplatRenderTests/Fixtures/gsplat"


def load(name, dtype, *shape):
    return np.fromfile(FIX / name, dtype).reshape(*shape)


def scene(n):
    raw = (FIX / "scene.ply").read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    names = [line.split()[2] for line in raw[:end].decode().splitlines() if line.startswith("property")]
    data = np.frombuffer(raw, "<f4", offset=end).reshape(n, len(names))
    col = {k: i for i, k in enumerate(names)}

    def cols(*keys):
        return torch.from_numpy(data[:, [col[k] for k in keys]].copy()).cuda()

    rest = cols(*[f"f_rest_{i}" for i in range(45)]).reshape(n, 3, 15).transpose(1, 2)
    return (cols("x", "y", "z"), cols("rot_0", "rot_1", "rot_2", "rot_3"),
            torch.exp(cols("scale_0", "scale_1", "scale_2")), torch.sigmoid(cols("opacity")[:, 0]),
            torch.cat([cols("f_dc_0", "f_dc_1", "f_dc_2")[:, None], rest], 1).contiguous())


def main():
    assert gsplat.__version__ == "1.5.3", gsplat.__version__
    manifest = json.loads((FIX / "manifest.json").read_text())
    n = manifest["gaussian_count"]
    means, quats, scales, opacities, sh = scene(n)
    failed = False
    for v in manifest["views"]:
        name, W, H = v["name"], v["width"], v["height"]
        viewmat = torch.tensor(v["viewmat"]).reshape(1, 4, 4).cuda()
        K = torch.tensor(v["K"]).reshape(1, 3, 3).cuda()
        settings = dict(near_plane=v["near_plane"], far_plane=v["far_plane"], eps2d=v["eps2d"],
                        sh_degree=v["sh_degree"], tile_size=manifest["tile_size"], render_mode="RGB+D",
                        rasterize_mode="classic")
        # rasterization(packed=True, backgrounds=...) trips an assertion in 1.5.3: images come from packed=False,
        # and the packed path is checked against it without a background.
        image, alpha, meta = rasterization(means, quats, scales, opacities, sh, viewmat, K, W, H, packed=False,
                                           backgrounds=torch.tensor([v["background"]]).cuda(), **settings)
        _, alpha_packed, meta_packed = rasterization(means, quats, scales, opacities, sh, viewmat, K, W, H,
                                                     packed=True, **settings)
        image, alpha = image[0].cpu().numpy(), alpha[0, ..., 0].cpu().numpy()
        radii = meta["radii"][0].cpu().numpy()
        flatten = meta["flatten_ids"].cpu().numpy()
        ids = meta_packed["gaussian_ids"].cpu().numpy()
        radii_packed = np.zeros_like(radii)
        radii_packed[ids] = meta_packed["radii"].cpu().numpy()

        robust = np.ones(H * W, bool)
        robust[v["fragile_pixels"]] = False
        robust = robust.reshape(H, W)
        d_rgb = np.abs(image[..., :3] - load(f"{name}.rgb.f32", "<f4", H, W, 3)).max(-1)
        d_alpha = np.abs(alpha - load(f"{name}.alpha.f32", "<f4", H, W))
        d_depth = np.abs(image[..., 3] - load(f"{name}.depth.f32", "<f4", H, W))
        ref_flatten = load(f"{name}.flatten_ids.i32", "<i4", -1)
        checks = {
            "rgb": float(d_rgb[robust].max()) < 2e-5,
            "alpha": float(d_alpha[robust].max()) < 2e-5,
            "depth": float(d_depth[robust].max()) < 1e-4,
            "flatten_ids": np.array_equal(flatten, ref_flatten),
            "tile_offsets": np.array_equal(meta["isect_offsets"][0].cpu().numpy().ravel(),
                                           load(f"{name}.tile_offsets.i32", "<i4", -1)),
            "packed=unpacked": np.array_equal(radii_packed, radii)
            and np.array_equal(ids[meta_packed["flatten_ids"].cpu().numpy()], flatten)
            and float(np.abs(alpha_packed[0, ..., 0].cpu().numpy() - alpha).max()) < 1e-6,
        }
        line = (f"{name:13s} rgb {d_rgb.max():.1e} alpha {d_alpha.max():.1e} depth {d_depth.max():.1e} "
                f"isects {len(flatten)}/{len(ref_flatten)}")
        if v["stages"]:
            sample = load(f"{name}.sample.i32", "<i4", -1)
            ref_radii = load(f"{name}.radii.i32", "<i4", -1, 2)
            robust_radii = np.ones(len(sample), bool)
            robust_radii[v["fragile_sample_radii"]] = False
            checks["radii"] = np.array_equal(radii[sample][robust_radii], ref_radii[robust_radii])
            visible = (ref_radii > 0).all(1)
            for key, width in (("means2d", 2), ("depths", 1), ("conics", 3)):
                mine = meta[key][0].cpu().numpy().reshape(n, -1)[sample[visible]]
                ref = load(f"{name}.{key}.f32", "<f4", -1, width)[visible]
                rel = float((np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-3)).max())
                checks[key] = rel < 1e-3
                line += f" {key} {rel:.1e}"
            campos = torch.inverse(viewmat)[0, :3, 3]
            colors = torch.clamp_min(spherical_harmonics(v["sh_degree"], means - campos, sh) + 0.5, 0.0)
            d_colors = float(np.abs(colors.cpu().numpy()[sample] - load(f"{name}.colors.f32", "<f4", -1, 3)).max())
            checks["colors"] = d_colors < 1e-5
            line += f" colors {d_colors:.1e}"
        bad = [k for k, ok in checks.items() if not ok]
        failed |= bool(bad)
        print(line + ("  ok" if not bad else f"  FAILED: {', '.join(bad)}"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
