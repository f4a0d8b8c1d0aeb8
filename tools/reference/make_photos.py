"""Makes a folder of photo-sized JPEGs for the indexing benchmark (docs/search.md), from the two
real photographs among the test fixtures (china.jpg, flower.jpg: scikit-learn's sample images):
each output is a random crop, rotated/flipped, recoloured (hue/saturation/brightness), upscaled to
a photo size (1600-2600 px on the long side, 4:3 or 3:2) with film-grain noise so that JPEG
entropy and decode cost resemble a camera's, saved at quality 85-95. Deterministic (seeded).

    python make_photos.py OUT_DIR COUNT [--tiny]   # --tiny: 32x24 PNGs (the 100,000-file re-run)
"""
import os
import sys

import numpy as np
from PIL import Image, ImageEnhance

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "Tests", "CLIPDataTests", "Fixtures")


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    tiny = "--tiny" in sys.argv
    rng = np.random.default_rng(0)
    sources = [Image.open(os.path.join(FIXTURES, n)).convert("RGB") for n in ("china.jpg", "flower.jpg")]
    for i in range(count):
        sub = os.path.join(out, f"{i // 1000:03d}")
        os.makedirs(sub, exist_ok=True)
        src = sources[i % 2]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.4, 1.0)), int(h * rng.uniform(0.4, 1.0))
        x, y = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
        img = src.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
        if tiny:
            img.resize((32, 24)).save(os.path.join(sub, f"t{i:06d}.png"))
            continue
        long_side = int(rng.uniform(1600, 2600))
        ratio = 4 / 3 if rng.random() < 0.5 else 3 / 2
        size = (long_side, int(long_side / ratio))
        if rng.random() < 0.3:
            size = size[::-1]  # portrait
        big = np.asarray(img.resize(size, Image.BILINEAR), dtype=np.int16)
        big += rng.integers(-8, 9, big.shape[:2] + (1,), dtype=np.int16)
        Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(
            os.path.join(sub, f"photo{i:05d}.jpg"), quality=int(rng.uniform(85, 95)))


if __name__ == "__main__":
    main()
