"""pgvector on a real server (scripts/pgvector_server.sh): HNSW build time, query latency and
recall@10 against exact top-10 (numpy's, from search_latency.py's truth.npy), at several
hnsw.ef_search values, plus pgvector's own exact scan — for docs/search.md.

    python pgvector_bench.py URL VECTORS_DIR [--m 16] [--ef-construction 64]
"""
import argparse
import json
import os
import time

import numpy as np
import psycopg


def vec(v):
    return "[" + ",".join(f"{x:.8g}" for x in v) + "]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("dir")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    args = ap.parse_args()
    v = np.load(os.path.join(args.dir, "vectors.npy"))
    q = np.load(os.path.join(args.dir, "queries.npy"))
    truth = np.load(os.path.join(args.dir, "truth.npy"))
    n, dim = v.shape
    with psycopg.connect(args.url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bench")
        db.execute(f"CREATE TABLE bench (id bigint PRIMARY KEY, embedding vector({dim}))")
        t = time.perf_counter()
        with db.cursor().copy("COPY bench (id, embedding) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((i, vec(v[i])))
        load_s = time.perf_counter() - t
        db.execute("SET maintenance_work_mem = '2GB'")
        db.execute("SET max_parallel_maintenance_workers = 1")
        t = time.perf_counter()
        db.execute(f"CREATE INDEX ON bench USING hnsw (embedding vector_ip_ops) WITH (m = {args.m}, ef_construction = {args.ef_construction})")
        build_s = time.perf_counter() - t
        print(json.dumps({"system": "pgvector", "n": n, "dim": dim, "load_s": round(load_s, 2), "hnsw_build_s": round(build_s, 2),
                          "m": args.m, "ef_construction": args.ef_construction}), flush=True)

        def run(label, setup):
            for s in setup:
                db.execute(s)
            times, hits = [], []
            for i, x in enumerate(q):
                lit = vec(x)
                t = time.perf_counter()
                ids = [r[0] for r in db.execute(f"SELECT id FROM bench ORDER BY embedding <#> '{lit}' LIMIT 10").fetchall()]
                times.append((time.perf_counter() - t) * 1e3)
                hits.append(len(set(ids) & set(truth[i].tolist())) / 10)
            times.sort()
            print(json.dumps({"system": "pgvector", "mode": label, "n": n, "median_ms": round(times[len(times) // 2], 3),
                              "p90_ms": round(times[len(times) * 9 // 10], 3), "recall_at_10": round(float(np.mean(hits)), 4)}), flush=True)

        for ef in (40, 100, 200, 400):
            run(f"hnsw ef_search={ef}", ["SET enable_seqscan = on", "SET enable_indexscan = on", f"SET hnsw.ef_search = {ef}"])
        run("exact scan", ["SET enable_indexscan = off", "SET max_parallel_workers_per_gather = 2"])


if __name__ == "__main__":
    main()
