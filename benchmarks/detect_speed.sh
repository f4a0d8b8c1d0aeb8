#!/usr/bin/env bash
# detect latency per image, batch 1, 768 x 768: SwiftCLIP convnext_v2_tiny (+ box head, 2 labels) in
# fp32 / bf16 / int8 against transformers' OWL-ViT B/32 (random weights, post-processing included),
# interleaved, ROUNDS rounds. Random backbone weights: latency does not depend on them.
# Usage: benchmarks/detect_speed.sh HEAD.safetensors IMAGE.png [ROUNDS] [REPEATS]
set -euo pipefail
head=$1 image=$2 rounds=${3:-2} repeats=${4:-10}
bin=.build/release/swiftclip
py=tools/reference/.venv/bin/python
lscpu | grep -E "Model name|^CPU\(s\)" || true
for r in $(seq 1 "$rounds"); do
    echo "== round $r"
    for p in fp32 bf16 int8; do
        $bin detect --model convnext_v2_tiny --detector "$head" --precision "$p" --size 768 --labels "red circle,blue square" \
            --repeats "$repeats" --threads 2 "$image" 2>&1 >/dev/null | grep "detect latency"
    done
    CUDA_VISIBLE_DEVICES= $py tools/reference/bench_owlvit.py --repeats "$repeats" --threads 2
done
