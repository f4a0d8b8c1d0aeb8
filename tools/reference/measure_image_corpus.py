#!/usr/bin/env python3
"""Share of images that `swiftclip preprocess` turns into exactly open_clip's tensor.

For every JPEG/PNG listed (or found under the folders given), the reference is open_clip's eval
transform applied to the image as Pillow opens it, the way open_clip's README does it:
``open_clip.image_transform(S, is_train=False)(Image.open(p))`` (S = 224, OpenAI mean/std,
bicubic, resize_mode shortest: the built-in ViT-B-32's preprocessing). SwiftCLIP's is
``swiftclip preprocess --model ViT-B-32 --input-list LIST --output OUT.npy``. Per file:

  equal            every float equal (bit for bit)
  differ           both produce a tensor, not equal (max |difference| reported)
  swift refused    Pillow/open_clip produce a tensor, swiftclip reports an error
  pillow refused   Pillow raises, swiftclip produces a tensor
  both refused

Usage:
  tools/reference/.venv/bin/python tools/reference/measure_image_corpus.py \
      --swiftclip .build/release/swiftclip [--list FILES.txt] [DIR ...] [--json OUT.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import open_clip
from PIL import Image

warnings.simplefilter("ignore")
Image.MAX_IMAGE_PIXELS = None  # the Python side must not refuse what it can decode (bomb check off)


def gather(args):
    files = []
    if args.list:
        files += [l.strip() for l in Path(args.list).read_text().splitlines() if l.strip()]
    for d in args.folders:
        for root, _, names in os.walk(d):
            files += [os.path.join(root, n) for n in names if n.lower().endswith((".png", ".jpg", ".jpeg"))]
    return sorted(set(files))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--swiftclip", required=True)
    ap.add_argument("--list")
    ap.add_argument("--json")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("folders", nargs="*")
    args = ap.parse_args()
    files = gather(args)
    transform = open_clip.image_transform(args.size, is_train=False)
    counts = {"equal": 0, "differ": 0, "swift refused": 0, "pillow refused": 0, "both refused": 0}
    details = []
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "inputs.txt"
        lst.write_text("".join(f + "\n" for f in files))
        out = Path(tmp) / "out.npy"
        p = subprocess.run([args.swiftclip, "preprocess", "--model", "ViT-B-32", "--input-list", str(lst),
                            "--output", str(out)], capture_output=True, text=True)
        rows_file = Path(tmp) / "out.rows.txt"
        rows = rows_file.read_text().splitlines() if rows_file.exists() else []
        ours = np.load(out, mmap_mode="r") if out.exists() else np.zeros((0, 3, args.size, args.size), np.float32)
        stderr = p.stderr
        got = {f: i for i, f in enumerate(rows)}
        # One file at a time, so that memory stays small for any number of files.
        for f in files:
            try:
                with Image.open(f) as im:
                    r = transform(im).numpy()
            except Exception as e:  # noqa: BLE001 - any refusal counts
                r = e
            s = np.asarray(ours[got[f]]) if f in got else None
            if isinstance(r, Exception):
                kind = "both refused" if s is None else "pillow refused"
                details.append({"file": f, "result": kind, "pillow": repr(r)[:200]})
            elif s is None:
                kind = "swift refused"
                msg = [l for l in stderr.splitlines() if f in l]
                details.append({"file": f, "result": kind, "swiftclip": (msg[0] if msg else "?")[:300]})
            elif np.array_equal(r.view(np.uint32), s.view(np.uint32)):
                kind = "equal"
            else:
                kind = "differ"
                d = np.abs(r - s)
                details.append({"file": f, "result": kind, "max_abs": float(d.max()),
                                "share_differing": float((d > 0).mean()), "mode": Image.open(f).mode})
            counts[kind] += 1
        del ours
    both = counts["equal"] + counts["differ"]
    print(f"{len(files)} files: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"equal: {counts['equal']} of {both} that both decode ({100 * counts['equal'] / max(both, 1):.1f}%)")
    for d in details:
        print("  " + json.dumps(d))
    warn = sum("warning:" in l for l in stderr.splitlines())
    print(f"swiftclip printed {warn} warning line(s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"files": len(files), "counts": counts, "details": details}, indent=1) + "\n")


if __name__ == "__main__":
    main()
