"""Fixtures for SwiftCLIP's training transform: torchvision's F.resized_crop (PIL crop + Pillow
bicubic resize) on real photos for fixed crop rectangles, and open_clip's train transform with
scale=(1, 1) on a square image of exactly image_size (the identity, up to normalisation).

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
]
manifest = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__},
            "cases": []}
for name, top, left, h, w, size in cases:
    img = Image.open(fixtures / name).convert("RGB")
    crop = F.resized_crop(img, top, left, h, w, [size, size], InterpolationMode.BICUBIC)
    file = f"{pathlib.Path(name).stem}_{top}_{left}_{h}_{w}_{size}.rgb"
    (out / file).write_bytes(crop.tobytes())
    manifest["cases"].append({"image": name, "top": top, "left": left, "height": h, "width": w, "size": size, "file": file})
(out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {out}")
