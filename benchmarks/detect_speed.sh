#!/usr/bin/env bash
# detect latency per image, batch 1, 768 x 768: SwiftCLIP convnext_v2_tiny (+ box head, 2 labels) in
# fp32 / bf16 / int8 with each CLIP region score, against transformers' OWL-ViT B/32 (random weights,
# post-processing included), interleaved, ROUNDS rounds. Random backbone weights: latency does not
# depend on them, but how many boxes reach --threshold does, so the latency line says how many boxes
# were scored and re-encoded; "threshold 0" rows re-encode the most boxes mask and crop allow
# (--encoded-regions, default 10): the worst case.
# Usage: benchmarks/detect_speed.sh HEAD.safetensors IMAGE.png [ROUNDS] [REPEATS] [REGIONS] [PRECISIONS]
#   REGIONS: space-separated "name:detect options" (default below); PRECISIONS default "fp32 bf16 int8".
set -euo pipefail
head=$1 image=$2 rounds=${3:-2} repeats=${4:-10}
regions=${5:-"roiAlign:--region-embedding roiAlign|mask:--region-embedding mask|mask-t0:--region-embedding mask --threshold 0|crop-t0:--region-embedding crop --threshold 0"}
precisions=${6:-"fp32 bf16 int8"}
bin=${BIN:-.build/release/swiftclip}
py=tools/reference/.venv/bin/python
lscpu | grep -E "Model name|^CPU\(s\)" || true
for r in $(seq 1 "$rounds"); do
    echo "== round $r ($(cut -d' ' -f1-3 /proc/loadavg) load average)"
    for p in $precisions; do
        IFS='|' read -ra rows <<< "$regions"
        for row in "${rows[@]}"; do
            name=${row%%:*} opts=${row#*:}
            # shellcheck disable=SC2086
            echo "$name: $($bin detect --model convnext_v2_tiny --detector "$head" --precision "$p" --size 768 --labels "red circle,blue square" \
                $opts --repeats "$repeats" --threads 2 "$image" 2>&1 >/dev/null | grep "detect latency")"
        done
    done
    CUDA_VISIBLE_DEVICES= $py tools/reference/bench_owlvit.py --repeats "$repeats" --threads 2
done
