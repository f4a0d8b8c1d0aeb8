#!/usr/bin/env python3
"""Fixtures for preprocessing every image mode exactly as open_clip does (issue 25, part 2).

open_clip's eval transform is applied to the image as Pillow opens it (``preprocess(Image.open(p))``)
and resizes before it converts to RGB, so each Pillow mode ("P" with and without transparency,
"1", "L", "LA", "RGB", "RGBA", "I;16", CMYK/YCCK JPEG...) is resized its own way. For each small
image written here into Tests/CLIPDataTests/Fixtures/modes/ this records open_clip's output for
several ``preprocess_cfg``s (``image_transform_v2``): the 8-bit RGB pixels before ToTensor (exact
bytes) and, for the first config, the full float32 tensor.

Run with the reference venv (pillow 13, torch, torchvision, open_clip):
    tools/reference/.venv/bin/python tools/reference/make_mode_fixtures.py
"""
import ctypes
import ctypes.util
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
import open_clip
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_image_fixtures import adam7_png_bytes, pack_bits, png_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "CLIPDataTests" / "Fixtures"
OUT = FIXTURES / "modes"

# (size, resize_mode, interpolation, fill_color); the first one also gets a full tensor.
CONFIGS = [
    (16, "shortest", "bicubic", 0),
    (12, "shortest", "bicubic", 0),
    (36, "shortest", "bicubic", 0),  # 30 -> 36: upsampling
    (20, "shortest", "bilinear", 0),
    (16, "longest", "bicubic", 0),
    (24, "longest", "bilinear", 3),
    (16, "squash", "bicubic", 0),
    (32, "squash", "bilinear", 0),
]


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def ycck_jpeg(cmyk: np.ndarray) -> bytes:
    """TurboJPEG compresses CMYK pixels as YCCK (Pillow cannot write YCCK)."""
    lib = ctypes.CDLL(ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0")
    lib.tjInitCompress.restype = ctypes.c_void_p
    handle = lib.tjInitCompress()
    h, w, _ = cmyk.shape
    buf = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    src = np.ascontiguousarray(cmyk)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = lib.tjCompress2(ctypes.c_void_p(handle), src.ctypes.data_as(ctypes.c_void_p), w, w * 4, h, TJPF_CMYK,
                         ctypes.byref(buf), ctypes.byref(size), TJSAMP_420, 90, 0)
    assert rc == 0, "tjCompress2 failed"
    data = ctypes.string_at(buf, size.value)
    lib.tjFree(buf)
    lib.tjDestroy(ctypes.c_void_p(handle))
    return data


def make_images(rng) -> dict:
    china = Image.open(FIXTURES / "china.jpg").convert("RGB")
    flower = Image.open(FIXTURES / "flower.jpg").convert("RGB")
    small = china.resize((40, 30), Image.BICUBIC)
    tall = flower.resize((30, 40), Image.BICUBIC)
    alpha = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    alpha[::7, :] = 0
    alpha[:, ::5] = 255
    files = {}
    files["p_40x30.png"] = save(small.quantize(37), "PNG")
    files["p_trns_40x30.png"] = save(small.quantize(16), "PNG", transparency=3, bits=4)
    # Palette with an alpha per entry (tRNS of several bytes), mode "P" in Pillow.
    pa = small.quantize(64)
    files["p_alpha_40x30.png"] = save(pa, "PNG", transparency=bytes(int(v) for v in rng.integers(0, 256, 64)))
    files["bilevel_40x30.png"] = save(small.convert("L").point(lambda v: 255 if v > 110 else 0).convert("1"), "PNG")
    files["l_40x30.png"] = save(small.convert("L"), "PNG")
    files["la_40x30.png"] = save(Image.fromarray(np.dstack([np.asarray(small.convert("L")), alpha]), "LA"), "PNG")
    files["rgb_40x30.png"] = save(small, "PNG")
    files["rgba_40x30.png"] = save(Image.fromarray(np.dstack([np.asarray(small), alpha]), "RGBA"), "PNG")
    files["rgba_30x40.png"] = save(Image.fromarray(np.dstack([np.asarray(tall), alpha.T]), "RGBA"), "PNG")
    g16 = (np.asarray(small.convert("L")).astype(np.uint16) * 3 + rng.integers(0, 50, (30, 40))).astype(">u2")
    files["gray16_40x30.png"] = png_bytes(40, 30, 0, 16, [r.tobytes() for r in g16])
    g16full = (np.asarray(small.convert("L")).astype(np.uint16) * 257).astype(">u2")
    files["gray16_full_40x30.png"] = png_bytes(40, 30, 0, 16, [r.tobytes() for r in g16full])
    rgb16 = (np.asarray(small).astype(np.uint16) * 257 + rng.integers(0, 256, (30, 40, 3))).astype(">u2")
    files["rgb16_40x30.png"] = png_bytes(40, 30, 2, 16, [r.tobytes() for r in rgb16])
    rgba16 = np.dstack([rgb16, (alpha.astype(np.uint16) * 257)]).astype(">u2")
    files["rgba16_40x30.png"] = png_bytes(40, 30, 6, 16, [r.tobytes() for r in rgba16])
    la16 = np.dstack([g16full, (alpha.astype(np.uint16) * 257)]).astype(">u2")
    files["la16_40x30.png"] = png_bytes(40, 30, 4, 16, [r.tobytes() for r in la16])
    files["gray2_40x30.png"] = png_bytes(40, 30, 0, 2, pack_bits(np.asarray(small.convert("L")) >> 6, 2))
    files["gray4_40x30.png"] = png_bytes(40, 30, 0, 4, pack_bits(np.asarray(small.convert("L")) >> 4, 4))
    files["interlaced_40x30.png"] = adam7_png_bytes(np.asarray(small))
    frames = [small, small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    files["apng_40x30.png"] = save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)
    files["apng_rgba_default_40x30.png"] = save(
        Image.fromarray(np.dstack([np.asarray(small), alpha]), "RGBA"), "PNG", save_all=True,
        append_images=[frames[1].convert("RGBA")], default_image=True, duration=100)
    files["l_40x30.jpg"] = save(small.convert("L"), "JPEG", quality=90)
    files["rgb_40x30.jpg"] = save(small, "JPEG", quality=90)
    files["cmyk_40x30.jpg"] = save(small.convert("CMYK"), "JPEG", quality=90)
    files["ycck_40x30.jpg"] = ycck_jpeg(np.asarray(small.convert("CMYK")))
    files["progressive_40x30.jpg"] = save(small, "JPEG", quality=85, progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display; open_clip does not rotate
    files["exif_rotated_40x30.jpg"] = save(small, "JPEG", quality=90, exif=exif.tobytes())
    # libjpeg warnings that Pillow decodes through.
    jpg = files["rgb_40x30.jpg"]
    dqt = jpg.index(b"\xff\xdb")
    files["warn_extraneous_40x30.jpg"] = jpg[:dqt] + b"\x00\x01\x02" + jpg[dqt:]
    app0 = jpg.index(b"\xff\xe0")
    n = int.from_bytes(jpg[app0 + 2:app0 + 4], "big")
    files["warn_short_app0_40x30.jpg"] = jpg[:app0 + 2] + (n - 4).to_bytes(2, "big") + jpg[app0 + 4:]
    # After complete image data: a chunk header cut short decodes (Pillow's load_end stops there),
    # a chunk whose data is cut does not ("Truncated File Read").
    png = files["rgb_40x30.png"]
    iend = png.rindex(b"IEND") - 4
    text = b"tEXt" + b"Comment\x00" + b"x" * 40
    chunk = struct.pack(">I", len(text) - 4) + text + struct.pack(">I", zlib.crc32(text) & 0xFFFFFFFF)
    files["cut_header_after_idat_40x30.png"] = png[:iend] + chunk[:5]
    return files


def make_refused(files: dict) -> dict:
    """Files Pillow refuses although they start well; every decoder must refuse them too."""
    png = files["rgb_40x30.png"]
    iend = png.rindex(b"IEND") - 4
    text = b"tEXt" + b"Comment\x00" + b"x" * 40
    chunk = struct.pack(">I", len(text) - 4) + text + struct.pack(">I", zlib.crc32(text) & 0xFFFFFFFF)
    return {"cut_chunk_data_after_idat_40x30.png": png[:iend] + chunk[:30],
            "no_eoi_warning_40x30.jpg": files["warn_extraneous_40x30.jpg"][:-2]}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(25)
    files = make_images(rng)
    manifest = {
        "versions": {"pillow": PIL.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "open_clip": open_clip.__version__},
        "configs": [{"size": s, "resize_mode": m, "interpolation": i, "fill_color": f} for s, m, i, f in CONFIGS],
        "images": [],
    }
    for name, data in sorted(files.items()):
        (OUT / name).write_bytes(data)
        im = Image.open(OUT / name)
        entry = {"file": name, "mode": im.mode, "width": im.width, "height": im.height, "pixels": [], "tensor": None}
        crops = b""
        for k, (size, mode, interp, fill) in enumerate(CONFIGS):
            cfg = PreprocessCfg(size=(size, size), mode="RGB", mean=open_clip.OPENAI_DATASET_MEAN,
                                std=open_clip.OPENAI_DATASET_STD, interpolation=interp, resize_mode=mode,
                                fill_color=fill)
            t = image_transform_v2(cfg, is_train=False)
            # Everything before ToTensor + Normalize: the 8-bit RGB image open_clip feeds the model.
            x = Image.open(OUT / name)
            for step in t.transforms[:-2]:
                x = step(x)
            assert x.mode == "RGB" and x.size == (size, size), (name, x.mode, x.size)
            crops += np.asarray(x).tobytes()
            full = t(Image.open(OUT / name)).numpy().astype(np.float32)
            assert np.array_equal(full, t.transforms[-1](t.transforms[-2](x)).numpy())
            if k == 0:
                np.save(OUT / (name + ".tensor.npy"), full)
                entry["tensor"] = name + ".tensor.npy"
        (OUT / (name + ".crops.rgb")).write_bytes(crops)
        entry["pixels"] = name + ".crops.rgb"
        manifest["images"].append(entry)
        print(f"{name}: {im.mode} {im.size}", file=sys.stderr)
    manifest["refused"] = []
    for name, data in sorted(make_refused(files).items()):
        (OUT / name).write_bytes(data)
        try:
            Image.open(OUT / name).load()
            raise AssertionError(f"Pillow accepts {name}")
        except (OSError, SyntaxError, ValueError) as e:
            manifest["refused"].append({"file": name, "pillow": repr(e)})
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(files)} images to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
