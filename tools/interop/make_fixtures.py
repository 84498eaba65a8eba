#!/usr/bin/env python3
"""Writes the splat interop fixtures under Tests/SplatIOTests/Fixtures/interop.

Sources are small seeded clouds written as PLY by gsply (and by hand for the layouts gsply does not write); the
reference codecs then write every other format from them:

- gaussforge 0.6.0 (embeds Niantic's SPZ library): SPZ v2, v3, v4, .splat and PLY;
- gsply 0.4.6: SPZ v3 and v4.

The Swift tests read each file back and compare with the source PLY under SPZ's quantisation tolerances, and check that
Diorama's SPZ writer produces the same decompressed payload as gaussforge's for the same input.

Run from the repository root:  pip install gaussforge==0.6.0 gsply==0.4.6 zstandard numpy
                               python3 tools/interop/make_fixtures.py
"""
import json
import pathlib
import sys

import numpy as np

import gaussforge
import gsply

OUT = pathlib.Path("Tests/SplatIOTests/Fixtures/interop")
N = 256


def cloud(degree: int, seed: int):
    rng = np.random.default_rng(seed)
    rest = (degree + 1) ** 2 - 1
    means = rng.uniform(-8, 8, size=(N, 3)).astype(np.float32)
    scales = rng.uniform(-6, -1, size=(N, 3)).astype(np.float32)
    quats = rng.normal(size=(N, 4)).astype(np.float32)  # w, x, y, z; not normalised on purpose
    opacities = rng.uniform(-4, 4, size=N).astype(np.float32)
    sh0 = rng.uniform(-1.5, 1.5, size=(N, 3)).astype(np.float32)
    shn = rng.uniform(-0.6, 0.6, size=(N, rest, 3)).astype(np.float32)
    return means, scales, quats, opacities, sh0, shn


