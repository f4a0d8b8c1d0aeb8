#!/usr/bin/env bash
# One training step of convnext_v2_tiny, SwiftCLIP against PyTorch, each in fp32 and bf16 (SwiftCLIP's
# amp_bf16, PyTorch's autocast), batch 8
# and 32, in one run, alternating systems per batch size (timings drift on these machines: compare
# only inside one run). One configuration per process (peak RSS is its own).
#   [TAG=name] benchmarks/train_step.sh [STEPS]   -> benchmarks/results/<date>-train-step[-TAG].{jsonl,md}
# Needs the release build (make build) and the reference venv (tools/reference/setup_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-2}"
py="${SWIFTCLIP_VENV:-tools/reference/.venv}/bin/python"
out="benchmarks/results/$(date +%F)-train-step${TAG:+-$TAG}"
: > "$out.jsonl"
for batch in 8 32; do
    for precision in fp32 amp_bf16; do
        .build/release/swiftclip bench-train --model convnext_v2_tiny --batch "$batch" --steps "$steps" \
            --precision "$precision" --json \
            | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' >> "$out.jsonl"
    done
    for precision in fp32 amp_bf16; do
        CUDA_VISIBLE_DEVICES= "$py" tools/reference/bench_train_peer.py --model convnext_v2_tiny --batch "$batch" \
            --steps "$steps" --precision "$precision" 2> >(grep -v -e Warning -e warn >&2) >> "$out.jsonl"
    done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + ".jsonl")]
lines = ["# Training step, convnext_v2_tiny: SwiftCLIP against PyTorch, one run", "",
         "`benchmarks/train_step.sh` (forward, ClipLoss, backward, AdamW; 2 threads; after one untimed step, "
         "the median of the timed steps — of two, the slower — and the fastest; images/s from the median; "
         "peak RSS of the process).", "",
         "| batch | system | step (s) | fastest step (s) | images/s | peak RSS (MB) |", "|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['batch']} | {r['system']} | {r['median_step_s']:.2f} | {r['min_step_s']:.2f} | {r['images_per_s']:.2f} | {r['peak_rss_mb']:.0f} |")
for b in sorted({r["batch"] for r in rows}):
    for ours in (r for r in rows if r["batch"] == b and r["system"].startswith("swiftclip")):
        for r in rows:
            if r["batch"] == b and r["system"].startswith("pytorch"):
                lines.append(f"\nBatch {b}: {ours['system']} {ours['images_per_s'] / r['images_per_s']:.2f}× the images/s of "
                             f"{r['system']}, {ours['peak_rss_mb'] / r['peak_rss_mb']:.2f}× its peak RSS.")
open(sys.argv[1] + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
