#!/usr/bin/env python3
"""The other direction of the interop tests: files written by `diorama convert`, read by gaussforge and gsply.

For each source fixture it converts to SPZ v2/v3/v4, .splat and PLY with the given diorama binary, then
- checks that each SPZ's decompressed payload is byte-identical to gaussforge's (the Niantic library) for the same
  input and version;
- reads every output with gaussforge and gsply and compares with the source under the formats' tolerances.
It ends with a line 'N passed, M failed'.

    python3 tools/interop/check_diorama_outputs.py .build/debug/diorama
"""
import gzip
import pathlib
import struct
import subprocess
import sys
import tempfile

import numpy as np
import zstandard

import gaussforge
import gsply

FIXTURES = pathlib.Path("Tests/SplatIOTests/Fixtures/interop")
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok    " if ok else "FAIL  ") + name + (f"  {detail}" if detail else ""))


def payload(data: bytes) -> bytes:
    """The decompressed bytes: the gzip member for v1-3; header, extensions and decompressed streams for v4."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    n_streams, toc = data[15], struct.unpack_from("<I", data, 16)[0]
    out, offset = bytearray(data[:toc]), toc + 16 * n_streams
    for k in range(n_streams):
        size = struct.unpack_from("<Q", data, toc + 16 * k)[0]
        out += zstandard.ZstdDecompressor().decompress(data[offset:offset + size])
        offset += size
    return bytes(out)


def normalized(q):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.sign(q[:, :1] + 1e-12)


def compare(name, src, got, tol_pos, tol_scale, tol_dc, tol_rest, tol_quat, tol_opacity):
    check(f"{name} count", got.means.shape[0] == src.means.shape[0])
    check(f"{name} positions", np.abs(got.means - src.means).max() <= tol_pos, f"max err {np.abs(got.means - src.means).max():.3g}")
    check(f"{name} scales", np.abs(got.scales - src.scales).max() <= tol_scale)
    check(f"{name} sh0", np.abs(got.sh0 - src.sh0).max() <= tol_dc, f"max err {np.abs(got.sh0 - src.sh0).max():.3g}")
    if tol_rest is not None and src.shN is not None and src.shN.size:
        err = np.abs(got.shN.reshape(src.shN.shape) - src.shN).max()
        check(f"{name} shN", err <= tol_rest, f"max err {err:.3g}")
    dots = np.abs(np.sum(normalized(got.quats) * normalized(src.quats), axis=1)).min()
    check(f"{name} rotations", dots >= 1 - tol_quat, f"min |dot| {dots:.6f}")
    a, b = 1 / (1 + np.exp(-got.opacities)), 1 / (1 + np.exp(-src.opacities))
    check(f"{name} opacity", np.abs(a - b).max() <= tol_opacity, f"max err {np.abs(a - b).max():.3g}")


def through_gaussforge(gf, data, fmt, tmp):
    """gaussforge's `read` throws std::bad_cast on SH degree 0 and .splat input (0.6.0), so read by converting to
    PLY with it and parsing that."""
    r = gf.convert(data, fmt, "ply")
    if "error" in r:
        return None, r["error"]
    path = tmp / "via-gaussforge.ply"
    path.write_bytes(r["data"])
    return gsply.plyread(str(path)), ""


def main():
    binary = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/diorama").resolve()
    gf = gaussforge.GaussForge()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for degree in (0, 2, 3):
            src_path = FIXTURES / f"source-deg{degree}.ply"
            src = gsply.plyread(str(src_path))
            for version in (2, 3, 4):
                out = tmp / f"deg{degree}-v{version}.spz"
                subprocess.run([binary, "convert", src_path, out, "--spz-version", str(version), "-q"], check=True)
                ours = out.read_bytes()
                theirs = gf.convert(src_path.read_bytes(), "ply", "spz", spz_version=version)["data"]
                check(f"deg{degree} v{version} payload identical to gaussforge", payload(ours) == payload(theirs))
                got, error = through_gaussforge(gf, ours, "spz", tmp)
                check(f"deg{degree} v{version} gaussforge reads it", got is not None, error)
                if got is not None:
                    # v2 keeps 8 bits of x, y, z: |dot| about 0.995 at worst.
                    quat_tol = 1e-2 if version == 2 else 2e-3
                    compare(f"deg{degree} v{version} gaussforge", src, got, 1.3e-4, 0.032, 0.014, 1 / 16 + 1 / 128,
                            quat_tol, 0.0021)
                if version >= 3:
                    got = gsply.read_spz(str(out))
                    compare(f"deg{degree} v{version} gsply", src, got, 1.3e-4, 0.032, 0.014, 1 / 128 + 0.07, 2e-3, 0.0021)
            out = tmp / f"deg{degree}.splat"
            subprocess.run([binary, "convert", src_path, out, "-q"], check=True)
            got, error = through_gaussforge(gf, out.read_bytes(), "splat", tmp)
            check(f"deg{degree} .splat gaussforge reads it", got is not None, error)
            if got is not None:
                # .splat keeps DC only, in 8 bits of colour, and sorts by importance: compare as sets by position.
                order_src = np.lexsort(src.means.T)
                order_got = np.lexsort(got.means.T)
                src_sorted = gsply.GSData.from_arrays(src.means[order_src], src.scales[order_src], src.quats[order_src],
                                                      src.opacities[order_src], src.sh0[order_src])
                got_sorted = gsply.GSData.from_arrays(got.means[order_got], got.scales[order_got], got.quats[order_got],
                                                      got.opacities[order_got], got.sh0[order_got])
                compare(f"deg{degree} .splat gaussforge", src_sorted, got_sorted, 1e-6, 1e-5, 0.014, None, 0.03, 0.0041)
            out = tmp / f"deg{degree}.ply"
            subprocess.run([binary, "convert", src_path, out, "-q"], check=True)
            got = gsply.plyread(str(out))
            compare(f"deg{degree} ply gsply", src, got, 0, 0, 0, 0, 1e-6, 1e-7)
            got, error = through_gaussforge(gf, out.read_bytes(), "ply", tmp)
            check(f"deg{degree} ply gaussforge reads it", got is not None, error)
            if got is not None:
                compare(f"deg{degree} ply gaussforge", src, got, 0, 0, 0, 0, 1e-6, 1e-7)
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
