#!/usr/bin/env python3
"""open_clip's zero-shot evaluation of a CIFAR-100 binary test file, timed (the peer of
`swiftclip eval`): build_zero_shot_classifier with CLIP_benchmark's CIFAR-100 names and 18
templates, then open_clip_train.zero_shot.run's loop (PIL image -> eval transform -> model ->
100 * features @ classifier). Prints one JSON line: images/s of the image loop, classifier seconds.

Usage: bench_eval_peer.py --data DIR/cifar-100-binary/test.bin [--model convnext_v2_tiny] [--batch-size 64] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from make_eval_fixtures import CIFAR_TEMPLATES  # noqa: E402


def cifar100_names():
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "CLIPData", "Datasets", "CIFARClassNames.swift")).read()
    block = src.split("public static let cifar100 = [", 1)[1].split("]", 1)[0]
    return [s.strip().strip('"') for s in block.replace("\n", " ").split(",") if s.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="convnext_v2_tiny")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import open_clip
    from PIL import Image
    raw = np.fromfile(a.data, dtype=np.uint8).reshape(-1, 3074)
    labels = torch.tensor(raw[:, 1].astype(np.int64))
    images = raw[:, 2:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    model = C.create_model(a.model, seed=0)
    tokenizer = open_clip.get_tokenizer(a.model)
    size = model.visual.image_size if isinstance(model.visual.image_size, int) else model.visual.image_size[0]
    preprocess = open_clip.image_transform(size, is_train=False)
    names = cifar100_names()
    assert len(names) == 100
    t0 = time.perf_counter()
    classifier = open_clip.build_zero_shot_classifier(model, tokenizer, names, CIFAR_TEMPLATES, device="cpu")
    t1 = time.perf_counter()
    top1 = top5 = 0.0
    with torch.inference_mode():
        for s in range(0, len(images), a.batch_size):
            batch = torch.stack([preprocess(Image.fromarray(im)) for im in images[s:s + a.batch_size]])
            logits = 100. * model(image=batch)[0] @ classifier
            # open_clip_train.zero_shot.accuracy (its float(ndarray) fails on numpy >= 2.4)
            target = labels[s:s + a.batch_size]
            pred = logits.topk(5, 1, True, True)[1].t()
            correct = pred.eq(target.view(1, -1).expand_as(pred))
            top1 += float(correct[:1].sum())
            top5 += float(correct[:5].sum())
    t2 = time.perf_counter()
    n = len(images)
    print(json.dumps({"system": "open_clip", "model": a.model, "n": n, "top1": top1 / n, "top5": top5 / n,
                      "classifier_s": t1 - t0, "images_s": t2 - t1, "images_per_s": n / (t2 - t1),
                      "versions": C.versions()}))


if __name__ == "__main__":
    main()
