#!/usr/bin/env python3
"""Full-size accuracy of SwiftCLIP's reduced precisions against open_clip fp32, on real photos.

  precision_accuracy.py generate --model convnext_v2_tiny --out out/precision/convnext_v2_tiny
      open_clip.create_model(M) (seeded, weights perturbed as full_parity.py does, fp32, eval);
      the fixture photos (Tests/CLIPDataTests/Fixtures: china.jpg, flower.jpg and their
      re-encodings) through open_clip's eval transform -> photos.npy; CAPTIONS -> tokens.npy;
      encode_image / encode_text in fp32 (image_features.npy, text_features.npy) and under
      torch.autocast(cpu, bfloat16) (torch_bf16_*.npy, PyTorch's own bf16 for comparison);
      model.safetensors.
      Zero-shot set: ZS_COUNT random crops of those photos (random box, 0.05–1 of the area),
      through the same transform -> zs_images.npy; "a photo of a {c}." for the 100 CIFAR-100 class
      names (Tests/CLIPEvaluationTests/Fixtures/cifar-100-python/meta) -> zs_tokens.npy; open_clip
      fp32 features of both (zs_image_features.npy, zs_text_features.npy).
  precision_accuracy.py compare --dir D --precisions fp32,bf16,int8
      reads D/swift_<p>_{image,text}.npy and prints, per precision, the worst row's cosine
      similarity with open_clip fp32 and how many rows' zero-shot choice (argmax over the
      captions of image·text, both from that precision) equals open_clip fp32's; then the same
      agreement on the zero-shot set over the 100 CIFAR-100 classes (D/swift_<p>_zs_{image,text}.npy).
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CAPTIONS = [
    "a photo of a flower", "a photo of a temple in china", "a photo of a cat", "a diagram",
    "a red flower in a garden", "an old building with a roof", "a photo of a dog on a beach", "a city at night",
]


ZS_COUNT = 200


def cifar100_names():
    import pickle
    with open(os.path.join(REPO, "Tests", "CLIPEvaluationTests", "Fixtures", "cifar-100-python", "meta"), "rb") as f:
        return [n.replace("_", " ") for n in pickle.load(f, encoding="latin1")["fine_label_names"]]


def photos():
    d = os.path.join(REPO, "Tests", "CLIPDataTests", "Fixtures")
    return sorted(p for p in glob.glob(os.path.join(d, "*.jpg"))
                  if os.path.basename(p).startswith(("china", "flower")))


def generate(a):
    from PIL import Image
    from safetensors.torch import save_file
    import open_clip
    from make_model_fixtures import perturb_

    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    model = C.create_model(a.model, seed=a.seed)
    perturb_(model, torch.Generator().manual_seed(1000 + a.seed))
    cfg = C.model_config(a.model)
    S = cfg["vision_cfg"]["image_size"]
    transform = open_clip.image_transform(S, is_train=False)
    files = photos()
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p in files])
    tokens = open_clip.tokenize(CAPTIONS, context_length=cfg["text_cfg"]["context_length"]).to(torch.int64)
    with torch.no_grad():
        img = model.encode_image(images).numpy()
        txt = model.encode_text(tokens).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img16 = model.encode_image(images).float().numpy()
            txt16 = model.encode_text(tokens).float().numpy()
    sd = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    np.save(os.path.join(a.out, "photos.npy"), images.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "tokens.npy"), tokens.numpy())
    np.save(os.path.join(a.out, "image_features.npy"), img.astype(np.float32))
    np.save(os.path.join(a.out, "text_features.npy"), txt.astype(np.float32))
    np.save(os.path.join(a.out, "torch_bf16_image.npy"), img16.astype(np.float32))
    np.save(os.path.join(a.out, "torch_bf16_text.npy"), txt16.astype(np.float32))
    C.write_json(os.path.join(a.out, "photos.json"), [os.path.relpath(p, REPO) for p in files])
    rng = np.random.default_rng(a.seed)
    sources = [Image.open(p).convert("RGB") for p in files]
    crops = []
    for _ in range(ZS_COUNT):
        im = sources[rng.integers(len(sources))]
        area = rng.uniform(0.05, 1.0) * im.width * im.height
        w = int(min(im.width, max(8, np.sqrt(area * rng.uniform(0.75, 1.33)))))
        h = int(min(im.height, max(8, area / max(w, 1))))
        x, y = rng.integers(0, im.width - w + 1), rng.integers(0, im.height - h + 1)
        crops.append(transform(im.crop((x, y, x + w, y + h))))
    zs_images = torch.stack(crops)
    zs_tokens = open_clip.tokenize([f"a photo of a {c}." for c in cifar100_names()],
                                   context_length=cfg["text_cfg"]["context_length"]).to(torch.int64)
    with torch.no_grad():
        np.save(os.path.join(a.out, "zs_image_features.npy"), model.encode_image(zs_images).numpy().astype(np.float32))
        np.save(os.path.join(a.out, "zs_text_features.npy"), model.encode_text(zs_tokens).numpy().astype(np.float32))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            np.save(os.path.join(a.out, "torch_bf16_zs_image.npy"), model.encode_image(zs_images).float().numpy())
            np.save(os.path.join(a.out, "torch_bf16_zs_text.npy"), model.encode_text(zs_tokens).float().numpy())
    np.save(os.path.join(a.out, "zs_images.npy"), zs_images.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "zs_tokens.npy"), zs_tokens.numpy())
    C.write_json(os.path.join(a.out, "versions.json"), dict(C.versions(), seed=a.seed, captions=CAPTIONS))
    C.log(f"{a.model}: {len(files)} photos, {len(CAPTIONS)} captions -> {a.out}")


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def choices(img, txt):
    return np.argmax((img / np.linalg.norm(img, axis=1, keepdims=True)) @
                     (txt / np.linalg.norm(txt, axis=1, keepdims=True)).T, axis=1)


def compare(a):
    ref_i = np.load(os.path.join(a.dir, "image_features.npy"))
    ref_t = np.load(os.path.join(a.dir, "text_features.npy"))
    ref_choice = choices(ref_i, ref_t)
    rows = [("torch bf16 autocast", "torch_bf16_image.npy", "torch_bf16_text.npy")]
    rows += [(f"swiftclip {p}", f"swift_{p}_image.npy", f"swift_{p}_text.npy") for p in a.precisions.split(",")]
    print("| system | worst image cosine | worst text cosine | zero-shot choice = open_clip fp32 |")
    print("|---|---|---|---|")
    for name, fi, ft in rows:
        i, t = np.load(os.path.join(a.dir, fi)), np.load(os.path.join(a.dir, ft))
        same = int((choices(i, t) == ref_choice).sum())
        print(f"| {name} | {cosines(i, ref_i).min():.6f} | {cosines(t, ref_t).min():.6f} | {same}/{len(ref_choice)} |")
    zi, zt = os.path.join(a.dir, "zs_image_features.npy"), os.path.join(a.dir, "zs_text_features.npy")
    if os.path.exists(zi):
        ref = choices(np.load(zi), np.load(zt))
        print()
        print(f"| system | zero-shot over CIFAR-100 classes, {len(ref)} photo crops: same prediction as open_clip fp32 |")
        print("|---|---|")
        systems = [("torch bf16 autocast", "torch_bf16_zs_image.npy", "torch_bf16_zs_text.npy")]
        systems += [(f"swiftclip {p}", f"swift_{p}_zs_image.npy", f"swift_{p}_zs_text.npy") for p in a.precisions.split(",")]
        for name, fi, ft in systems:
            got = choices(np.load(os.path.join(a.dir, fi)), np.load(os.path.join(a.dir, ft)))
            same = int((got == ref).sum())
            print(f"| {name} | {same}/{len(ref)} ({100 * same / len(ref):.1f}%) |")
        # How close the classes are: the fp32 gap between the best and second-best cosine.
        sims = np.sort((lambda i, t: (i / np.linalg.norm(i, axis=1, keepdims=True)) @
                        (t / np.linalg.norm(t, axis=1, keepdims=True)).T)(np.load(zi), np.load(zt)), axis=1)
        print(f"\nopen_clip fp32 top-1 − top-2 cosine: median {np.median(sims[:, -1] - sims[:, -2]):.2e}, "
              f"spread of a row's cosines (max − min): median {np.median(sims[:, -1] - sims[:, 0]):.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--model", required=True, choices=["convnext_v2_tiny", "ViT-B-32"])
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    c = sub.add_parser("compare")
    c.add_argument("--dir", required=True)
    c.add_argument("--precisions", default="fp32,bf16,int8")
    a = ap.parse_args()
    generate(a) if a.cmd == "generate" else compare(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
