"""docs/search.png from the JSON lines of benchmarks/search_bench.sh and tools/reference/pgvector_bench.py.

    python benchmarks/search_chart.py benchmarks/results/2026-12-06-search-latency.jsonl \
        benchmarks/results/2026-12-06-search-indexing.jsonl benchmarks/results/2026-12-06-pgvector.jsonl docs/search.png
"""
import json
import sys
from collections import defaultdict

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


latency, indexing, pgvector, out = sys.argv[1:5]
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

rates = defaultdict(list)
for r in lines(indexing):
    if "images_per_s" in r:
        rates[r["system"]].append(r["images_per_s"])
names = [n for n in ("python-rclip-like", "swiftclip-fp32", "swiftclip-bf16", "swiftclip-int8") if n in rates]
best = [max(rates[n]) for n in names]
left.bar(range(len(names)), best, color=["#888888", "#1f77b4", "#2ca02c", "#d62728"][:len(names)])
left.set_xticks(range(len(names)), [n.replace("swiftclip-", "SwiftCLIP ").replace("python-rclip-like", "Python\n(rclip-like)") for n in names])
for i, v in enumerate(best):
    left.text(i, v, f"{v:.1f}", ha="center", va="bottom")
left.set_ylabel("images / s (best of the rounds)")
left.set_title("Indexing 300 photo-sized JPEGs, convnext_v2_tiny")

series = defaultdict(dict)
for r in lines(latency):
    if "median_ms" in r:
        key = (r["system"], r["n"])
        series[r["system"]][r["n"]] = min(series[r["system"]].get(r["n"], 1e9), r["median_ms"])
for system, style in (("swiftclip", "o-"), ("numpy", "s--"), ("faiss-IndexFlatIP", "^--")):
    pts = sorted(series[system].items())
    if pts:
        right.plot([p[0] for p in pts], [p[1] for p in pts], style, label=system.replace("swiftclip", "SwiftCLIP exact"))
for r in lines(pgvector):
    if r.get("mode", "").startswith("hnsw") and r.get("recall_at_10", 0) >= 0.95:
        right.plot([r["n"]], [r["median_ms"]], "D", color="purple", label=f"pgvector HNSW {r['mode'][5:]}, low-rank set (recall@10 {r['recall_at_10']:.2f})")
        break
right.set_xscale("log")
right.set_yscale("log")
right.set_xlabel("stored 512-d unit vectors")
right.set_ylabel("median ms per query (top-10)")
right.set_title("Search latency, one query at a time")
right.legend(fontsize=8)
fig.suptitle("2 cores shared with other builds; systems interleaved in one run", fontsize=9)
fig.tight_layout()
fig.savefig(out, dpi=110)
