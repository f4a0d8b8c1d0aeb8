#!/usr/bin/env bash
# The ceiling of image batching in the engine alone: per-image time of one image-tower pass at
# several batch sizes, the sizes interleaved (ROUNDS rounds of each size in turn, each a separate
# `swiftclip bench` run of REPEATS timed passes after one warm-up). Prints JSON lines: the median
# wall time per image, and the process's CPU time (user + system, all threads) per image, taken as
# the difference between a run of 1 + REPEATS passes and a run of 1 pass, so that building the model
# cancels out. CPU time is much less disturbed than wall time when other processes share the cores.
# Usage: tools/serve/batch_ceiling.sh [MODEL] [BATCHES] [ROUNDS] [REPEATS]
set -euo pipefail
model=${1:-convnext_v2_tiny}; batches=${2:-"1 4 16 32"}; rounds=${3:-3}; repeats=${4:-3}
bin=${SWIFTCLIP:-.build/release/swiftclip}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cpu() {  # user + system seconds of one bench run with $2 timed passes at batch $1; its JSON to $tmp/out
  /usr/bin/time -f "%U %S" -o "$tmp/time" "$bin" bench --model "$model" --tower image --batch-sizes "$1" --warmup 1 \
    --repeats "$2" --json > "$tmp/out"
  awk '{print $1 + $2}' "$tmp/time"
}
for round in $(seq "$rounds"); do
  for b in $batches; do
    one=$(cpu "$b" 1)
    many=$(cpu "$b" $((1 + repeats)))
    python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))[0]; rnd, b, reps, one, many = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
print(json.dumps({"round": rnd, "model": r["model"], "batch": b, "median_ms": round(r["median_ms"], 1),
      "ms_per_image": round(r["median_ms"] / b, 2), "cpu_ms_per_image": round(1000 * (many - one) / (reps * b), 2)}))' \
      "$tmp/out" "$round" "$b" "$repeats" "$one" "$many"
  done
done
