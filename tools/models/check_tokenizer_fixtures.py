#!/usr/bin/env python3
"""Re-check Tests/ModelTests/Fixtures/tokenizer-tiny/ with whatever transformers is installed (4.x or 5.x).

make_tokenizer_fixtures.py writes the fixtures with transformers 5. FlashWorld pins transformers 4.57, which loads a
tokenizer.json differently (it runs the file's pipeline as written; 5.x rebuilds the T5 pipeline). This script loads
the committed tokenizer.json, and each pipeline variant listed in manifest.json, through T5TokenizerFast, calls it the
way FlashWorld does, and says for every variant whether this transformers version ran the file's own layout (the
case's variant_outputs) or the rebuilt one (the case's ids). It exits non-zero if the main file does not reproduce
every case's ids.

    python3 -m venv /tmp/tf457 && /tmp/tf457/bin/pip install "transformers==4.57.0" sentencepiece protobuf
    /tmp/tf457/bin/python tools/models/check_tokenizer_fixtures.py
"""

import json
import pathlib
import sys
import tempfile

import tokenizers
import transformers
from transformers import T5TokenizerFast

FIX = pathlib.Path(__file__).resolve().parents[2] / "Tests" / "ModelTests" / "Fixtures" / "tokenizer-tiny"


def load(folder: pathlib.Path, tokenizer_json: dict, extra_ids: int):
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    # a config both 4.x and 5.x read (the committed one is in the 5.x format, which 4.x rejects)
    extras = [f"<extra_id_{i}>" for i in range(extra_ids)]
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "extra_ids": extra_ids, "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "additional_special_tokens": extras}), encoding="utf-8")
    return T5TokenizerFast.from_pretrained(str(folder))


def run(tok, case, prefix, max_length):
    enc = tok(prefix + case["text"], padding="max_length", max_length=max_length, truncation=True,
              add_special_tokens=True)
    n = sum(enc["attention_mask"])
    return list(enc["input_ids"][:n])


def main():
    cases_doc = json.loads((FIX / "cases.json").read_text(encoding="utf-8"))
    manifest = json.loads((FIX / "manifest.json").read_text(encoding="utf-8"))
    base = json.loads((FIX / "tokenizer.json").read_text(encoding="utf-8"))
    charsmap = base["normalizer"]["precompiled_charsmap"]
    extra_ids = manifest["training"]["extra_ids"]
    prefix, max_length = cases_doc["prefix"], cases_doc["max_length"]
    cases = cases_doc["cases"]
    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")

    def with_charsmap(section):
        s = json.loads(json.dumps(section))
        if s.get("type") == "Precompiled":
            s["precompiled_charsmap"] = charsmap
        if s.get("type") == "Sequence" and "normalizers" in s:
            s["normalizers"] = [with_charsmap(x) for x in s["normalizers"]]
        return s

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tok = load(tmp / "main", base, extra_ids)
        bad = [c["name"] for c in cases if run(tok, c, prefix, max_length) != c["ids"]]
        print(f"main tokenizer.json: {len(cases) - len(bad)}/{len(cases)} cases reproduce ids", bad or "")
        failed |= bool(bad)
        for name, v in manifest["variants"].items():
            if name == "doc":
                continue
            j = json.loads(json.dumps(base))
            j["normalizer"] = with_charsmap(v["normalizer"])
            j["pre_tokenizer"] = v["pre_tokenizer"]
            tok = load(tmp / name, j, extra_ids)
            as_written = rebuilt = 0
            for c in cases:
                got = run(tok, c, prefix, max_length)
                own = c.get("variant_outputs", {}).get(name, {"ids": c["ids"]})["ids"]
                as_written += got == own
                rebuilt += got == c["ids"]
            verdict = ("same result either way" if as_written == rebuilt == len(cases) else
                       "runs the file's layout as written" if as_written == len(cases) else
                       "rebuilds the pipeline (ignores the file's layout)" if rebuilt == len(cases) else
                       "matches neither")
            print(f"variant {name:20s}: {as_written}/{len(cases)} as written, {rebuilt}/{len(cases)} as rebuilt "
                  f"-> {verdict}")
            failed |= verdict == "matches neither"
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
