#!/usr/bin/env python3
"""Writes the fuzz seed corpus, Tests/CLIPFuzzTests/Seeds/<target>/: small valid inputs of each
format (run once; the seeds are committed). Needs numpy (.venv-ci has it):
    .venv-ci/bin/python tools/fuzz/make_seeds.py
"""
import gzip, io, json, os, pickle, struct, tarfile
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

# Webdataset: tar shards (Python's tarfile in its ustar, GNU and pax formats) and shard specs.
# Seeds named invalid-* must make the target throw (a typed error); the others must read cleanly.
def tar(fmt, members, pax_headers=None):
    """members: (name, bytes) for files, (name, 'dir') / (name, '->target') for others."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt, pax_headers=pax_headers or {}) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    raw = b.getvalue()
    end = raw.find(b"\0" * 1024, 0)
    while end % 512:                      # the end-of-archive blocks, not zeros inside a member
        end = raw.find(b"\0" * 1024, end + 1)
    return raw[:end + 1024]               # without tarfile's padding to a 10 KB record

jpg = b"\xff\xd8\xff\xe0" + bytes(range(60)) + b"\xff\xd9"   # only the extension matters to the reader
def sample(key, ext="jpg", caption=b"a photo of a cat"):
    return [(f"{key}.{ext}", jpg), (f"{key}.txt", caption), (f"{key}.json", json.dumps({"key": key}).encode())]

# ustar as img2dataset writes it: two samples of jpg/txt/json.
put("tar", "ustar_two_samples.tar", tar(tarfile.USTAR_FORMAT, sample("000000000") + sample("000000001", "png")))
# ustar's prefix field: a path over 100 bytes split at a slash.
deep = "/".join(["d" * 40] * 3) + "/000000007"
put("tar", "ustar_prefix.tar", tar(tarfile.USTAR_FORMAT, sample(deep)))
# GNU: an 'L' long name, a directory and a symlink (skipped), a webp sample.
long = "shard-dir/" + "k" * 120
put("tar", "gnu_longname.tar", tar(tarfile.GNU_FORMAT, [("shard-dir", "dir")] + sample(long, "webp")
                                    + [("shard-dir/link.jpg", "->000.jpg")]))
# pax: a global header, 'x' headers carrying a long and a non-ASCII path.
put("tar", "pax_paths.tar", tar(tarfile.PAX_FORMAT, sample("p" * 150) + sample("échantillon-2"),
                                 pax_headers={"comment": "webdataset seed"}))
# Samples the loader drops with a message: no caption, no image, a duplicate member, no dot.
put("tar", "ustar_incomplete_samples.tar", tar(tarfile.USTAR_FORMAT,
    [("a.jpg", jpg), ("b.txt", b"caption only"), ("c.jpg", jpg), ("c.txt", b"x"), ("c.txt", b"y"),
     ("README", b"no extension"), ("d.JPEG", jpg), ("d.TXT", b"upper-case extensions")]))
# GNU base-256 size field (what tarfile writes for members of 8 GiB and more), on a small member.
raw = bytearray(tar(tarfile.USTAR_FORMAT, sample("000000042")))
raw[124:136] = b"\x80" + (len(jpg)).to_bytes(11, "big")
raw[148:156] = b" " * 8
raw[148:156] = b"%06o\0 " % sum(raw[:512])
put("tar", "base256_size.tar", bytes(raw))

good = tar(tarfile.USTAR_FORMAT, sample("000000000") + sample("000000001"))
put("tar", "invalid-truncated_member.tar", good[:512 + 30])            # ends inside the first member
put("tar", "invalid-truncated_header.tar", good[:2 * 512 + 100])       # ends inside the second header
bad = bytearray(good); bad[1024 + 5] ^= 0x20                           # the second header's name
put("tar", "invalid-bad_checksum.tar", bytes(bad))

# shardlist: a --train-data specification, then (after the first newline) the sizes.json beside it.
for name, spec, sizes in [
    ("img2dataset.txt", "shards/{00000..00003}.tar", {f"{i:05}.tar": 10 + i for i in range(4)}),
    ("sources.txt", "a/{0..2}.tar::b/{x,y}-{8..10..2}.tar", {"0.tar": 3, "x-8.tar": "4"}),
    ("nested.txt", "{a,b{1,2}}.tar::{a..e}.tar::s3://bucket/{000..010..5}.tar", None),
    ("literal.txt", "dir/\\{x\\}/{3..1}{x}.tar::{-05..05..5}.tar", None),
    ("pipe.txt", "pipe:curl -s https://host/data/{0000..0002}.tar", {"0000.tar": 1000, "0001.tar": 1000, "0002.tar": 7}),
]:
    put("shardlist", name, (spec + ("\n" + json.dumps(sizes) if sizes is not None else "")).encode())
for name, spec in [("invalid-huge_range.txt", "shards/{000000000..999999999}.tar"),
                   ("invalid-int_limits.txt", "{-9223372036854775808..9223372036854775807}.tar"),
                   ("invalid-product.txt", "s/{0..999}/{0..999}/{0..999}.tar"),
                   ("invalid-unbalanced.txt", "s/{0..3.tar::x}")]:
    put("shardlist", name, spec.encode())
print("seeds written to", seeds)
