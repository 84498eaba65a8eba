#!/usr/bin/env python3
"""Writes the checkpoint-reader fixtures under Tests/CheckpointTests/Fixtures.

Diorama reads safetensors (single files and sharded folders) and PyTorch zip checkpoints (torch.save) without Python.
This script writes small, seeded examples of each with the reference writers (the `safetensors` package and
`torch.save`), hand-made corrupted variants for the error tests, and `manifest.json`, which lists for every tensor its
dtype (safetensors spelling), shape, the SHA-256 of its contiguous little-endian row-major bytes and its first values,
plus, for each corrupted file, the error the reader should report. Python is only used here; the Swift tests read the
committed outputs.

Setup (the versions the committed fixtures were made with are recorded in manifest.json):

    python3 -m venv /tmp/gsvenv
    /tmp/gsvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu   # 2.13.0+cpu
    /tmp/gsvenv/bin/pip install numpy safetensors                                          # safetensors 0.8.0

Run from anywhere (paths are taken from this file's location):

    /tmp/gsvenv/bin/python tools/engine/make_checkpoint_fixtures.py

Determinism: tensors come from a seeded generator; torch.save stamps every zip entry 1980-01-01 00:00 and derives
`.data/serialization_id` from the content; the safetensors writer orders tensors by dtype alignment and name but puts
`__metadata__` keys in a per-call hash order, so the safetensors files are re-written until they come out sorted.
Every file except `legacy.pt` is byte-identical across runs with the same library versions (--check-determinism runs
the generator twice more into temporary folders and compares). `legacy.pt` names its storages by memory address, so
its bytes vary from run to run; the tests only need it to be rejected.

Safety: the pickles with a disallowed GLOBAL or opcode are written as raw bytes and are never unpickled here. The
verification step reads the valid pickles with an unpickler whose find_class only hands out local stand-ins (it imports
nothing), and checks the corrupted torch files with torch.load(weights_only=True), which refuses unknown globals without
importing them.
"""
import argparse
import collections
import hashlib
import io
import json
import pathlib
import pickle
import pickletools
import shutil
import struct
import sys
import tempfile
import zipfile

import numpy as np
import torch
import safetensors
import safetensors.torch
from safetensors import safe_open

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "CheckpointTests" / "Fixtures"
SEED = 20251122
CASES = {}   # manifest name -> what the tensor exercises, for the special cases

ST_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
}
for _attr, _name in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
    if hasattr(torch, _attr):
        ST_NAMES[getattr(torch, _attr)] = _name


def st_supported(dtype):
    """Whether the installed safetensors package can write this torch dtype."""
    return dtype in getattr(safetensors.torch, "_TYPES", {}).values() or dtype in (
        torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
        torch.int8, torch.uint8, torch.bool)


# --------------------------------------------------------------------------------------------------------------------
# Tensor descriptions for the manifest
# --------------------------------------------------------------------------------------------------------------------

def tensor_bytes(t: torch.Tensor) -> bytes:
    """Contiguous, row-major, little-endian bytes of the tensor's logical contents (the machine is little-endian)."""
    c = t.detach().contiguous().reshape(-1)
    return c.view(torch.uint8).numpy().tobytes() if c.numel() else b""


def first_values(t: torch.Tensor):
    flat = t.detach().contiguous().reshape(-1)[:8]
    if t.dtype.is_floating_point:
        return [float(v) for v in flat.to(torch.float64).tolist()]
    if t.dtype == torch.bool:
        return [int(v) for v in flat.to(torch.uint8).tolist()]
    if t.dtype == torch.uint64:
        return [int(v) & 0xFFFFFFFFFFFFFFFF for v in flat.view(torch.int64).tolist()]
    return [int(v) for v in flat.tolist()]


def describe(name: str, t: torch.Tensor) -> dict:
    return {
        "name": name,
        "dtype": ST_NAMES[t.dtype],
        "shape": list(t.shape),
        "sha256": hashlib.sha256(tensor_bytes(t)).hexdigest(),
        "first": first_values(t),
    }


# --------------------------------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------------------------------

def safetensors_header(path: pathlib.Path):
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data, 0)
    return n, json.loads(data[8:8 + n])


