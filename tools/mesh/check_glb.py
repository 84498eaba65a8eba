#!/usr/bin/env python3
"""Loads the binary glTF files `diorama mesh` writes with two independent readers, trimesh and pygltflib, and checks
what they see agrees with the file: vertex and triangle counts, bounds, colours, and (for --collider files) that the
surface is closed. Needs only `pip install trimesh pygltflib numpy`.

    python3 tools/mesh/check_glb.py scene.glb [collider.glb ...]

Exit status 0 when every file passes; each file's findings are printed.
"""
import sys

import numpy as np
import pygltflib
import trimesh


def check(path):
    problems = []
    gltf = pygltflib.GLTF2().load(path)
    primitive = gltf.meshes[0].primitives[0]
    positions = gltf.accessors[primitive.attributes.POSITION]
    indices = gltf.accessors[primitive.indices]
    if gltf.asset.version != "2.0":
        problems.append(f"asset version {gltf.asset.version}")
    scene = trimesh.load(path, force="mesh", process=False)
    if len(scene.vertices) != positions.count:
        problems.append(f"trimesh sees {len(scene.vertices)} vertices, the accessor says {positions.count}")
    if len(scene.faces) * 3 != indices.count:
        problems.append(f"trimesh sees {len(scene.faces)} triangles, the accessor says {indices.count // 3}")
    low, high = scene.vertices.min(axis=0), scene.vertices.max(axis=0)
    if not (np.allclose(low, positions.min, atol=1e-5) and np.allclose(high, positions.max, atol=1e-5)):
        problems.append(f"bounds {low}..{high} against the accessor's {positions.min}..{positions.max}")
    coloured = primitive.attributes.COLOR_0 is not None
    if coloured and scene.visual.kind != "vertex":
        problems.append("COLOR_0 is present but trimesh sees no vertex colours")
    closed = scene.is_watertight
    print(f"{path}: {positions.count} vertices, {indices.count // 3} triangles, "
          f"{'vertex colours' if coloured else 'no colours'}, {'closed' if closed else 'open'}, "
          f"bounds {np.round(low, 3).tolist()}..{np.round(high, 3).tolist()}"
          + ("" if not problems else "; PROBLEMS: " + "; ".join(problems)))
    if not coloured and not closed:
        problems.append("a collider should be closed")
    return not problems


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = [check(path) for path in sys.argv[1:]]
    sys.exit(0 if all(results) else 1)
