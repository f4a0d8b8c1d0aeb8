#!/usr/bin/env bash
# One training step of convnext_v2_tiny, SwiftCLIP against PyTorch, each in fp32 and bf16 (SwiftCLIP's
# amp_bf16, PyTorch's autocast), at steady state: WARMUP untimed steps (PyTorch's CPU steps take 3-4
# steps to settle: its allocator and first-touch page faults), then STEPS timed ones, every step's time
# printed in order and the median reported. Systems alternate per precision and batch size (timings
# drift on shared machines: compare only inside one run); the load average is recorded before and
# after. One configuration per process (peak RSS is its own).
#   [TAG=name] [BATCHES="8 32"] benchmarks/train_step.sh [STEPS=5] [WARMUP=4]
#     -> benchmarks/results/<date>-train-step[-TAG].{jsonl,md}
# Needs the release build (make build) and the reference venv (tools/reference/setup_venv.sh).
# SWIFTCLIP_BIN picks another build of swiftclip (default .build/release/swiftclip).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-5}"
warmup="${2:-4}"
py="${SWIFTCLIP_VENV:-tools/reference/.venv}/bin/python"
bin="${SWIFTCLIP_BIN:-.build/release/swiftclip}"
out="benchmarks/results/$(date +%F)-train-step${TAG:+-$TAG}"
: > "$out.jsonl"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for batch in ${BATCHES:-8 32}; do
    for precision in fp32 amp_bf16; do
        "$bin" bench-train --model convnext_v2_tiny --batch "$batch" --steps "$steps" --warmup "$warmup" \
            --precision "$precision" --json \
            | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' >> "$out.jsonl"
        CUDA_VISIBLE_DEVICES= "$py" tools/reference/bench_train_peer.py --model convnext_v2_tiny --batch "$batch" \
            --warmup "$warmup" --steps "$steps" --precision "$precision" 2> >(grep -v -e Warning -e warn >&2) >> "$out.jsonl"
    done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
python3 - "$out" "$warmup" "$steps" "$load_before" "$load_after" "$cpu" <<'PY'
import json, sys
out, warmup, steps, before, after, cpu = sys.argv[1:]
rows = [json.loads(l) for l in open(out + ".jsonl")]
fmt = lambda ts: ", ".join(f"{t:.2f}" for t in ts)
lines = ["# Training step, convnext_v2_tiny: SwiftCLIP against PyTorch at steady state, one run", "",
         f"`benchmarks/train_step.sh {steps} {warmup}` on {cpu} (forward, ClipLoss, backward, AdamW; 2 threads; "
         f"{warmup} untimed warm-up steps, then the median of {steps} timed steps; images/s from the median; "
         f"peak RSS of the process). Systems alternate per precision and batch size. Load average (1, 5, 15 min) "
         f"before: {before}; after: {after} — above 2 on these 2 CPUs means other processes shared them.", "",
         "| batch | system | median step (s) | fastest (s) | images/s | peak RSS (MB) | warm-up steps (s) | timed steps in order (s) |",
         "|---|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['batch']} | {r['system']} | {r['median_step_s']:.2f} | {r['min_step_s']:.2f} | {r['images_per_s']:.2f} "
                 f"| {r['peak_rss_mb']:.0f} | {fmt(r.get('warmup_step_s', []))} | {fmt(r.get('step_s', []))} |")
for b in sorted({r["batch"] for r in rows}):
    for ours in (r for r in rows if r["batch"] == b and r["system"].startswith("swiftclip")):
        for r in rows:
            if r["batch"] == b and r["system"].startswith("pytorch"):
                lines.append(f"\nBatch {b}: {ours['system']} {ours['images_per_s'] / r['images_per_s']:.2f}× the images/s of "
                             f"{r['system']}, {ours['peak_rss_mb'] / r['peak_rss_mb']:.2f}× its peak RSS.")
import os
if max(float(before.split()[0]), float(after.split()[0])) > (os.cpu_count() or 1):
    lines.append(f"\n**The load average exceeded the {os.cpu_count()} CPUs: other processes shared them, and PyTorch's "
                 "threads suffer far more from that than SwiftCLIP's (it waits for all of them at every operator): "
                 "these ratios are not steady-state ratios of the two systems. Rerun on a quiet machine.**")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