def make_single(out: pathlib.Path, g: torch.Generator) -> dict:
    t = collections.OrderedDict()
    t["f32.matrix"] = torch.randn(3, 4, generator=g)
    t["f16.vector"] = torch.randn(5, generator=g).to(torch.float16)
    t["bf16.rank4"] = torch.randn(2, 3, 2, 2, generator=g).to(torch.bfloat16)
    t["f64.scalar"] = torch.tensor(3.141592653589793, dtype=torch.float64)
    t["i64.ids"] = torch.tensor([0, 1, -1, 2 ** 40 + 7, -(2 ** 62), 255], dtype=torch.int64)
    t["i32.values"] = torch.tensor([[1, -2, 3], [2 ** 31 - 1, -(2 ** 31), 0]], dtype=torch.int32)
    t["i16.values"] = torch.tensor([-32768, 32767, 1, -1], dtype=torch.int16)
    t["i8.values"] = torch.tensor([-128, -1, 0, 1, 127, 42, -42], dtype=torch.int8)
    t["u8.bytes"] = torch.tensor([0, 1, 2, 127, 128, 200, 254, 255, 9], dtype=torch.uint8)
    t["bool.mask"] = torch.tensor([True, False, False, True, True])
    t["f32.empty"] = torch.zeros(0, 3)
    for dtype, name, values in (
        (torch.uint16, "u16.values", [0, 1, 65535, 300]),
        (torch.uint32, "u32.values", [0, 1, 2 ** 32 - 1]),
        (torch.uint64, "u64.values", [0, 1, 2 ** 40]),
    ):
        if st_supported(dtype):
            t[name] = torch.tensor(values, dtype=torch.int64).to(dtype)
    for attr, name in (("float8_e4m3fn", "f8_e4m3.values"), ("float8_e5m2", "f8_e5m2.values")):
        dtype = getattr(torch, attr, None)
        if dtype is not None and st_supported(dtype):
            t[name] = torch.tensor([0.0, 1.0, -2.5, 0.015625, 240.0, -448.0 if "e4m3" in attr else -57344.0],
                                   dtype=torch.float32).to(dtype)
    metadata = {"format": "pt", "generator": "tools/engine/make_checkpoint_fixtures.py", "seed": str(SEED)}
    path = out / "single.safetensors"
    save_safetensors(t, path, metadata)
    return {"file": "single.safetensors", "format": "safetensors", "metadata": metadata,
            "tensors": st_entries(path, t)}


def save_safetensors(tensors: dict, path: pathlib.Path, metadata: dict):
    """safetensors.torch.save_file, repeated until the `__metadata__` keys come out sorted.

    The Rust writer keeps metadata in a hash map with a per-map random seed, so with more than one key their order in
    the header changes from call to call; everything else it writes is deterministic."""
    for _ in range(1000):
        safetensors.torch.save_file(dict(tensors), str(path), metadata=metadata)
        if list(safetensors_header(path)[1].get("__metadata__", {})) == sorted(metadata):
            return
    raise SystemExit(f"{path}: could not get a canonical __metadata__ order")


def st_entries(path: pathlib.Path, tensors: dict, shard: str = None) -> list:
    n, header = safetensors_header(path)
    entries = []
    for name, tensor in tensors.items():
        e = describe(name, tensor)
        assert header[name]["dtype"] == e["dtype"] and header[name]["shape"] == e["shape"], name
        e["data_offsets"] = header[name]["data_offsets"]
        if shard:
            e["file"] = shard
        entries.append(e)
    return entries


