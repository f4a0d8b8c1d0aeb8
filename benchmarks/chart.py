#!/usr/bin/env python3
"""Draws docs/benchmarks.png from a run_issue2.sh results JSON: items/s per system, one panel per
(model, tower, batch). Needs matplotlib.   chart.py RESULTS.json OUT.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["swiftclip-fp32", "swiftclip-bf16", "swiftclip-int8", "onnxruntime-swiftclip-export", "onnxruntime",
         "onnxruntime-int8", "pytorch", "pytorch-bf16-autocast"]
LABEL = {"swiftclip-fp32": "SwiftCLIP fp32", "swiftclip-bf16": "SwiftCLIP bf16", "swiftclip-int8": "SwiftCLIP int8",
         "onnxruntime-swiftclip-export": "ORT on SwiftCLIP's export", "onnxruntime": "ORT on torch.onnx.export",
         "onnxruntime-int8": "ORT int8 (quantize_dynamic)", "pytorch": "PyTorch fp32",
         "pytorch-bf16-autocast": "PyTorch bf16 autocast"}
COLOR = {"swiftclip-fp32": "#d9480f", "swiftclip-bf16": "#f76707", "swiftclip-int8": "#ffa94d",
         "onnxruntime-swiftclip-export": "#f59f00", "onnxruntime": "#1c7ed6", "onnxruntime-int8": "#74c0fc",
         "pytorch": "#495057", "pytorch-bf16-autocast": "#adb5bd"}


def main():
    info = json.load(open(sys.argv[1]))
    # Rows measured only for their own peak RSS (run_issue2.sh swiftclip-rss) are not drawn.
    rows = [r for r in info["results"] if not r["system"].endswith("-own-process")]
    panels = sorted({(r["model"], r["tower"], int(r["batch"])) for r in rows},
                    key=lambda k: (k[0] != "convnext_v2_tiny", k[0], k[1], k[2]))
    models = sorted({p[0] for p in panels}, key=lambda m: (m != "convnext_v2_tiny", m))
    cols = max(sum(1 for p in panels if p[0] == m) for m in models)
    fig, axes = plt.subplots(len(models), cols, figsize=(3.4 * cols, 3.2 * len(models)), squeeze=False)
    for i, m in enumerate(models):
        mine = [p for p in panels if p[0] == m]
        for j in range(cols):
            ax = axes[i][j]
            if j >= len(mine):
                ax.axis("off")
                continue
            _, tower, batch = mine[j]
            sel = {r["system"]: r for r in rows if (r["model"], r["tower"], int(r["batch"])) == mine[j]}
            systems = [s for s in ORDER if s in sel] + sorted(s for s in sel if s not in ORDER)
            values = [sel[s]["items_per_s"] for s in systems]
            bars = ax.bar(range(len(systems)), values, color=[COLOR.get(s, "#868e96") for s in systems])
            for b, s in zip(bars, systems):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{sel[s]['median_ms']:.0f} ms",
                        ha="center", va="bottom", fontsize=7)
            ax.set_xticks([])
            ax.set_title(f"{m} {tower}, batch {batch}", fontsize=9)
            if j == 0:
                ax.set_ylabel("items/s (higher is better)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.margins(y=0.15)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOR[s]) for s in ORDER if any(r["system"] == s for r in rows)]
    labels = [LABEL[s] for s in ORDER if any(r["system"] == s for r in rows)]
    columns = len(labels) if len(labels) <= 5 else (len(labels) + 1) // 2
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    m = info["machine"]
    threads = sorted({r.get("threads") for r in rows if r.get("threads")})
    fig.suptitle(f"CPU inference, {m['cpu_model']}, {m['cpus']} CPUs, {'/'.join(map(str, threads))} thread(s)"
                 " — bar labels: median latency", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if columns == len(labels) else 0.1, 1, 0.95))
    fig.savefig(sys.argv[2], dpi=110)
    print(f"wrote {sys.argv[2]}", file=sys.stderr)


if __name__ == "__main__":
    main()
