#!/usr/bin/env bash
# The ceiling of image batching in the engine alone: per-image time of one image-tower pass at
# several batch sizes, the sizes interleaved (ROUNDS rounds of each size in turn, each a separate
# `swiftclip bench` run of REPEATS timed passes after one warm-up). Prints JSON lines.
# Usage: tools/serve/batch_ceiling.sh [MODEL] [BATCHES] [ROUNDS] [REPEATS]
set -euo pipefail
model=${1:-convnext_v2_tiny}; batches=${2:-"1 4 16 32"}; rounds=${3:-3}; repeats=${4:-3}
bin=${SWIFTCLIP:-.build/release/swiftclip}
for round in $(seq "$rounds"); do
  for b in $batches; do
    "$bin" bench --model "$model" --tower image --batch-sizes "$b" --warmup 1 --repeats "$repeats" --json \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(json.dumps({"round": int(sys.argv[1]), "model": r["model"], "batch": r["batch"], "median_ms": round(r["median_ms"], 1), "ms_per_image": round(r["median_ms"] / r["batch"], 2), "images_per_s": round(r["items_per_s"], 2)}))' "$round"
  done
done
