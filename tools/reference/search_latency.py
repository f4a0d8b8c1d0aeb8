"""Exact top-10 search latency over random unit vectors: numpy and FAISS IndexFlatIP, one query at
a time, and the vectors/queries as .npy files so `swiftclip bench-search` searches the same ones.

    python search_latency.py make  N DIM OUT_DIR [--structured]  # vectors.npy, queries.npy (seeded)
    python search_latency.py time  OUT_DIR [--top 10] # numpy + faiss latency (JSON lines), truth.npy
    python search_latency.py agree OUT_DIR SWIFT_IDS.npy  # share of swiftclip's top-10 in numpy's
"""
import json
import os
import sys
import time

import numpy as np


def make(n, dim, out, structured=False):
    """Random unit vectors; `structured`: a 32-dimensional Gaussian mapped into `dim` by a random
    matrix plus 10% noise, normalised — embeddings of photos lie near such a low-dimensional set,
    while on uniform vectors every graph index is at its worst (all distances nearly equal)."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((32, dim), dtype=np.float32) / np.sqrt(32)
    # In blocks, so 1M x 512 never needs a float64 copy.
    v = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        block = rng.standard_normal((min(n, s + 100_000) - s, dim), dtype=np.float32)
        if structured:
            block = rng.standard_normal((len(block), 32), dtype=np.float32) @ basis + 0.1 * block
        v[s:s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = rng.standard_normal((50, dim), dtype=np.float32)
    if structured:
        q = rng.standard_normal((50, 32), dtype=np.float32) @ basis + 0.1 * q
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.save(os.path.join(out, "vectors.npy"), v)
    np.save(os.path.join(out, "queries.npy"), q)


def timed(fn, queries, warmup=3):
    for q in queries[:warmup]:
        fn(q)
    times, ids = [], []
    for q in queries:
        t = time.perf_counter()
        ids.append(fn(q))
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times, np.array(ids)


def time_all(out, top=10):
    v = np.load(os.path.join(out, "vectors.npy"))
    q = np.load(os.path.join(out, "queries.npy"))

    def numpy_search(x):
        s = v @ x
        part = np.argpartition(-s, top)[:top]
        return part[np.argsort(-s[part], kind="stable")]

    import faiss
    index = faiss.IndexFlatIP(v.shape[1])
    index.add(v)

    def faiss_search(x):
        return index.search(x[None, :], top)[1][0]

    results = {}
    for name, fn in (("numpy", numpy_search), ("faiss-IndexFlatIP", faiss_search)):
        times, ids = timed(fn, q)
        results[name] = ids
        n = len(times)
        print(json.dumps({"system": name, "n": v.shape[0], "dim": v.shape[1], "queries": n, "top": top,
                          "median_ms": times[n // 2], "p10_ms": times[n // 10], "p90_ms": times[n * 9 // 10],
                          "faiss_threads": faiss.omp_get_max_threads()}))
    np.save(os.path.join(out, "truth.npy"), results["numpy"].astype(np.int64))
    agree = np.mean([len(set(a) & set(b)) / top for a, b in zip(results["numpy"], results["faiss-IndexFlatIP"])])
    print(json.dumps({"check": "faiss top-10 in numpy top-10", "share": float(agree)}))


def agree(out, swift_ids):
    truth = np.load(os.path.join(out, "truth.npy"))
    s = np.load(swift_ids)
    share = np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(truth, s)])
    print(json.dumps({"check": "swiftclip top-10 in numpy top-10", "share": float(share)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], structured="--structured" in sys.argv)
    elif cmd == "time":
        time_all(sys.argv[2])
    elif cmd == "agree":
        agree(sys.argv[2], sys.argv[3])
