#!/usr/bin/env bash
# End-to-end demo on built-in inputs: inspect, tokenize, embed, classify, evaluate, export, benchmark
# `make demo` builds first; run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/swiftclip
out=out/demo
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }

step "train convnext_v2_tiny on the built-in synthetic set as the seed did (100 samples, 2 epochs, batch 32)"
rm -rf "$out/synthetic" "$out/logs"
$bin make-synthetic --samples 100 --output "$out/synthetic"
$bin train --model convnext_v2_tiny --train-data "$out/synthetic/train.csv" --csv-caption-key caption \
    --val-data "$out/synthetic/val.csv" --batch-size 32 --epochs 2 --lr 5e-4 --warmup 1 --workers 2 \
    --zeroshot-data "$out/synthetic/val" --zeroshot-templates "$out/synthetic/templates.txt" --zeroshot-frequency 1 \
    --logs "$out/logs" --name synthetic --log-every-n-steps 1
trained="$out/logs/synthetic/checkpoints/epoch_2.safetensors"
echo "zero-shot on the held-out colours after 6 steps from random weights (chance: 1 in 6 = 16.7%):"
$bin eval --model convnext_v2_tiny --weights "$trained" --dataset folder --data "$out/synthetic/val" \
    --templates "$out/synthetic/templates.txt" --batch-size 32
$bin export-onnx --model convnext_v2_tiny --weights "$trained" --tower image --output "$out/trained_image.onnx"
# Hand the run to PyTorch: open_clip_train's epoch_K.pt (python -m open_clip_train.main --resume), and back.
$bin convert "$trained" "$out/epoch_2.pt"
$bin info --model convnext_v2_tiny --weights "$out/epoch_2.pt" | grep "params total"

step "six steps only start to learn (open_clip_train follows the same losses from the same weights: docs/training.md); a tiny ConvNeXt-V2 CLIP given 60 steps learns the colours"
rm -rf "$out/tiny"
$bin make-synthetic --samples 64 --val-samples 120 --image-size 64 --output "$out/tiny"
$bin train --model examples/configs/tiny-convnext-v2-clip.json --train-data "$out/tiny/train.csv" --csv-caption-key caption \
    --batch-size 64 --epochs 60 --lr 1e-4 --warmup 5 --workers 2 --save-frequency 0 \
    --zeroshot-data "$out/tiny/val" --zeroshot-templates "$out/tiny/templates.txt" --zeroshot-frequency 20 \
    --logs "$out/logs" --name tiny --log-every-n-steps 20

step "open-vocabulary detection (docs/detection.md): scenes with boxes, CLIP trained briefly on their captions, a box head on base boxes, novel categories found by name"
rm -rf "$out/scenes" "$out/logs/scenes"
$bin make-synthetic-scenes --samples 320 --val-samples 20 --image-size 128 --output "$out/scenes"
$bin train --model examples/configs/scenes-convnext-v2-clip.json --train-data "$out/scenes/train.csv" --csv-caption-key caption \
    --batch-size 64 --epochs 6 --lr 5e-4 --warmup 5 --workers 2 --save-frequency 6 --logs "$out/logs" --name scenes --log-every-n-steps 10
clip="$out/logs/scenes/checkpoints/epoch_6.safetensors"
$bin train-detector --model examples/configs/scenes-convnext-v2-clip.json --weights "$clip" --image-size 128 \
    --annotations "$out/scenes/instances_train_base.json" --images "$out/scenes/train" --output "$out/detector.safetensors" --epochs 6
novel="red triangle,green circle,blue square,purple triangle,cyan circle"
$bin detect --model examples/configs/scenes-convnext-v2-clip.json --weights "$clip" --detector "$out/detector.safetensors" \
    --labels "$novel" --threshold 0.05 --top-k 5 --draw "$out/detections_novel.png" --json "$out/scenes/val/000000.png"
$bin heatmap --model examples/configs/scenes-convnext-v2-clip.json --weights "$clip" --labels "$novel" --size 256 \
    --output "$out/heatmap.png" "$out/scenes/val/000000.png"
$bin eval-detect --annotations "$out/scenes/instances_val.json" --images "$out/scenes/val" \
    --model examples/configs/scenes-convnext-v2-clip.json --weights "$clip" --detector "$out/detector.safetensors"
echo "drawn: $out/detections_novel.png, $out/heatmap.png (a brief demo run: docs/detection.md has the longer one)"
# The same detection over HTTP (POST /v1/detect answers what detect --json printed; docs/serving.md).
$bin serve --model examples/configs/scenes-convnext-v2-clip.json --weights "$clip" --detector "$out/detector.safetensors" \
    --port 8766 > "$out/serve-detect.log" 2>&1 &
detect_pid=$!
for _ in $(seq 1 600); do curl -sf localhost:8766/ready >/dev/null && break; sleep 0.5; done
curl -s --data-binary @"$out/scenes/val/000000.png" -H 'Content-Type: image/png' \
    "localhost:8766/v1/detect?labels=${novel// /%20}&threshold=0.05&top_k=5"; echo