def make_sharded(out: pathlib.Path, g: torch.Generator) -> dict:
    folder = out / "sharded"
    folder.mkdir()
    bf = torch.bfloat16
    model = collections.OrderedDict()
    model["patch_embedding.weight"] = torch.randn(8, 6, 1, 2, 2, generator=g).to(bf)
    model["patch_embedding.bias"] = torch.randn(8, generator=g).to(bf)
    model["condition_embedder.time_embedder.linear_1.weight"] = torch.randn(8, 4, generator=g).to(bf)
    model["condition_embedder.time_embedder.linear_1.bias"] = torch.randn(8, generator=g).to(bf)
    for b in range(2):
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            model[f"blocks.{b}.attn1.{proj}.weight"] = torch.randn(8, 8, generator=g).to(bf)
            model[f"blocks.{b}.attn1.{proj}.bias"] = torch.randn(8, generator=g).to(bf)
        model[f"blocks.{b}.attn1.norm_q.weight"] = torch.randn(8, generator=g).to(bf)
        model[f"blocks.{b}.scale_shift_table"] = torch.randn(1, 6, 8, generator=g)
    model["proj_out.weight"] = torch.randn(16, 8, generator=g).to(bf)
    model["proj_out.bias"] = torch.randn(16, generator=g).to(bf)
    model["scale_shift_table"] = torch.randn(1, 2, 8, generator=g)

    # Split like transformers/diffusers do: fill shards in state-dict order; here: everything up to blocks.0 in the
    # first file, blocks.1 onwards in the second.
    names = list(model)
    cut = next(i for i, k in enumerate(names) if k.startswith("blocks.1."))
    shards = {"model-00001-of-00002.safetensors": names[:cut], "model-00002-of-00002.safetensors": names[cut:]}
    weight_map, entries = {}, []
    for file, keys in shards.items():
        part = collections.OrderedDict((k, model[k]) for k in keys)
        save_safetensors(part, folder / file, {"format": "pt"})
        for k in keys:
            weight_map[k] = file
        entries += st_entries(folder / file, part, shard=file)
    total = sum(t.numel() * t.element_size() for t in model.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return {"file": "sharded/model.safetensors.index.json", "format": "safetensors-sharded",
            "shards": list(shards), "total_size": total, "tensors": entries}


# --------------------------------------------------------------------------------------------------------------------
# torch.save zip checkpoints
# --------------------------------------------------------------------------------------------------------------------

def state_dict_metadata(names):
    """The `_metadata` attribute nn.Module.state_dict() attaches: module prefix -> {"version": 1}."""
    prefixes = [""]
    for n in names:
        parts = n.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            p = ".".join(parts[:i])
            if p not in prefixes:
                prefixes.append(p)
    return collections.OrderedDict((p, {"version": 1}) for p in prefixes)


def make_flashworld(g: torch.Generator):
    """Two state dicts as FlashWorld's model.ckpt holds them: {"transformer": ..., "recon_decoder": ...}."""
    bf, f16, f32 = torch.bfloat16, torch.float16, torch.float32
    tr = collections.OrderedDict()
    tr["patch_embedding.weight"] = torch.randn(8, 6, 1, 2, 2, generator=g).to(bf)
    tr["patch_embedding.bias"] = torch.randn(8, generator=g).to(bf)
    tr["condition_embedder.time_embedder.linear_1.weight"] = torch.randn(8, 4, generator=g).to(bf)
    tr["condition_embedder.time_embedder.linear_1.bias"] = torch.randn(8, generator=g).to(bf)
    # A dimension above 255 (the pickle spells 300 and the storage size 2400 with BININT2).
    tr["condition_embedder.text_embedder.linear_1.weight"] = torch.randn(8, 300, generator=g).to(bf)
    tr["condition_embedder.text_embedder.linear_1.bias"] = torch.randn(8, generator=g).to(bf)
    for b in range(2):
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                tr[f"blocks.{b}.{attn}.{proj}.weight"] = torch.randn(8, 8, generator=g).to(bf)
                tr[f"blocks.{b}.{attn}.{proj}.bias"] = torch.randn(8, generator=g).to(bf)
            tr[f"blocks.{b}.{attn}.norm_q.weight"] = torch.randn(8, generator=g).to(bf)
            tr[f"blocks.{b}.{attn}.norm_k.weight"] = torch.randn(8, generator=g).to(bf)
        tr[f"blocks.{b}.ffn.net.0.proj.weight"] = torch.randn(16, 8, generator=g).to(bf)
        tr[f"blocks.{b}.ffn.net.0.proj.bias"] = torch.randn(16, generator=g).to(bf)
        tr[f"blocks.{b}.ffn.net.2.weight"] = torch.randn(8, 16, generator=g).to(bf)
        tr[f"blocks.{b}.ffn.net.2.bias"] = torch.randn(8, generator=g).to(bf)
        tr[f"blocks.{b}.norm2.weight"] = torch.randn(8, generator=g)
        tr[f"blocks.{b}.norm2.bias"] = torch.randn(8, generator=g)
        tr[f"blocks.{b}.scale_shift_table"] = torch.randn(1, 6, 8, generator=g)
    # Non-contiguous view: a transpose (shape [8, 16], strides [1, 8], offset 0).
    tr["blocks.1.ffn.net.2.weight"] = torch.randn(16, 8, generator=g).to(bf).t()
    CASES["transformer.blocks.1.ffn.net.2.weight"] = "non-contiguous: transpose of a [16, 8] tensor"
    # A view with a storage offset and non-default strides: columns 2..9 of a [8, 12] matrix
    # (shape [8, 8], strides [12, 1], offset 2; the whole 96-element storage is saved).
    tr["blocks.1.attn2.to_out.0.weight"] = torch.randn(8, 12, generator=g).to(bf)[:, 2:10]
    CASES["transformer.blocks.1.attn2.to_out.0.weight"] = "non-contiguous: columns 2..9 of [8, 12], storage offset 2"
    # Tied weights: two tensor objects over one storage, as state_dict() gives for shared parameters.
    tr["blocks.1.attn1.to_v.weight"] = tr["blocks.0.attn1.to_v.weight"].detach()
    CASES["transformer.blocks.1.attn1.to_v.weight"] = "tied: second tensor object over the storage of blocks.0"
    # A contiguous slice with a storage offset: rows 4..19 of a [20, 8] matrix (offset 32, storage of 160).
    proj = torch.randn(20, 8, generator=g).to(bf)
    tr["proj_out.weight"] = proj[4:]
    CASES["transformer.proj_out.weight"] = "contiguous slice: rows 4..19 of [20, 8], storage offset 32"
    tr["proj_out.bias"] = torch.randn(16, generator=g).to(bf)
    tr["scale_shift_table"] = torch.randn(1, 2, 8, generator=g)
    tr["rope.denoising_steps"] = torch.tensor([0, 250, 500, 750], dtype=torch.int64)   # int64 buffer
    tr._metadata = state_dict_metadata(tr)

    rd = collections.OrderedDict()
    rd["decoder.conv_in.weight"] = torch.randn(8, 4, 3, 3, 3, generator=g).to(f16)
    rd["decoder.conv_in.bias"] = torch.randn(8, generator=g).to(f16)
    rd["decoder.mid_block.resnets.0.norm1.gamma"] = torch.randn(8, 1, 1, 1, generator=g).to(f16)
    rd["decoder.mid_block.resnets.0.conv1.weight"] = torch.randn(8, 8, 3, 3, 3, generator=g).to(f16)
    rd["decoder.mid_block.resnets.0.conv1.bias"] = torch.randn(8, generator=g).to(f16)
    rd["decoder.mid_block.attentions.0.to_qkv.weight"] = torch.randn(24, 8, 1, 1, generator=g)
    rd["decoder.mid_block.attentions.0.to_qkv.bias"] = torch.randn(24, generator=g)
    rd["decoder.norm_out.gamma"] = torch.randn(8, 1, 1, 1, generator=g)
    rd["decoder.conv_out.weight"] = torch.randn(12, 8, 3, 3, 3, generator=g).to(bf)
    rd["decoder.conv_out.bias"] = torch.randn(12, generator=g).to(bf)
    rd["gs_head.conv.weight"] = rd["decoder.conv_out.weight"]   # the same tensor object twice: a memo BINGET
    CASES["recon_decoder.gs_head.conv.weight"] = "tied: the same tensor object as decoder.conv_out.weight (memo get)"
    rd["gs_head.scale"] = torch.tensor(0.125, dtype=f32)        # 0-dim float
    rd["gs_head.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)  # 0-dim int64 buffer
    # A broadcast buffer: one stored float, shape [70000], stride [0] (70000 takes BININT in the pickle).
    rd["gs_head.opacity_offset"] = torch.full((1,), -2.0, dtype=f32).expand(70000)
    CASES["recon_decoder.gs_head.opacity_offset"] = "broadcast: one stored element, stride 0"
    rd["gs_head.empty_bias"] = torch.zeros(0, dtype=f32)        # zero-size: an empty data/<key> record
    rd._metadata = state_dict_metadata(rd)
    CASES.update({
        "recon_decoder.gs_head.scale": "0-dim float32",
        "recon_decoder.gs_head.num_batches_tracked": "0-dim int64 buffer",
        "recon_decoder.gs_head.empty_bias": "zero-size: storage of 0 elements, empty data/<key> record",
        "transformer.rope.denoising_steps": "int64 buffer",
        "transformer.condition_embedder.text_embedder.linear_1.weight": "dimension 300 and storage size 2400 (BININT2)",
    })
    return {"transformer": tr, "recon_decoder": rd}


def make_state_dict(g: torch.Generator):
    torch.manual_seed(SEED)  # nn.Module initialisers use the global generator
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    return net.state_dict()   # an OrderedDict with the `_metadata` attribute, float32 throughout


def make_transformers_bin(g: torch.Generator):
    """A plain dict, as transformers' save_pretrained(safe_serialization=False) builds each shard."""
    sd = collections.OrderedDict()
    sd["embeddings.word_embeddings.weight"] = torch.randn(10, 4, generator=g)
    sd["embeddings.position_embeddings.weight"] = torch.randn(6, 4, generator=g)
    sd["embeddings.LayerNorm.weight"] = torch.ones(4)
    sd["embeddings.LayerNorm.bias"] = torch.zeros(4)
    # Older BERT checkpoints store this expanded buffer: shape [1, 6], strides [0, 1].
    sd["embeddings.position_ids"] = torch.arange(6).expand((1, -1))
    CASES["embeddings.position_ids"] = "expanded buffer: strides [0, 1]"
    sd["encoder.layer.0.attention.self.query.weight"] = torch.randn(4, 4, generator=g)
    sd["encoder.layer.0.attention.self.query.bias"] = torch.randn(4, generator=g)
    sd["cls.predictions.bias"] = torch.zeros(10)
    sd["cls.predictions.decoder.weight"] = sd["embeddings.word_embeddings.weight"].detach()  # tied to the embedding
    CASES["cls.predictions.decoder.weight"] = "tied: shares the storage of embeddings.word_embeddings.weight"
    return {k: v for k, v in sd.items()}


# A stand-in unpickler for inspection: it builds a description of what the pickle contains and imports nothing.
class TensorRef:
    def __init__(self, pid, offset, size, stride, requires_grad, hooks, *rest):
        _, storage_type, key, location, numel = pid
        self.storage_type, self.key, self.location, self.numel = storage_type, key, location, numel
        self.offset, self.size, self.stride, self.requires_grad = offset, list(size), list(stride), requires_grad
        self.extra_args = len(rest)


class InspectingUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return TensorRef
        if module == "torch" and name.endswith("Storage"):
            return f"{module}.{name}"
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        return pid


def flatten(obj, prefix=""):
    for k, v in obj.items():
        if isinstance(v, dict):
            yield from flatten(v, prefix + k + ".")
        else:
            yield prefix + k, v


def structure_of(obj):
    if isinstance(obj, dict):
        node = {"type": "OrderedDict" if isinstance(obj, collections.OrderedDict) else "dict"}
        if hasattr(obj, "_metadata"):
            node["_metadata"] = "set by BUILD after the items: module prefix -> {'version': 1}, %d prefixes" % len(
                obj._metadata)
        if all(not isinstance(v, dict) for v in obj.values()):
            node["entries"] = len(obj)
        else:
            node["keys"] = {k: structure_of(v) for k, v in obj.items()}
        return node
    return {"type": "tensor"}


def pickle_summary(pkl: bytes) -> dict:
    ops, globs = set(), []
    for op, arg, _ in pickletools.genops(pkl):
        ops.add(op.name)
        if op.name == "GLOBAL" and arg not in globs:
            globs.append(arg)
    return {"opcodes": sorted(ops), "globals": globs}


def torch_file(out: pathlib.Path, rel: str, obj, fmt_note: str) -> dict:
    path = out / rel
    torch.save(obj, str(path))
    z = zipfile.ZipFile(path)
    archive = path.stem
    pkl = z.read(f"{archive}/data.pkl")
    parsed = InspectingUnpickler(io.BytesIO(pkl)).load()
    loaded = torch.load(str(path), weights_only=True, map_location="cpu")
    names = dict(flatten(obj))
    refs = dict(flatten(parsed))
    back = dict(flatten(loaded))
    assert list(names) == list(refs) == list(back), rel
    entries = []
    for name, t in names.items():
        r = refs[name]
        e = describe(name, t)
        assert describe(name, back[name]) == e, name
        assert r.size == e["shape"] and r.stride == list(t.stride()) and r.offset == t.storage_offset(), name
        record = z.read(f"{archive}/data/{r.key}")
        assert len(record) == t.untyped_storage().nbytes(), name
        raw = torch.empty(0, dtype=torch.uint8).set_(t.untyped_storage())
        assert record == (raw.numpy().tobytes() if raw.numel() else b""), name
        e["storage"] = {"key": r.key, "record": f"{archive}/data/{r.key}", "class": r.storage_type,
                        "numel": r.numel, "offset": r.offset, "stride": r.stride}
        entries.append(e)
    keys = [e["storage"]["key"] for e in entries]
    shared = {}
    for e in entries:
        shared.setdefault(e["storage"]["key"], []).append(e["name"])
    for e in entries:
        others = [n for n in shared[e["storage"]["key"]] if n != e["name"]]
        if others:
            e["shares_storage_with"] = others
        if e["name"] in CASES:
            e["case"] = CASES[e["name"]]
    return {"file": rel, "format": "torch-zip", "archive": archive, "note": fmt_note,
            "structure": structure_of(obj), "pickle": pickle_summary(pkl),
            "storages": len(set(keys)), "tensors": entries}


# --------------------------------------------------------------------------------------------------------------------
# Corrupted files
# --------------------------------------------------------------------------------------------------------------------

def st_raw(header: dict, data: bytes, header_len=None, raw_header: bytes = None) -> bytes:
    """A safetensors file built by hand: u64 header length, JSON header padded with spaces to 8 bytes, data."""
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    n = len(h) if header_len is None else header_len
    return struct.pack("<Q", n) + h + data


def make_corrupt(out: pathlib.Path, g: torch.Generator) -> list:
    folder = out / "corrupt"
    folder.mkdir()
    items = []

    a = torch.randn(2, 3, generator=g)              # 24 bytes
    b = torch.randn(4, generator=g).to(torch.float16)  # 8 bytes
    data = tensor_bytes(a) + tensor_bytes(b)
    good = {"__metadata__": {"format": "pt"},
            "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]}}

    def put(name, blob, expect):
        (folder / name).write_bytes(blob)
        items.append({"file": f"corrupt/{name}", "expect": expect})

    base = st_raw(good, data)
    n = len(base) - 8 - len(data)
    put("header-too-long.safetensors", st_raw(good, data, header_len=len(base) + 1000),
        f"header length {len(base) + 1000} (first 8 bytes, u64 LE) exceeds the file size {len(base)} minus 8")
    put("malformed-json.safetensors",
        st_raw(None, data, raw_header=b'{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":'),
        "header is not valid JSON (object ends early at the dtype of tensor 'b')")
    h = json.loads(json.dumps(good))
    h["b"]["data_offsets"] = [24, 4120]
    h["b"]["shape"] = [2048]
    put("offsets-out-of-bounds.safetensors", st_raw(h, data),
        "tensor 'b' data_offsets [24, 4120] end past the data area, which is 32 bytes")
    h = json.loads(json.dumps(good))
    h["a"]["shape"] = [2, 4]
    put("length-mismatch.safetensors", st_raw(h, data),
        "tensor 'a': data_offsets [0, 24] hold 24 bytes but F32 [2, 4] needs 32")
    h = json.loads(json.dumps(good))
    h["b"]["data_offsets"] = [16, 24]
    put("overlapping-offsets.safetensors", st_raw(h, data),
        "tensors 'a' [0, 24] and 'b' [16, 24] overlap")
    h = json.loads(json.dumps(good))
    h["b"]["dtype"] = "F12"
    put("unknown-dtype.safetensors", st_raw(h, data), "tensor 'b' has unknown dtype \"F12\"")
    put("truncated.safetensors", base[:len(base) - 12],
        f"file truncated: data area is {len(data) - 12} bytes but tensor 'b' ends at offset 32 "
        f"(header length {n}, file {len(base) - 12} bytes)")
    put("truncated-length.safetensors", base[:5], "file of 5 bytes is shorter than the 8-byte header length")

    # A sharded index that names a shard which is not there.
    sh = folder / "sharded-missing-shard"
    sh.mkdir()
    safetensors.torch.save_file({"a": a}, str(sh / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    index = {"metadata": {"total_size": 32},
             "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sh / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    items.append({"file": "corrupt/sharded-missing-shard/model.safetensors.index.json",
                  "expect": "weight_map names shard 'model-00002-of-00002.safetensors' (for tensor 'b'), "
                            "which does not exist next to the index"})

    # (h) a torch zip cut in the middle: no central directory, no end-of-central-directory record.
    full = io.BytesIO()
    torch.save(collections.OrderedDict(weight=torch.randn(4, 4, generator=g), bias=torch.randn(4, generator=g)), full)
    blob = full.getvalue()
    put("truncated.pt", blob[:len(blob) // 2],
        f"not a complete zip: file of {len(blob) // 2} bytes has no end-of-central-directory record "
        f"(cut from {len(blob)})")

    # Torch-layout archives with hand-written pickles, written with torch's own zip writer.
    def torch_zip(name, pkl, records, expect):
        w = torch._C.PyTorchFileWriter(str(folder / name))
        w.write_record("data.pkl", pkl, len(pkl))
        w.write_record(".format_version", b"1", 1)
        w.write_record(".storage_alignment", b"64", 2)
        w.write_record("byteorder", b"little", 6)
        for key, payload in records:
            w.write_record(f"data/{key}", payload, len(payload))
        w.write_end_of_file()
        items.append({"file": f"corrupt/{name}", "expect": expect, "pickle": pickle_summary(pkl)})

    def offset_of(pkl, opname, arg=None):
        return next(pos for op, a, pos in pickletools.genops(pkl) if op.name == opname and (arg is None or a == arg))

    # (i) {"weight": os.system("echo ...")} — a GLOBAL outside the state-dict subset. Raw bytes; never unpickled.
    cmd = b"echo this fixture must never be unpickled"
    evil = (b"\x80\x02" + b"}q\x00" + b"X\x06\x00\x00\x00weight" + b"q\x01" + b"cos\nsystem\nq\x02"
            + b"X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R" + b"s.")
    torch_zip("forbidden-global.pt", evil, [],
              f"pickle GLOBAL 'os system' at data.pkl offset {offset_of(evil, 'GLOBAL')} is outside the "
              "state-dict subset (must be refused before anything is called)")

    # (j) torch.save's pickle of {"weight": tensor}, written without its data/0 record.
    buf = io.BytesIO()
    torch.save(collections.OrderedDict(weight=torch.randn(3, 2, generator=g)), buf)
    pkl = zipfile.ZipFile(buf).read("archive/data.pkl")
    torch_zip("missing-storage.pt", pkl, [],
              "tensor 'weight' needs storage key '0' but the archive has no record 'missing-storage/data/0'")

    # (k) an opcode torch never emits: INST (protocol 0) building collections.OrderedDict() instead of GLOBAL+REDUCE.
    inst = b"\x80\x02(icollections\nOrderedDict\nq\x00."
    torch_zip("unsupported-opcode.pt", inst, [],
              f"pickle opcode INST ('i', 0x69) at data.pkl offset {offset_of(inst, 'INST')} is outside the "
              "supported subset")
    return items


# --------------------------------------------------------------------------------------------------------------------

def check_corrupt(out: pathlib.Path, items: list):
    """Records what the reference readers say about each corrupted file (weights_only=True imports nothing)."""
    for it in items:
        path = out / it["file"]
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    for k in f.keys():
                        f.get_tensor(k)
            elif path.name.endswith(".index.json"):
                index = json.loads(path.read_text())
                for shard in sorted(set(index["weight_map"].values())):
                    safe_open(str(path.parent / shard), framework="pt").__enter__()
            else:
                torch.load(str(path), weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any failure is what we want
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
            msg = next((line for line in lines if "nsupported" in line), lines[0])
            msg = msg.replace(str(out.resolve()), "Fixtures").replace(str(out), "Fixtures")
            it["reference_error"] = f"{type(exc).__name__}: {msg}"[:200]
        else:
            raise SystemExit(f"{it['file']}: the reference reader accepted a corrupted file")


def generate(out: pathlib.Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    assert sys.byteorder == "little"
    g = torch.Generator().manual_seed(SEED)
    files = [make_single(out, g), make_sharded(out, g)]

    files.append(torch_file(out, "flashworld-like.ckpt", make_flashworld(g),
                            "torch.save of a plain dict holding two state dicts (OrderedDicts with _metadata), like "
                            "FlashWorld's model.ckpt; names are the nested keys joined with '.'"))
    files.append(torch_file(out, "state_dict.pt", make_state_dict(g),
                            "torch.save(nn.Module.state_dict()): a flat OrderedDict of float32 tensors with _metadata"))
    files.append(torch_file(out, "pytorch_model.bin", make_transformers_bin(g),
                            "a plain dict, as transformers save_pretrained(safe_serialization=False) writes a shard"))

    legacy = collections.OrderedDict(weight=torch.randn(2, 3, generator=g), bias=torch.randn(2, generator=g))
    torch.save(legacy, str(out / "legacy.pt"), _use_new_zipfile_serialization=False)
    legacy_entry = {
        "file": "legacy.pt", "format": "torch-legacy",
        "expect": "rejected: pre-1.6 torch.save format (not a zip: the file starts with pickle PROTO 2 and the "
                  "magic number 0x1950a86a20f9469cfc6c); suggest re-saving with a current torch",
        "byte_identical_across_runs": False,
        "tensors": [describe(k, v) for k, v in legacy.items()],
    }
    files.append(legacy_entry)

    corrupt = make_corrupt(out, g)
    check_corrupt(out, corrupt)

    manifest = {
        "generator": "tools/engine/make_checkpoint_fixtures.py",
        "versions": {"torch": torch.__version__, "safetensors": safetensors.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "seed": SEED,
        "conventions": {
            "dtype": "safetensors spelling (F32, BF16, F8_E4M3, ...)",
            "sha256": "of the tensor's logical contents as contiguous little-endian row-major bytes "
                      "(views and broadcasts are materialised first)",
            "first": "first up to 8 values in row-major order; floats for float dtypes, ints otherwise "
                     "(BOOL as 0/1)",
            "data_offsets": "safetensors only: [begin, end) relative to the start of the data area",
            "storage": "torch zips only: what the pickle says for the tensor (storage key, its data/<key> record, "
                       "storage class, storage element count, storage offset and strides in elements)",
            "byte_identity": "all files except legacy.pt are byte-identical across runs with the same versions",
        },
        "files": files,
        "corrupt": corrupt,
    }
    (out / "manifest.json").write_text(render_json(manifest) + "\n")
    return manifest


def render_json(obj, indent=0) -> str:
    """JSON with one line per tensor entry: containers whose compact form is short stay on one line."""
    flat = json.dumps(obj, separators=(", ", ": "))
    if not isinstance(obj, (dict, list)) or len(flat) + indent <= 640 and not (
            isinstance(obj, dict) and any(isinstance(v, list) and v and isinstance(v[0], dict) for v in obj.values())):
        return flat
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        body = [f"{inner}{json.dumps(k)}: {render_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(body) + "\n" + pad + "}"
    body = [inner + render_json(v, indent + 1) for v in obj]
    return "[\n" + ",\n".join(body) + "\n" + pad + "]"


def digest_tree(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-determinism", action="store_true",
                    help="also generate twice in temporary folders and compare the bytes")
    args = ap.parse_args()
    generate(OUT)
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            print(f"{p.stat().st_size:8d}  {p.relative_to(OUT)}")
    print(f"{total:8d}  total")
    assert total < 300 * 1024, "fixtures must stay under 300 KB"
    if args.check_determinism:
        with tempfile.TemporaryDirectory() as tmp:
            runs = []
            for i in range(2):
                d = pathlib.Path(tmp) / f"run{i}" / "Fixtures"
                generate(d)
                runs.append(digest_tree(d))
            runs.append(digest_tree(OUT))
            differ = sorted(k for k in runs[0] if len({r.get(k) for r in runs}) != 1)
            print("differ across runs:", differ or "none")
            assert differ in ([], ["legacy.pt"]), differ


if __name__ == "__main__":
    main()
