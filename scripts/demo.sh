#!/usr/bin/env bash
# End-to-end demo on built-in inputs (grows as training, evaluation and export land).
# `make demo` builds first; run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/swiftclip
out=out/demo
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }

step "model summary: convnext_v2_tiny (open_clip counts 91,687,809 parameters)"
$bin info --model convnext_v2_tiny

step "embed a built-in sample input: 2 random preprocessed images and 2 token rows, seeded weights"
python3 - "$out" <<'PY'
import struct, sys, random
# A tiny .npy writer (no numpy needed): (2, 3, 224, 224) float32 noise and (2, 77) int32 tokens.
def npy(path, descr, shape, values, fmt):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%d%s" % (len(values), fmt), *values))
rng = random.Random(0)
npy(sys.argv[1] + "/images.npy", "<f4", (2, 3, 224, 224), [rng.gauss(0, 1) for _ in range(2 * 3 * 224 * 224)], "f")
rows = []
for n in (5, 9):  # [start_of_text, words..., end_of_text, padding]
    rows += [49406] + [rng.randrange(1, 49405) for _ in range(n)] + [49407] + [0] * (75 - n)
npy(sys.argv[1] + "/tokens.npy", "<i4", (2, 77), rows, "i")
PY
$bin embed-image --model convnext_v2_tiny --seed 0 --normalize --output "$out/image_embeddings.npy" "$out/images.npy"
$bin embed-text --model convnext_v2_tiny --seed 0 --normalize --tokens "$out/tokens.npy" --output "$out/text_embeddings.npy"
ls -l "$out"/*_embeddings.npy

step "zero-shot CIFAR-100 evaluation (binary distribution, 64 generated images, seeded random model: ~1% expected)"
python3 - "$out" <<'PY'
import os, random, sys
d = os.path.join(sys.argv[1], "cifar-100-binary")
os.makedirs(d, exist_ok=True)
rng = random.Random(0)
with open(os.path.join(d, "test.bin"), "wb") as f:   # records: coarse label, fine label, 3072 pixels
    for i in range(64):
        f.write(bytes([i % 20, i % 100]) + bytes(rng.randrange(256) for _ in range(3072)))
PY
$bin eval --model convnext_v2_tiny --seed 0 --dataset cifar100 --data "$out" --batch-size 32 --json "$out/cifar100.json"

step "benchmark: image tower at batch 1, text tower at batch 1"
$bin bench --model convnext_v2_tiny --tower image --batch-sizes 1 --repeats 5
$bin bench --model convnext_v2_tiny --tower text --batch-sizes 1 --repeats 5