kill -TERM "$detect_pid"; wait "$detect_pid"

step "model summary: convnext_v2_tiny (open_clip counts 91,687,809 parameters)"
$bin info --model convnext_v2_tiny

step "tokenize captions exactly as open_clip.tokenize does"
$bin tokenize --context-length 12 "a photo of a cat" "a photo of a dog"

step "embed two images (a JPEG photograph, a PNG) and two captions, seeded random weights"
photo=Tests/CLIPDataTests/Fixtures/china.jpg
png=Tests/CLIPDataTests/Fixtures/exact_64x100.png
$bin embed-image --model convnext_v2_tiny --seed 0 --normalize --output "$out/image_embeddings.npy" "$photo" "$png"
$bin embed-text --model convnext_v2_tiny --seed 0 --normalize --output "$out/text_embeddings.npy" "a photo of a temple" "a photo of a flower"
ls -l "$out"/*_embeddings.npy

step "zero-shot classification (random weights: the pipeline runs, the answers are chance)"
$bin classify --model convnext_v2_tiny --seed 0 --labels "temple,flower,car" "$photo" "$png"

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

step "export both towers to ONNX (opset 17, dynamic batch) and check them in ONNX Runtime when .venv-ci exists"
$bin export-onnx --model convnext_v2_tiny --seed 0 --tower image --output "$out/image.onnx"
$bin export-onnx --model convnext_v2_tiny --seed 0 --tower text --output "$out/text.onnx"
ls -l "$out"/*.onnx
if [ -x .venv-ci/bin/python ]; then
    $bin preprocess --model convnext_v2_tiny --output "$out/pixels.npy" "$photo" "$png"
    $bin embed-image --model convnext_v2_tiny --seed 0 --output "$out/swift_image.npy" "$out/pixels.npy"
    .venv-ci/bin/python - "$out" <<'PY'
import sys, numpy as np, onnxruntime as ort
out = sys.argv[1]
x, want = np.load(out + "/pixels.npy"), np.load(out + "/swift_image.npy")
got = ort.InferenceSession(out + "/image.onnx", providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
err = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
print(f"ONNX Runtime on the exported image tower vs SwiftCLIP: max relative error {err.max():.2e}")
PY
fi

step "photo search: index a folder (incremental: the second run reads nothing), then search it by text and by image"
rm -rf "$out/photos" "$out/photos.sqlite"
mkdir -p "$out/photos/trip"
cp Tests/CLIPDataTests/Fixtures/china.jpg Tests/CLIPDataTests/Fixtures/flower.jpg "$out/photos/trip/"
cp Tests/CLIPDataTests/Fixtures/exact_64x100.png Tests/CLIPDataTests/Fixtures/noise_120x90.png "$out/photos/"
$bin index "$out/photos" --db "$out/photos.sqlite" --model convnext_v2_tiny --seed 0
$bin index "$out/photos" --db "$out/photos.sqlite"
$bin search --db "$out/photos.sqlite" "a temple in the mountains" +2:snow -dog --top 3
$bin search --db "$out/photos.sqlite" --image "$out/photos/trip/flower.jpg" --top 2 --json
$bin index --db "$out/photos.sqlite" --status

step "benchmark: image tower and text tower at batch 1 (side by side with PyTorch/ONNX Runtime: make bench)"
$bin bench --model convnext_v2_tiny --tower image --batch-sizes 1 --repeats 10
$bin bench --model convnext_v2_tiny --tower text --batch-sizes 1 --repeats 10
step "benchmark: 8 images, one batched pass (latency) against one pass per image per thread (throughput: index, embed-image)"
$bin bench --model convnext_v2_tiny --tower image --batch-sizes 8 --passes batched,per-thread --repeats 4

step "serve: the HTTP service on the trained weights, a curl per route, SIGTERM (drains, exits 0; docs/serving.md)"
$bin serve --model convnext_v2_tiny --weights "$trained" --port 8765 > "$out/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 600); do curl -sf localhost:8765/ready >/dev/null && break; sleep 0.5; done
curl -s localhost:8765/health; echo
curl -s localhost:8765/ready; echo
curl -s --data-binary @"$photo" -H 'Content-Type: image/jpeg' localhost:8765/v1/embeddings/image | cut -c1-160; echo …
curl -s -H 'Content-Type: application/json' -d '{"texts": ["a photo of a flower"]}' localhost:8765/v1/embeddings/text | cut -c1-160; echo …
curl -s -F image=@"$photo" -F labels=flower,cat,car localhost:8765/v1/classify; echo
curl -s localhost:8765/metrics | grep -E '^swiftclip_(http_requests_total|batch_size_count)' | head -5
kill -TERM "$serve_pid"; wait "$serve_pid"; echo "serve exited with status $?"
