#!/usr/bin/env python3
"""Write the small evaluation fixtures committed under Tests/CLIPEvaluationTests/Fixtures/.

Everything is deterministic (seeds fixed). Written files:

  cifar-10-batches-py/{test_batch,batches.meta}
        50 random 32x32 images, labels 0..9 (5 each, shuffled), pickled the way the real CIFAR
        files are (Python 2 cPickle, protocol 2: str keys and data as SHORT_BINSTRING/BINSTRING,
        the array via numpy.core.multiarray._reconstruct)
  cifar-10-batches-bin/{test_batch.bin,batches.meta.txt}   the same 50 images, binary distribution
  cifar-100-python/{test,meta}       4 images, fine labels 0..99, Python 2 style (real format)
  cifar-100-binary/{test.bin,fine_label_names.txt,coarse_label_names.txt}   the same 4 images
  pickle_variants/test_batch_p2py3   CIFAR-10 batch (4 images) pickled by Python 3, protocol 2
                                     (bytes as _codecs.encode(str, 'latin1'))
  pickle_variants/test_batch_p4      same, protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, BINBYTES)
  model/config.json, model/model.safetensors.gz
        the tiny CLIP (ViT: embed_dim 16, 64 px, patch 16, 1 layer, width 32; text: ctx 77,
        vocab 49408, width 32, 2 heads, 1 layer), every parameter re-drawn (make_model_fixtures
        .perturb_); token-embedding rows of tokens that no prompt uses are zeroed so that the
        gzip-compressed file stays small (those rows are never read)
  zeroshot/classifier.npy   float32 (16, 10): open_clip.build_zero_shot_classifier with the
                            CLIP_benchmark CIFAR-10 classnames and 18 templates
  zeroshot/logits.npy       float32 (50, 10): 100 * image_features @ classifier, as
                            open_clip_train.zero_shot.run computes them (images through
                            open_clip's eval transform on PIL images)
  zeroshot/predictions.npy  int64 (50,) argmax; zeroshot/result.json: top1, top5, n
  retrieval/{data.csv,*.png}, retrieval/metrics.json
        12 random 40x30 PNGs + captions (tab-separated, open_clip's CSV format);
        open_clip_train.train.get_clip_metrics on the model's normalised features
  versions.json

Usage: $VENV/bin/python tools/reference/make_eval_fixtures.py [--out DIR]
"""
import argparse
import gzip
import io
import json
import os
import pickle
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from make_model_fixtures import perturb_  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "Tests", "CLIPEvaluationTests", "Fixtures")

CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

