"""Fixtures for SwiftCLIP's training transform: torchvision's F.resized_crop (PIL crop + Pillow
bicubic resize) on images as Pillow opens them (open_clip_train's CsvDataset passes Image.open(p)
to the transform; RGB photos and every other mode: palette, 1-bit, RGBA, LA, 16-bit, CMYK), for
fixed crop rectangles, then open_clip's convert("RGB").

Writes Tests/CLIPDataTests/Fixtures/resized_crop/{manifest.json, *.rgb}. Run with the reference venv:
    tools/reference/.venv/bin/python tools/reference/make_train_transform_fixtures.py
"""
import json
import pathlib

import PIL
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

root = pathlib.Path(__file__).resolve().parents[2]
fixtures = root / "Tests/CLIPDataTests/Fixtures"
out = fixtures / "resized_crop"
out.mkdir(exist_ok=True)

cases = [
    # (image, top, left, height, width, size): shrink both ways, enlarge, odd sizes, a thin strip.
    ("china.jpg", 13, 27, 150, 201, 64),
    ("china.jpg", 0, 0, 427, 640, 224),
    ("flower_tall_150x400.jpg", 100, 10, 37, 121, 96),
    ("china_odd_333x97_q50_420.jpg", 5, 40, 90, 250, 33),
    ("exact_64x100.png", 30, 3, 64, 61, 64),
    # Other modes: resized in the mode they open in (P and 1 nearest, RGBA/LA premultiplied), then RGB.
    ("rgba_120x90.png", 7, 11, 70, 95, 48),
    ("palette_150x100.png", 3, 20, 90, 110, 64),
    ("palette4_trns_90x70.png", 0, 5, 70, 80, 100),
    ("la_70x45.png", 4, 6, 40, 60, 32),
    ("gray1_83x29.png", 2, 3, 25, 70, 40),
    ("gray16_47x33.png", 1, 2, 30, 40, 24),
    ("rgba16_20x30.png", 0, 0, 30, 20, 50),
    ("china_cmyk_161x121.jpg", 10, 15, 100, 140, 64),
]
manifest = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__},
            "cases": []}
for name, top, left, h, w, size in cases:
    img = Image.open(fixtures / name)
    crop = F.resized_crop(img, top, left, h, w, [size, size], InterpolationMode.BICUBIC).convert("RGB")
    file = f"{pathlib.Path(name).stem}_{top}_{left}_{h}_{w}_{size}.rgb"
    (out / file).write_bytes(crop.tobytes())
    manifest["cases"].append({"image": name, "mode": img.mode, "top": top, "left": left, "height": h, "width": w, "size": size,
                              "file": file})
(out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {out}")
