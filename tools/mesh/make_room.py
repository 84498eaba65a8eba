#!/usr/bin/env python3
"""Writes a synthetic room of FlashWorld's size for timing `diorama mesh`: 4,055,040 Gaussians about a pixel wide
(6 mm) on a bumpy sphere of radius 3 around the first camera, smoothly coloured, as a binary PLY in the y-up (RUB)
frame. Needs numpy.

    python3 tools/mesh/make_room.py room.ply [COUNT]
"""
import sys

import numpy as np

path = sys.argv[1] if len(sys.argv) > 1 else "room.ply"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4_055_040
rng = np.random.default_rng(1)
d = rng.standard_normal((n, 3))
d /= np.linalg.norm(d, axis=1, keepdims=True)
radius = 3 + 0.2 * np.sin(3 * d[:, 0]) * np.cos(2 * d[:, 1])
p = (d * radius[:, None]).astype(np.float32)
colour = np.stack([0.5 + 0.4 * np.sin(p[:, 0]), 0.5 + 0.4 * np.cos(p[:, 1]), 0.5 + 0.4 * np.sin(p[:, 2])], 1)
columns = np.concatenate([
    p, np.zeros((n, 3)), (colour - 0.5) / 0.28209479177387814, np.full((n, 1), 4.0), np.full((n, 3), np.log(0.006)),
    np.tile([1.0, 0, 0, 0], (n, 1)),
], 1).astype("<f4")
names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
         "rot_0", "rot_1", "rot_2", "rot_3"]
header = "ply\nformat binary_little_endian 1.0\ncomment coordinate_frame rub\nelement vertex %d\n" % n
header += "".join("property float %s\n" % name for name in names) + "end_header\n"
with open(path, "wb") as f:
    f.write(header.encode())
    f.write(columns.tobytes())
print(f"wrote {path}: {n} Gaussians")