# CLIP_benchmark (clip_benchmark/datasets/cifar10.py, from OpenAI CLIP's prompts.md).
CIFAR_TEMPLATES = [
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
    "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
    "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
    "a photo of the small {}.", "a photo of the big {}.",
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote the CIFAR files: bytes are py2 `str`
    (SHORT_BINSTRING / BINSTRING), numpy's reconstructor under its old module name."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)
    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        name = name or obj.__qualname__
        if module == "numpy._core.multiarray":
            module = "numpy.core.multiarray"
        if module == "numpy" or module.startswith("numpy."):
            self.write(pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)
    dispatch[type] = save_global


def py2_pickle(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def cifar10_batch(images, labels):
    return {b"batch_label": b"testing batch 1 of 1", b"labels": [int(x) for x in labels],
            b"data": images.reshape(len(images), 3072),
            b"filenames": [b"img_%04d.png" % i for i in range(len(images))]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    out = ap.parse_args().out
    rng = np.random.default_rng(20240604)

    # --- datasets -------------------------------------------------------------------------
    n = 50
    labels = rng.permutation(np.repeat(np.arange(10), 5))
    # channels-first planes like CIFAR: (N, 3, 32, 32)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    write(f"{out}/cifar-10-batches-py/test_batch", py2_pickle(cifar10_batch(images, labels)))
    write(f"{out}/cifar-10-batches-py/batches.meta",
          py2_pickle({b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                      b"num_vis": 3072}))
    write(f"{out}/cifar-10-batches-bin/test_batch.bin",
          b"".join(bytes([labels[i]]) + images[i].tobytes() for i in range(n)))
    write(f"{out}/cifar-10-batches-bin/batches.meta.txt", ("\n".join(CIFAR10_CLASSES) + "\n\n").encode())

    fine_names = [f"fine_{i:02d}" for i in range(100)]
    coarse_names = [f"coarse_{i:02d}" for i in range(20)]
    small = images[:4]
    fine = [0, 99, 42, 7]
    coarse = [0, 19, 3, 11]
    write(f"{out}/cifar-100-python/test", py2_pickle({
        b"filenames": [b"a.png", b"b.png", b"c.png", b"d.png"], b"batch_label": b"testing batch 1 of 1",
        b"fine_labels": fine, b"coarse_labels": coarse, b"data": small.reshape(4, 3072)}))
    write(f"{out}/cifar-100-python/meta", py2_pickle({
        b"fine_label_names": [s.encode() for s in fine_names],
        b"coarse_label_names": [s.encode() for s in coarse_names]}))
    write(f"{out}/cifar-100-binary/test.bin",
          b"".join(bytes([coarse[i], fine[i]]) + small[i].tobytes() for i in range(4)))
    write(f"{out}/cifar-100-binary/fine_label_names.txt", ("\n".join(fine_names) + "\n").encode())
    write(f"{out}/cifar-100-binary/coarse_label_names.txt", ("\n".join(coarse_names) + "\n").encode())

    variant = cifar10_batch(small, labels[:4])
    write(f"{out}/pickle_variants/test_batch_p2py3", pickle.dumps(variant, protocol=2))
    write(f"{out}/pickle_variants/test_batch_p4", pickle.dumps(variant, protocol=4))

    # --- model ----------------------------------------------------------------------------
    import open_clip
    C.register_configs({"eval_tiny": CONFIG})
    model = C.create_model("eval_tiny", seed=0)
    gen = torch.Generator().manual_seed(7)
    perturb_(model, gen)
    tokenizer = open_clip.get_tokenizer("eval_tiny")
    # Zero the rows of token_embedding that no prompt uses (never read; keeps the file small).
    used = set()
    for c in CIFAR10_CLASSES:
        used |= set(tokenizer([t.format(c) for t in CIFAR_TEMPLATES]).flatten().tolist())
    captions = [f"a photo of a {c} number {i}" for i, c in enumerate((CIFAR10_CLASSES * 2)[:12])]
    used |= set(tokenizer(captions).flatten().tolist())
    with torch.no_grad():
        mask = torch.zeros(49408, dtype=torch.bool)
        mask[sorted(used)] = True
        model.token_embedding.weight[~mask] = 0
    os.makedirs(f"{out}/model", exist_ok=True)
    cfg = dict(CONFIG)
    C.write_json(f"{out}/model/config.json", cfg)
    from safetensors.torch import save
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with open(f"{out}/model/model.safetensors.gz", "wb") as f:
        f.write(gzip.compress(save(state), compresslevel=9, mtime=0))

    # --- zero-shot, as open_clip_train.zero_shot does -------------------------------------
    from PIL import Image
    preprocess = open_clip.image_transform(CONFIG["vision_cfg"]["image_size"], is_train=False)
    classifier = open_clip.build_zero_shot_classifier(model, tokenizer, CIFAR10_CLASSES, CIFAR_TEMPLATES,
                                                      num_classes_per_batch=10, device="cpu")
    hwc = images.transpose(0, 2, 3, 1)
    batch = torch.stack([preprocess(Image.fromarray(hwc[i])) for i in range(n)])
    with torch.no_grad():
        feats = model(image=batch)[0]  # image_features, normalised (what zero_shot.run uses)
        logits = 100.0 * feats @ classifier
    pred = logits.argmax(dim=1)
    top5 = logits.topk(5, 1, True, True)[1]
    target = torch.tensor(labels)
    os.makedirs(f"{out}/zeroshot", exist_ok=True)
    np.save(f"{out}/zeroshot/classifier.npy", classifier.numpy().astype(np.float32))
    np.save(f"{out}/zeroshot/logits.npy", logits.numpy().astype(np.float32))
    np.save(f"{out}/zeroshot/predictions.npy", pred.numpy().astype(np.int64))
    srt = np.sort(logits.numpy(), axis=1)
    C.write_json(f"{out}/zeroshot/result.json", {
        "n": n, "top1": float((pred == target).float().mean()),
        "top5": float((top5 == target[:, None]).any(dim=1).float().mean()),
        "min_top2_margin": float((srt[:, -1] - srt[:, -2]).min())})

    # --- retrieval ------------------------------------------------------------------------
    from open_clip_train.train import get_clip_metrics
    os.makedirs(f"{out}/retrieval", exist_ok=True)
    pil = []
    rows = ["filepath\ttitle"]
    for i, cap in enumerate(captions):
        arr = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
        im = Image.fromarray(arr)
        im.save(f"{out}/retrieval/img_{i:02d}.png")
        pil.append(Image.open(f"{out}/retrieval/img_{i:02d}.png").convert("RGB"))
        rows.append(f"img_{i:02d}.png\t{cap}")
    write(f"{out}/retrieval/data.csv", ("\n".join(rows) + "\n").encode())
    with torch.no_grad():
        image_features, text_features, logit_scale = model(image=torch.stack([preprocess(p) for p in pil]),
                                                           text=tokenizer(captions))
        metrics = get_clip_metrics(image_features, text_features, logit_scale)
    C.write_json(f"{out}/retrieval/metrics.json", {k: float(v) for k, v in metrics.items()})

    C.write_json(f"{out}/versions.json", C.versions())
    C.log("wrote", out, "top1", float((pred == target).float().mean()))


if __name__ == "__main__":
    main()
