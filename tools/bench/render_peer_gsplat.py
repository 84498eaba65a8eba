#!/usr/bin/env python3
"""Times gsplat 1.5.3's CUDA rasterization on the scenes and cameras `diorama bench render --dir DIR` writes.

    python3 tools/bench/render_peer_gsplat.py DIR [repeat]

This is the renderer FlashWorld calls, used the way it calls it (models/render.py): one view at a time, classic mode,
RGB+D, a white background, SH degree 2, near 0.01. The cameras are the 11-value FlashWorld vectors from
render-cameras.json (API JSON, pixels at the stated resolution), converted as flashworld-model.md §9 says. Prints one
JSON line per scene with frames per second (best of `repeat` passes over the cameras, CUDA synchronised). Needs a GPU,
torch with CUDA, nvcc, and `pip install gsplat==1.5.3` (it compiles its extension on first use).
"""
import json
import pathlib
import sys
import time

import numpy as np
import torch
from gsplat.rendering import rasterization


def read_ply(path):
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode()
    count = int(next(line.split()[2] for line in header.splitlines() if line.startswith("element vertex")))
    names = [line.split()[2] for line in header.splitlines() if line.startswith("property")]
    data = np.frombuffer(raw, "<f4", offset=end, count=count * len(names)).reshape(count, len(names))
    col = {name: i for i, name in enumerate(names)}

    def cols(*keys):
        return torch.from_numpy(data[:, [col[k] for k in keys]].copy()).cuda()

    rest_names = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n[7:]))
    per_channel = len(rest_names) // 3
    rest = cols(*rest_names).reshape(count, 3, per_channel).transpose(1, 2)
    sh = torch.cat([cols("f_dc_0", "f_dc_1", "f_dc_2")[:, None], rest], 1).contiguous()
    return (cols("x", "y", "z"), cols("rot_0", "rot_1", "rot_2", "rot_3"),
            torch.exp(cols("scale_0", "scale_1", "scale_2")), torch.sigmoid(cols("opacity")[:, 0]), sh)


def quaternion_to_matrix(q):
    w, x, y, z = q
    s = 2.0 / (w * w + x * x + y * y + z * z)
    return np.array([
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]])


def views(path):
    document = json.loads(path.read_text())
    _, height, width = document["resolution"]
    viewmats, ks = [], []
    for camera in document["cameras"]:
        c2w = np.eye(4)
        c2w[:3, :3] = quaternion_to_matrix(camera["quaternion"])
        c2w[:3, 3] = camera["position"]
        c2w[:3, 1:3] *= -1  # OpenGL to OpenCV
        viewmats.append(np.linalg.inv(c2w))
        ks.append([[camera["fx"], 0, camera["cx"]], [0, camera["fy"], camera["cy"]], [0, 0, 1]])
    as_tensor = lambda a: torch.tensor(np.array(a), dtype=torch.float32, device="cuda")
    return as_tensor(viewmats), as_tensor(ks), width, height


def main():
    folder = pathlib.Path(sys.argv[1])
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    viewmats, ks, width, height = views(folder / "render-cameras.json")
    white = torch.ones(1, 3, device="cuda")
    for ply in sorted(folder.glob("render-*.ply"), key=lambda p: int(p.stem.split("-")[1])):
        means, quats, scales, opacities, sh = read_ply(ply)
        degree = int(round(sh.shape[1] ** 0.5)) - 1

        def one_pass():
            for v in range(viewmats.shape[0]):
                rasterization(means, quats, scales, opacities, sh, viewmats[v:v + 1], ks[v:v + 1], width, height,
                              sh_degree=degree, near_plane=0.01, far_plane=1e10, render_mode="RGB+D",
                              backgrounds=white, rasterize_mode="classic", packed=False)
            torch.cuda.synchronize()

        one_pass()  # warm-up (and the extension build on first use)
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            one_pass()
            best = min(best, time.perf_counter() - start)
        print(json.dumps({"tool": "gsplat-1.5.3-cuda", "op": "render", "gaussians": means.shape[0], "width": width,
                          "height": height, "fps": viewmats.shape[0] / best, "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
