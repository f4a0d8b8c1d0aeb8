#!/usr/bin/env bash
# Issue 4 benchmark (not a test): a CIFAR-100-sized zero-shot evaluation (N generated images in the
# binary distribution's format, default 10,000), SwiftCLIP vs open_clip, one run, same machine,
# same file, one after the other. Prints each system's images/s (image loop) and classifier time.
#
#   benchmarks/run_eval.sh                 # convnext_v2_tiny, 10,000 images, batch 64
#   N=256 benchmarks/run_eval.sh           # a quick check
# Env: MODEL (default convnext_v2_tiny), N, BATCH (default 64), SWIFTCLIP_VENV, SWIFTCLIP_BIN.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
py="${SWIFTCLIP_VENV:-$repo/tools/reference/.venv}/bin/python"
bin="${SWIFTCLIP_BIN:-$repo/.build/release/swiftclip}"
model="${MODEL:-convnext_v2_tiny}"; n="${N:-10000}"; batch="${BATCH:-64}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/cifar-100-binary"
python3 - "$work/cifar-100-binary/test.bin" "$n" <<'PY'
import os, sys
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    for i in range(n):
        f.write(bytes([i % 20, i % 100]) + os.urandom(3072))
PY
echo "== swiftclip ($model, $n images, batch $batch)"
"$bin" eval --model "$model" --seed 0 --dataset cifar100 --data "$work" --batch-size "$batch" --json "$work/swift.json"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('swiftclip images/s: %.2f' % (j['n']/j['seconds']))" "$work/swift.json"
echo "== open_clip ($model, $n images, batch $batch)"
"$py" tools/reference/bench_eval_peer.py --data "$work/cifar-100-binary/test.bin" --model "$model" --batch-size "$batch"
