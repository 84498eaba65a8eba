#!/usr/bin/env python3
"""Diorama's model cache against the real huggingface_hub library, offline (a local server plays the hub).

A small HTTP server serves the two repositories `diorama model pull flashworld` needs (tiny stand-in files, the large
ones as LFS behind a redirect to another host name), speaking the hub's protocol as huggingface_hub uses it. Then:
1. huggingface_hub's snapshot_download fills cache A; `diorama model pull flashworld` with HF_HUB_OFFLINE=1 must
   find the model there (Diorama reads the library's cache), and `diorama model list` must call it complete;
2. `diorama model pull flashworld` fills cache B from the server; huggingface_hub, offline, must find every file in
   it with the same bytes (hf_hub_download with local_files_only), and scan_cache_dir must report no warnings.
It ends with a line 'N passed, M failed'.

    pip install huggingface_hub
    python3 tools/interop/hub_cache_interop.py .build/debug/diorama
"""
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse

results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))


def git_blob(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


REPOS = {
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers": {
        "commit": "a" * 40,
        "files": {
            "model_index.json": b'{"_class_name": "WanPipeline"}',
            "scheduler/scheduler_config.json": b"{}",
            "tokenizer/tokenizer.json": b'{"model": {}}',
            "text_encoder/config.json": b"{}",
            "text_encoder/model.safetensors": bytes(range(256)) * 64,
            "transformer/config.json": b"{}",
            "transformer/diffusion_pytorch_model.safetensors": b"\x01" * 5000,
            "vae/config.json": b"{}",
            "vae/diffusion_pytorch_model.safetensors": bytes(range(255, -1, -1)) * 128,
            "README.md": b"# readme",
        },
        "lfs": {"text_encoder/model.safetensors", "transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"},
    },
    "imlixinyang/FlashWorld": {
        "commit": "b" * 40,
        "files": {"model.ckpt": b"\x02\x03" * 40000, "README.md": b"# FlashWorld"},
        "lfs": {"model.ckpt"},
    },
}


class Hub(http.server.BaseHTTPRequestHandler):
    port = 0

    def log_message(self, *args):
        pass

    def find(self, path):
        for name, repo in REPOS.items():
            if path.startswith(name + "/"):
                return name, repo, path[len(name) + 1:]
        return None, None, None

    def answer(self, body_wanted):
        url = urllib.parse.urlparse(self.path)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            name, repo, tail = self.find(rest + "/")
            if repo is None:
                return self.send_error(404)
            if tail.startswith("tree/"):
                # The listing huggingface_hub's snapshot_download reads (one page: no Link header).
                tree = []
                for fname, data in sorted(repo["files"].items()):
                    entry = {"type": "file", "path": fname, "size": len(data)}
                    if fname in repo["lfs"]:
                        entry["oid"] = git_blob(b"pointer " + fname.encode())
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
                    else:
                        entry["oid"] = git_blob(data)
                    tree.append(entry)
                return self.reply(200, {"Content-Type": "application/json"}, json.dumps(tree).encode(), body_wanted)
            siblings = []
            for fname, data in sorted(repo["files"].items()):
                entry = {"rfilename": fname, "size": len(data)}
                if fname in repo["lfs"]:
                    entry["blobId"] = git_blob(b"pointer " + fname.encode())
                    entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
                else:
                    entry["blobId"] = git_blob(data)
                siblings.append(entry)
            return self.reply(200, {"Content-Type": "application/json"},
                              json.dumps({"id": name, "modelId": name, "sha": repo["commit"], "siblings": siblings}).encode(), body_wanted)
        if path.startswith("/cdn/"):
            name, repo, fname = self.find(path[len("/cdn/"):])
            data = repo["files"][fname]
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
            headers = {"Content-Length": str(len(data) - start), "ETag": '"%s"' % hashlib.sha256(data).hexdigest()}
            if start:
                headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
            return self.reply(206 if start else 200, headers, data[start:], body_wanted)
        name, repo, tail = self.find(path.lstrip("/"))
        if repo is None or not tail.startswith("resolve/"):
            return self.send_error(404)
        revision, _, fname = tail[len("resolve/"):].partition("/")
        if revision not in ("main", repo["commit"]) or fname not in repo["files"]:
            return self.send_error(404)
        data = repo["files"][fname]
        headers = {"X-Repo-Commit": repo["commit"]}
        if fname in repo["lfs"]:
            sha = hashlib.sha256(data).hexdigest()
            headers.update({"X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)), "ETag": '"%s"' % git_blob(b"pointer"),
                            "Location": "http://localhost:%d/cdn/%s/%s" % (self.port, name, fname), "Content-Length": "0"})
            return self.reply(302, headers, b"", body_wanted)
        headers.update({"ETag": '"%s"' % git_blob(data), "Content-Length": str(len(data))})
        return self.reply(200, headers, data, body_wanted)

    def reply(self, status, headers, body, body_wanted):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body_wanted:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)


