#!/usr/bin/env bash
# Two builds of swiftclip alternated in one run, for a kernel change: inference of both towers of
# convnext_v2_tiny at batch 1 and 32 in every precision (fp32, bf16, int8 interleaved in one process:
# the batch-32 and reduced-precision rows of `make bench`), then one fp32 and one amp_bf16 training
# step at BATCH. Each round runs every configuration with OLD, then NEW (or NEW first in even rounds).
#   benchmarks/kernel_ab.sh OLD_BIN NEW_BIN [ROUNDS=1]
#     -> appends JSON lines to benchmarks/results/<date>-kernel-ab[-TAG].jsonl; the table of medians
#        over every line of that file (run it several times, e.g. one round per quiet window) goes
#        to the terminal and to <same name>.md.
# BATCH (8), TRAIN_STEPS (3) and SKIP_TRAIN (unset) come from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"; new="$2"; rounds="${3:-1}"
out="benchmarks/results/$(date +%F)-kernel-ab${TAG:+-$TAG}"
batch="${BATCH:-8}"; steps="${TRAIN_STEPS:-3}"
tag_lines() { python3 -c 'import json,sys
d=json.load(sys.stdin); rows=d if isinstance(d,list) else [d]
for r in rows: r["binary"]=sys.argv[1]; r["load"]=open("/proc/loadavg").read().split()[0]; print(json.dumps(r))' "$1"; }
for round in $(seq "$rounds"); do
    order="old new"; [ $((round % 2)) = 0 ] && order="new old"
    for which in $order; do
        bin="$old"; [ "$which" = new ] && bin="$new"
        for tower in image text; do
            "$bin" bench --model convnext_v2_tiny --tower "$tower" --batch-sizes 1,32 --precision fp32,bf16,int8 --json \
                | tag_lines "$which" >> "$out.jsonl"
        done
        if [ -z "${SKIP_TRAIN:-}" ]; then
            for precision in fp32 amp_bf16; do
                "$bin" bench-train --model convnext_v2_tiny --batch "$batch" --warmup 2 --steps "$steps" \
                    --precision "$precision" --json | tag_lines "$which" >> "$out.jsonl"
            done
        fi
    done
done
python3 - "$out.jsonl" <<'PY' | tee "$out.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def key(r):
    if "tower" in r: return (r["tower"], r["batch"], r["precision"], "ms/batch")
    return ("train", r["batch"], r["system"], "s/step")
def value(r):
    if "tower" in r: return r["median_ms"]
    return r["median_step_s"]
table = {}
for r in rows:
    table.setdefault(key(r), {}).setdefault(r["binary"], []).append(value(r))
print("| configuration | old (median) | new (median) | new/old | runs |")
print("|---|---|---|---|---|")
for k, v in table.items():
    o, n = v.get("old", []), v.get("new", [])
    if not o or not n: continue
    mo, mn = statistics.median(o), statistics.median(n)
    print(f"| {k[0]} batch {k[1]} {k[2]} ({k[3]}) | {mo:.4g} | {mn:.4g} | {mn/mo:.3f} | {len(o)}+{len(n)} |")
print(f"\nload average at each run (1 min): {sorted(set(r['load'] for r in rows))}")
PY
