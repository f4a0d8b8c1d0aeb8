#!/usr/bin/env python3
"""Full-size parity references (convnext_v2_tiny, ViT-B-32) and the comparison.

  full_parity.py generate --model convnext_v2_tiny --out out/parity/convnext_v2_tiny
      open_clip.create_model(M) (seeded random init, eval, fp32); by default every parameter is then
      re-drawn with make_model_fixtures.perturb_ (so GRN weight/bias, LayerNorms, logit_scale
      are not at their trivial init values and actually get tested; --init open_clip keeps
      open_clip/timm's init). Writes model.safetensors (fp32, open_clip keys), images.npy
      float32 (2,3,224,224) N(0,1), tokens.npy int64 (3,77) = open_clip.tokenize(CAPTIONS),
      image_features.npy / text_features.npy (encode_image / encode_text, normalize=False),
      config.json, reference_error.json (torch fp32 vs fp64), versions.json.
  full_parity.py compare --expected E.npy --actual A.npy --name LABEL [--tol 1e-4]
      prints one table row; exit status 1 if either error exceeds --tol.
"""
import argparse
import copy
import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

CAPTIONS = [
    "a photo of a cat",
    "a diagram of a ConvNeXt V2 image encoder next to a text transformer, drawn in blue ink",
    # longer than the 77-token context: open_clip.tokenize truncates and puts eot in the last slot
    " ".join(["a very long caption about a dog running on the beach at sunset"] * 8),
]


def generate(a):
    from safetensors.torch import save_file
    import open_clip
    from make_model_fixtures import perturb_

    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    model = C.create_model(a.model, seed=a.seed)
    if a.init == "perturbed":
        perturb_(model, torch.Generator().manual_seed(1000 + a.seed))
    cfg = C.model_config(a.model)
    S = cfg["vision_cfg"]["image_size"]
    rng = np.random.default_rng(a.seed)
    images = rng.standard_normal((2, 3, S, S)).astype(np.float32)
    tokens = open_clip.tokenize(CAPTIONS, context_length=cfg["text_cfg"]["context_length"]).to(torch.int64)
    with torch.no_grad():
        img = model.encode_image(torch.from_numpy(images)).numpy()
        txt = model.encode_text(tokens).numpy()
        m64 = copy.deepcopy(model).double()
        img64 = m64.encode_image(torch.from_numpy(images).double()).numpy()
        txt64 = m64.encode_text(tokens).numpy()
        del m64
    sd = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    np.save(os.path.join(a.out, "images.npy"), images)
    np.save(os.path.join(a.out, "tokens.npy"), tokens.numpy().astype(np.int64))
    np.save(os.path.join(a.out, "image_features.npy"), img.astype(np.float32))
    np.save(os.path.join(a.out, "text_features.npy"), txt.astype(np.float32))
    C.write_json(os.path.join(a.out, "config.json"), cfg)
    C.write_json(os.path.join(a.out, "params.json"), C.param_split(model))
    C.write_json(os.path.join(a.out, "reference_error.json"), {
        "what": "torch fp32 vs torch fp64, same weights: [max row ||a-b||/||b||, max|a-b|/max|b|]",
        "image_features": C.rel_errors(img, img64),
        "text_features": C.rel_errors(txt, txt64),
    })
    C.write_json(os.path.join(a.out, "versions.json"),
                 dict(C.versions(), init=a.init, seed=a.seed, captions=CAPTIONS))
    C.log(f"{a.model}: wrote {a.out} ({C.param_split(model)['total']:,} params; torch fp32 vs fp64: "
          f"image {C.rel_errors(img, img64)}, text {C.rel_errors(txt, txt64)})")


def compare(a):
    exp = np.load(a.expected)
    act = np.load(a.actual)
    if exp.shape != act.shape:
        print(f"| {a.name} | shape {act.shape} != expected {exp.shape} | | FAIL |")
        return 1
    if not np.all(np.isfinite(act)):
        print(f"| {a.name} | non-finite values in output | | FAIL |")
        return 1
    row, mx = C.rel_errors(act, exp)
    ok = row <= a.tol and mx <= a.tol
    print(f"| {a.name} | {row:.3e} | {mx:.3e} | {'ok' if ok else 'FAIL'} |")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--model", required=True, choices=["convnext_v2_tiny", "ViT-B-32"])
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--init", choices=["perturbed", "open_clip"], default="perturbed")
    g.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    c = sub.add_parser("compare")
    c.add_argument("--expected", required=True)
    c.add_argument("--actual", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    if a.cmd == "generate":
        generate(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
