#!/usr/bin/env python3
"""Writes the fuzz seed corpus, Tests/CLIPFuzzTests/Seeds/<target>/: small valid inputs of each
format (run once; the seeds are committed). Needs numpy (.venv-ci has it):
    .venv-ci/bin/python tools/fuzz/make_seeds.py
"""
import gzip, io, json, os, pickle, struct
import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
seeds = os.path.join(root, "Tests", "CLIPFuzzTests", "Seeds")

def put(target, name, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

rng = np.random.default_rng(0)

# npy: float32 images, int64 token ids, float16, a 0-d array, a version-2 header.
for name, arr, kw in [("f32_images.npy", rng.standard_normal((2, 3, 4, 4)).astype("<f4"), {}),
                      ("i64_tokens.npy", rng.integers(0, 49408, (2, 5)).astype("<i8"), {}),
                      ("f16.npy", rng.standard_normal(6).astype("<f2"), {}),
                      ("scalar.npy", np.array(3.5, dtype="<f8"), {})]:
    b = io.BytesIO(); np.save(b, arr, **kw); put("npy", name, b.getvalue())
b = io.BytesIO(); np.lib.format.write_array(b, np.arange(4, dtype="<i4"), version=(2, 0)); put("npy", "v2.npy", b.getvalue())

# safetensors: F32, F16 and BF16 tensors with metadata, written as the format specifies.
def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata: header["__metadata__"] = metadata
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw); offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)
f32 = rng.standard_normal((2, 3)).astype("<f4")
put("safetensors", "mixed.safetensors", safetensors({
    "visual.proj": ("F32", [2, 3], f32.tobytes()),
    "logit_scale": ("F32", [], np.float32(2.6).tobytes()),
    "half": ("F16", [4], rng.standard_normal(4).astype("<f2").tobytes()),
    "brain": ("BF16", [2], (rng.standard_normal(2).astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()),
}, {"format": "pt"}))
put("safetensors", "empty.safetensors", safetensors({}))

# pickle: CIFAR-shaped dicts (numpy array + label list) at protocols 2, 4 and 5, and plain data.
batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [3, 7], "filenames": ["a.png", "b.png"]}
for p in (2, 4, 5):
    put("pickle", f"cifar_p{p}.pkl", pickle.dumps(batch, protocol=p))
put("pickle", "meta_p2.pkl", pickle.dumps({"label_names": ["cat", "dog"], "num_cases_per_batch": 2}, protocol=2))
put("pickle", "nested_p2.pkl", pickle.dumps([(1, 2.5, None, True), {"k": [b"x", "y"]}], protocol=2))

# image: small PNGs and JPEGs of each kind the decoder handles (from the data test fixtures).
fixtures = os.path.join(root, "Tests", "CLIPDataTests", "Fixtures")
for name in ["gray1_83x29.png", "gray2_37x21.png", "gray4_31x17.png", "gray8_trns_40x30.png", "gray16_47x33.png",
             "interlaced_45x33.png", "no_iend_31x17.png", "china_odd_333x97_q50_420.jpg", "china_gray_200x150.jpg",
             "damaged_scan_128x96.jpg"]:
    with open(os.path.join(fixtures, name), "rb") as f:
        put("image", name, f.read())

# tokenizer: text the cleaner rewrites (HTML entities, mojibake, whitespace, accents, emoji, CJK).
for i, text in enumerate(["a photo of a cat.", "A &amp; B &lt;3 &#x1F600; &nbsp;x", "cafÃ© dÃ©jÃ  vu", "  tabs\tand\nnew lines  ",
                          "naïve coöperation — “quotes” ‘single’", "😀👍🏽 emoji", "漢字かなカナ 한국어", "don't we'll it's",
                          "x" * 300]):
    put("tokenizer", f"text{i}.txt", text.encode())

# config: open_clip JSON configs (ViT, ConvNeXt with each head).
vit = {"embed_dim": 16, "quick_gelu": True, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16, "mlp_ratio": 2.0},
       "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
put("config", "vit.json", json.dumps(vit, indent=2).encode())
for proj in ["linear", "mlp", ""]:
    cfg = {"embed_dim": 512, "vision_cfg": {"timm_model_name": "convnextv2_atto", "timm_model_pretrained": False, "timm_pool": "avg",
                                            "timm_proj": proj, "image_size": [64, 64]},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}
    put("config", f"convnext_{proj or 'trunk'}.json", json.dumps(cfg).encode())

# csv: open_clip's tab-separated pairs, quoted fields, CRLF.
put("csv", "pairs.tsv", b"filepath\ttitle\nimg_00.png\ta red square\nsub/img_01.png\t\"a \"\"quoted\"\"\ttab\"\n")
put("csv", "crlf.tsv", b"title\tfilepath\r\nblue\t/abs/x.jpg\r\n\r\ngreen\ty.png\r\n")

# gzip: one member and two members.
put("gzip", "one.gz", gzip.compress(b"#version: 0.2\nh e\n" * 20, mtime=0))
put("gzip", "two.gz", gzip.compress(b"abc" * 100, mtime=0) + gzip.compress(b"", mtime=0))
print("seeds written to", seeds)
