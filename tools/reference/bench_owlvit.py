#!/usr/bin/env python3
"""Latency of Hugging Face transformers' OWL-ViT B/32 (random weights from its default config: no
download) at 768 x 768, batch 1, on the CPU: one image and N text queries through
OwlViTForObjectDetection, then post_process_object_detection (threshold 0.1), as the
zero-shot-object-detection pipeline runs it. Prints a JSON line with the per-run times (ms).

Usage: bench_owlvit.py [--repeats 10] [--warmup 3] [--threads 2] [--queries 2]
"""
import argparse, json, os, statistics, sys, time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=2)
    args = ap.parse_args()
    import torch
    import transformers
    from transformers import OwlViTConfig, OwlViTForObjectDetection
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = OwlViTConfig()  # B/32 text and vision towers; vision image_size 768, patch 32
    model = OwlViTForObjectDetection(config).eval()
    size = config.vision_config.image_size
    pixels = torch.randn(1, 3, size, size)
    ids = torch.randint(1, 1000, (args.queries, 16))
    mask = torch.ones_like(ids)
    from transformers.models.owlvit.image_processing_owlvit import OwlViTImageProcessor
    processor = OwlViTImageProcessor()
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            t0 = time.perf_counter()
            out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
            processor.post_process_object_detection(out, threshold=0.1, target_sizes=torch.tensor([[size, size]]))
            dt = (time.perf_counter() - t0) * 1000
            if i >= args.warmup:
                times.append(dt)
    print(json.dumps({"system": "transformers OWL-ViT B/32 fp32", "image_size": size, "threads": args.threads, "queries": args.queries,
                      "median_ms": statistics.median(times), "min_ms": min(times), "times_ms": [round(t, 1) for t in times],
                      "torch": torch.__version__, "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
