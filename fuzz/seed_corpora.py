#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/seeds/<target>/) from the repository's real data.

Run from the repository root: python3 fuzz/seed_corpora.py
The committed corpora (fuzz/corpus/<target>/) are these seeds after fuzzing and `cargo fuzz cmin`.
"""
import glob
import hashlib
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "comfy-standin/fixtures/comfyui")
OUT = os.path.join(ROOT, "fuzz/seeds")
MAX_SEED = 64 * 1024  # larger inputs slow every execution; the templates' median is 8 KB


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with(base, chunks):
    """`base` with chunks inserted after IHDR (signature 8 + IHDR 25 bytes)."""
    return base[:33] + b"".join(chunk(k, d) for k, d in chunks) + base[33:]


# Workflows: the recorded frontend pairs and the templates of the older release.
workflows = []
for path in sorted(glob.glob(os.path.join(FIX, "ui_to_api_*.json"))):
    pair = json.load(open(path))
    workflows += [pair["ui_workflow"], pair["api_prompt"]]
for path in sorted(glob.glob(os.path.join(FIX, "templates/0.1.95/*.json"))):
    pair = json.load(open(path))
    workflows.append(pair["ui_workflow"])
    if "api_prompt" in pair:
        workflows.append(pair["api_prompt"])
for w in workflows:
    put("convert", compact(w))
put("convert", open(os.path.join(FIX, "get_object_info_KSampler.json")).read())

# Presets: every file of both formats.
for path in sorted(glob.glob(os.path.join(ROOT, "presets/**/*"), recursive=True)):
    if os.path.isfile(path) and path.endswith((".yaml", ".json")):
        put("presets", open(path, "rb").read())

# PNGs: ComfyUI's recorded output, and variants with each kind of text chunk.
base = open(os.path.join(FIX, "view_output.png"), "rb").read()
small_ui = json.load(open(os.path.join(FIX, "ui_to_api_default_workflow.json")))
pngs = [
    base,
    png_with(base, [(b"tEXt", b"workflow\0" + compact(small_ui["ui_workflow"]).encode())]),
    png_with(base, [(b"tEXt", b"prompt\0" + compact(small_ui["api_prompt"]).encode())]),
    png_with(base, [(b"tEXt", b"parameters\0a cat, masterpiece\nNegative prompt: dog\n"
                     b"Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, "
                     b"Model: sd15")]),
    png_with(base, [(b"iTXt", b"workflow\0\0\0en\0workflow\0" + compact(small_ui["ui_workflow"]).encode())]),
    png_with(base, [(b"zTXt", b"prompt\0\0" + zlib.compress(b"{}"))]),
    base[: len(base) // 2],
]
for p in pngs:
    put("png_meta", p)
    put("import", b"image.png\0" + p)

# Imports: JSON in each accepted shape, named and unnamed.
for w in workflows[:12]:
    put("import", compact(w))
put("import", "\ufeff" + compact(small_ui["api_prompt"]))
put("import", compact({"prompt": small_ui["api_prompt"],
                       "extra_data": {"extra_pnginfo": {"workflow": small_ui["ui_workflow"]}}}))
put("import", b"../my workflow.json\0" + compact(small_ui["api_prompt"]).encode())
put("import", b"\xff\xd8\xff\xe0 not a workflow")