def write_inria_ply(path, means, scales, quats, opacities, sh0, shn, normals=True, fmt="binary_little_endian"):
    """The INRIA layout by hand: gsply writes no normals, gaussforge needs a PLY to start from."""
    rest = shn.shape[1]
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else []) + ["f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest * 3)] + ["opacity", "scale_0", "scale_1", "scale_2"]
    names += ["rot_0", "rot_1", "rot_2", "rot_3"]
    cols = [means] + ([np.zeros_like(means)] if normals else []) + [sh0]
    cols += [shn.transpose(0, 2, 1).reshape(N, -1), opacities[:, None], scales, quats]
    data = np.concatenate(cols, axis=1).astype(np.float32)
    header = f"ply\nformat {fmt} 1.0\nelement vertex {N}\n" + "".join(f"property float {n}\n" for n in names)
    header += "end_header\n"
    with open(path, "wb") as f:
        f.write(header.encode())
        if fmt == "ascii":
            for row in data:
                f.write((" ".join(repr(float(v)) for v in row) + "\n").encode())
        else:
            f.write(data.astype(">f4" if fmt == "binary_big_endian" else "<f4").tobytes())


def write_flashworld_ply(path, means, scales, quats, opacities, sh0, shn):
    """FlashWorld's export: x y z, f_dc_0..26 (coefficient-major, RGB inner), opacity, scale_0..2, rot_0..3."""
    sh = np.concatenate([sh0[:, None, :], shn], axis=1).reshape(N, -1)
    names = ["x", "y", "z"] + [f"f_dc_{i}" for i in range(sh.shape[1])]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.concatenate([means, sh, opacities[:, None], scales, quats], axis=1).astype("<f4")
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {N}\n"
    header += "".join(f"property float {n}\n" for n in names) + "end_header\n"
    path.write_bytes(header.encode() + data.tobytes())


def write_mixed_types_ply(path, means, opacities, sh0):
    """Big-endian, doubles for positions, uchar colours, an extra element before the vertices, and a comment."""
    rgb = np.clip(np.round((0.5 + 0.28209479177387814 * sh0) * 255), 0, 255).astype(np.uint8)
    header = (
        "ply\nformat binary_big_endian 1.0\ncomment made by make_fixtures.py\n"
        "element camera 1\nproperty float view_px\nproperty list uchar int ids\n"
        f"element vertex {N}\nproperty double x\nproperty double y\nproperty double z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty float opacity\n"
        "element face 0\nproperty list uchar int vertex_indices\nend_header\n"
    )
    body = bytearray()
    body += np.array([1.5], ">f4").tobytes() + bytes([2]) + np.array([7, 9], ">i4").tobytes()
    row = np.dtype([("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("r", "u1"), ("g", "u1"), ("b", "u1"), ("o", ">f4")])
    rows = np.zeros(N, row)
    rows["x"], rows["y"], rows["z"] = means[:, 0], means[:, 1], means[:, 2]
    rows["r"], rows["g"], rows["b"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rows["o"] = opacities
    path.write_bytes(header.encode() + bytes(body) + rows.tobytes())


def gaussforge_convert(gf, data, src, dst, **kw):
    r = gf.convert(data, src, dst, **kw)
    if "error" in r:
        sys.exit(f"gaussforge {src}->{dst}: {r['error']}")
    return r["data"]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gf = gaussforge.GaussForge()
    manifest = {"generator": "tools/interop/make_fixtures.py", "gaussforge": gaussforge.__version__,
                "gsply": gsply.__version__, "count": N, "files": {}}

    def record(name, source, writer, note):
        manifest["files"][name] = {"source": source, "writer": writer, "note": note}

    for degree, seed in [(0, 10), (2, 12), (3, 13)]:
        arrays = cloud(degree, seed)
        src = OUT / f"source-deg{degree}.ply"
        write_inria_ply(src, *arrays)
        record(src.name, None, "make_fixtures.py", f"INRIA layout with normals, SH degree {degree}")
        data = src.read_bytes()
        for version in (2, 3, 4):
            out = OUT / f"gaussforge-deg{degree}-v{version}.spz"
            out.write_bytes(gaussforge_convert(gf, data, "ply", "spz", spz_version=version))
            record(out.name, src.name, "gaussforge", f"SPZ v{version}")
        out = OUT / f"gaussforge-deg{degree}.splat"
        out.write_bytes(gaussforge_convert(gf, data, "ply", "splat"))
        record(out.name, src.name, "gaussforge", ".splat")
        out = OUT / f"gaussforge-deg{degree}.ply"
        out.write_bytes(gaussforge_convert(gf, data, "ply", "ply"))
        record(out.name, src.name, "gaussforge", "PLY")
        g = gsply.plyread(str(src))
        for version in (3, 4):
            out = OUT / f"gsply-deg{degree}-v{version}.spz"
            gsply.write_spz(str(out), g, version=version)
            record(out.name, src.name, "gsply", f"SPZ v{version}, SH at full 8 bits")
        if degree > 0:
            out = OUT / f"gsply-deg{degree}.ply"
            means, scales, quats, opacities, sh0, shn = arrays
            gsply.plywrite(str(out), means, scales, quats, opacities, sh0, shn)
            record(out.name, src.name, "gsply", "PLY without normals")

    arrays = cloud(2, 12)
    means, scales, quats, opacities, sh0, shn = arrays
    write_flashworld_ply(OUT / "flashworld-38.ply", *arrays)
    record("flashworld-38.ply", "source-deg2.ply", "make_fixtures.py", "FlashWorld's 38-float layout")
    write_inria_ply(OUT / "ascii-deg2.ply", *arrays, fmt="ascii")
    record("ascii-deg2.ply", "source-deg2.ply", "make_fixtures.py", "ASCII")
    write_inria_ply(OUT / "big-endian-deg2.ply", *arrays, fmt="binary_big_endian")
    record("big-endian-deg2.ply", "source-deg2.ply", "make_fixtures.py", "binary big-endian")
    write_mixed_types_ply(OUT / "points-rgb.ply", means, opacities, sh0)
    record("points-rgb.ply", "source-deg2.ply", "make_fixtures.py",
           "big-endian doubles and uchar colours, an element before and after the vertices")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(manifest['files'])} fixtures, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
