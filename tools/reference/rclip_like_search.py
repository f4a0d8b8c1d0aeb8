"""A minimal Python one-shot photo search doing what rclip does, for the cold-search side-by-side
(docs/search.md, "One-shot search").

One process per query, as a user runs rclip: build the open_clip model (weights from a file, as
rclip loads its checkpoint), tokenize and encode the text, L2-normalise, read every stored vector
from the SQLite table `images(filepath, vector BLOB)` that `rclip_like_index.py` writes into one
numpy matrix, one matrix-vector product, top-k by argsort. Prints the results and one JSON line
with each phase's seconds (the process's own start-up before `main` is in the caller's wall time).

    python rclip_like_search.py DB "a red car" [--model convnext_v2_tiny] [--weights W.safetensors]
                                [--top 10] [--threads 2]
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


def main():
    started = time.perf_counter()
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("query")
    ap.add_argument("--model", default="convnext_v2_tiny")
    ap.add_argument("--weights", default=None, help="open_clip state dict (.safetensors or .pt)")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import open_clip
    import torch
    torch.set_num_threads(args.threads)
    imported = time.perf_counter()
    model = _common.create_model(args.model, seed=0, weights=args.weights)
    tokenizer = open_clip.get_tokenizer(args.model)
    loaded = time.perf_counter()
    with torch.no_grad():
        query = model.encode_text(tokenizer([args.query]))
        query = (query / query.norm(dim=-1, keepdim=True))[0].numpy().astype(np.float32)
    encoded = time.perf_counter()
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    paths, blobs = [], []
    for path, blob in db.execute("SELECT filepath, vector FROM images"):
        paths.append(path)
        blobs.append(blob)
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
    read = time.perf_counter()
    scores = vectors @ query
    top = np.argsort(-scores)[: args.top]
    searched = time.perf_counter()
    for rank, i in enumerate(top, 1):
        print(f"{scores[i]:.4f}\t{paths[i]}")
    print(json.dumps({"system": "python-rclip-like", "vectors": len(paths),
                      "import_s": round(imported - started, 3), "model_s": round(loaded - imported, 3),
                      "encode_s": round(encoded - loaded, 3), "read_s": round(read - encoded, 3),
                      "search_s": round(searched - read, 4), "total_in_process_s": round(searched - started, 3)}),
          file=sys.stderr)


if __name__ == "__main__":
    main()