def main():
    diorama = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/diorama")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    Hub.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = "http://127.0.0.1:%d" % Hub.port
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ.pop("HF_HUB_OFFLINE", None)
    import huggingface_hub as hub
    print("huggingface_hub", hub.__version__, "against", endpoint)
    work = tempfile.mkdtemp(prefix="hub-interop-")
    cache_a, cache_b = os.path.join(work, "a"), os.path.join(work, "b")

    # 1. huggingface_hub writes, Diorama reads.
    wanted = ["model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/*", "transformer/config.json", "vae/*"]
    hub.snapshot_download("Wan-AI/Wan2.2-TI2V-5B-Diffusers", cache_dir=cache_a, allow_patterns=wanted, endpoint=endpoint)
    hub.hf_hub_download("imlixinyang/FlashWorld", "model.ckpt", cache_dir=cache_a, endpoint=endpoint)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=cache_a)
    run = subprocess.run([diorama, "model", "pull", "flashworld", "--quiet"], env=env, capture_output=True, text=True)
    check("diorama finds a model huggingface_hub fetched (offline)", run.returncode == 0, run.stderr.strip())
    check("  ...and downloads nothing", "0 downloaded" in run.stdout, run.stdout.strip())
    listing = subprocess.run([diorama, "model", "list"], env=env, capture_output=True, text=True)
    check("diorama model list calls it complete", "flashworld: complete" in listing.stdout, listing.stdout.strip())

    # 2. Diorama writes, huggingface_hub reads.
    env = dict(os.environ, HF_HUB_CACHE=cache_b)
    env.pop("HF_HUB_OFFLINE", None)
    run = subprocess.run([diorama, "model", "pull", "flashworld", "--quiet"], env=env, capture_output=True, text=True)
    check("diorama model pull flashworld from the local hub", run.returncode == 0, run.stderr.strip())
    for name, repo in REPOS.items():
        for fname, data in repo["files"].items():
            needed = (name == "imlixinyang/FlashWorld" and fname == "model.ckpt") or (
                name != "imlixinyang/FlashWorld" and fname != "README.md" and not fname.startswith("transformer/diffusion"))
            try:
                path = hub.hf_hub_download(name, fname, cache_dir=cache_b, local_files_only=True)
                found = open(path, "rb").read() == data
            except Exception as error:  # noqa: BLE001 (absent is an answer here)
                path, found = str(error).splitlines()[0], False
            if needed:
                check(f"huggingface_hub reads {name}/{fname} from Diorama's cache", found, path)
            else:
                check(f"{name}/{fname} (not needed) was not fetched", not found, path)
    info = hub.scan_cache_dir(cache_b)
    check("scan_cache_dir finds both repositories without warnings", len(info.repos) == 2 and not info.warnings,
          f"{[r.repo_id for r in info.repos]} {info.warnings}")
    for repo in info.repos:
        refs = {ref for revision in repo.revisions for ref in revision.refs}
        check(f"{repo.repo_id}: refs/main recorded", "main" in refs, str(refs))

    server.shutdown()
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
