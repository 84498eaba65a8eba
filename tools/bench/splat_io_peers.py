#!/usr/bin/env python3
"""Times gaussforge and gsply on the files `diorama bench splat-io` leaves in a folder, same machine, same files.

    .build/release/diorama bench splat-io --dir bench-data --json > bench-data/diorama.jsonl
    python3 tools/bench/splat_io_peers.py bench-data

Prints one JSON line per measurement (best of --repeat), then a table of ratios against diorama's numbers
(>1 means diorama is faster).
"""
import json
import pathlib
import sys
import time

import gaussforge
import gsply


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bench-data")
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ply, spz, spz4 = folder / "bench.ply", folder / "bench.spz", folder / "bench-v4.spz"
    gf = gaussforge.GaussForge()
    rows = []

    # gaussforge works on bytes in memory; reading the file is part of its job, as it is of ours.
    rows.append(("gaussforge", "ply.read", best(lambda: gf.read(ply.read_bytes(), "ply"), repeat)))
    ir = gf.read(ply.read_bytes(), "ply")["data"]
    rows.append(("gaussforge", "ply.write", best(lambda: (folder / "gf.ply").write_bytes(gf.write(ir, "ply")["data"]), repeat)))
    rows.append(("gaussforge", "spz.encode.v3", best(
        lambda: (folder / "gf.spz").write_bytes(gf.write(ir, "spz", spz_version=3)["data"]), repeat)))
    rows.append(("gaussforge", "spz.decode.v3", best(lambda: gf.read(spz.read_bytes(), "spz"), repeat)))
    rows.append(("gaussforge", "spz.encode.v4", best(
        lambda: (folder / "gf-v4.spz").write_bytes(gf.write(ir, "spz", spz_version=4)["data"]), repeat)))
    rows.append(("gaussforge", "spz.decode.v4", best(lambda: gf.read(spz4.read_bytes(), "spz"), repeat)))
    del ir

    # gsply: plyread returns arrays that may be views of the file buffer; touch one column so the work is done.
    def gsply_read():
        d = gsply.plyread(str(ply))
        float(d.means[-1, 0] + d.shN[-1, -1, -1])
    rows.append(("gsply", "ply.read", best(gsply_read, repeat)))
    d = gsply.plyread(str(ply))
    rows.append(("gsply", "ply.write", best(lambda: gsply.plywrite(str(folder / "gs.ply"), d), repeat)))
    rows.append(("gsply", "spz.encode.v3", best(lambda: gsply.write_spz(str(folder / "gs.spz"), d, version=3), repeat)))
    rows.append(("gsply", "spz.decode.v3", best(lambda: gsply.read_spz(str(spz)), repeat)))
    rows.append(("gsply", "spz.encode.v4", best(lambda: gsply.write_spz(str(folder / "gs-v4.spz"), d, version=4), repeat)))
    rows.append(("gsply", "spz.decode.v4", best(lambda: gsply.read_spz(str(spz4)), repeat)))

    for tool, op, seconds in rows:
        print(json.dumps({"tool": tool, "op": op, "seconds": seconds}))
    ours = {}
    own = folder / "diorama.jsonl"
    if own.exists():
        for line in own.read_text().splitlines():
            r = json.loads(line)
            ours[r["op"]] = r["seconds"]
    print(f"\n| operation | diorama s | gaussforge s | gsply s | vs fastest peer |")
    print("|---|---|---|---|---|")
    for op in ["ply.read", "ply.write", "spz.encode.v3", "spz.decode.v3", "spz.encode.v4", "spz.decode.v4"]:
        peers = {t: s for t, o, s in rows if o == op}
        fastest = min(peers.values())
        mine = ours.get(op)
        ratio = f"{fastest / mine:.2f}x" if mine else "-"
        print(f"| {op} | {mine:.3f} | {peers['gaussforge']:.3f} | {peers['gsply']:.3f} | {ratio} |" if mine else
              f"| {op} | - | {peers['gaussforge']:.3f} | {peers['gsply']:.3f} | - |")


if __name__ == "__main__":
    main()
