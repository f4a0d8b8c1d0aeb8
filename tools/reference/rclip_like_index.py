"""A minimal Python photo indexer doing what rclip does, for the indexing side-by-side (docs/search.md).

Walk a folder for .jpg/.jpeg/.png, skip files whose (size, mtime) the SQLite table already has,
then per batch: Pillow open + convert("RGB"), open_clip's eval transform, model.encode_image under
torch.no_grad, L2-normalise, and one INSERT per file into `images(filepath UNIQUE, modified_at,
size, vector BLOB)` committed per batch — rclip's schema and loop, without its CLI. Prints one JSON
line: images, seconds, images/s.

    python rclip_like_index.py FOLDER DB [--model convnext_v2_tiny] [--weights W] [--batch-size 32] [--threads 2]
"""
import argparse
import json
import os
import sqlite3
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def walk(folder):
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith((".jpg", ".jpeg", ".png")):
                yield os.path.join(root, name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("db")
    ap.add_argument("--model", default="convnext_v2_tiny")
    ap.add_argument("--weights", default=None, help="open_clip state dict (.safetensors or .pt); else random from seed 0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import open_clip
    import torch
    from PIL import Image
    torch.set_num_threads(args.threads)
    model = _common.create_model(args.model, seed=0, weights=args.weights)
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)

    db = sqlite3.connect(args.db)
    db.execute("CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY, filepath TEXT NOT NULL UNIQUE, "
               "modified_at REAL NOT NULL, size INTEGER NOT NULL, vector BLOB NOT NULL)")
    known = {row[0]: (row[1], row[2]) for row in db.execute("SELECT filepath, modified_at, size FROM images")}

    start = time.perf_counter()
    done = 0
    batch = []

    def flush():
        nonlocal done
        images, kept = [], []
        for path, st in batch:
            try:
                images.append(preprocess(Image.open(path).convert("RGB")))
                kept.append((path, st))
            except Exception as e:  # noqa: BLE001 - rclip logs and skips unreadable files
                print(f"skipped {path}: {e}", file=sys.stderr)
        if images:
            with torch.no_grad():
                features = model.encode_image(torch.stack(images))
                features = features / features.norm(dim=-1, keepdim=True)
            vectors = features.numpy().astype(np.float32)
            with db:
                for (path, st), v in zip(kept, vectors):
                    db.execute("INSERT OR REPLACE INTO images (filepath, modified_at, size, vector) VALUES (?, ?, ?, ?)",
                               (path, st.st_mtime, st.st_size, v.tobytes()))
        done += len(kept)
        batch.clear()

    for path in walk(args.folder):
        st = os.stat(path)
        if known.get(path) == (st.st_mtime, st.st_size):
            continue
        batch.append((path, st))
        if len(batch) == args.batch_size:
            flush()
    if batch:
        flush()
    seconds = time.perf_counter() - start
    print(json.dumps({"system": "python-rclip-like", "images": done, "seconds": round(seconds, 3),
                      "images_per_s": round(done / seconds, 3) if seconds > 0 else None, "threads": args.threads}))


if __name__ == "__main__":
    main()
