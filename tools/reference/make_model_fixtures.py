#!/usr/bin/env python3
"""Write the small open_clip parity fixtures committed under Tests/CLIPModelsTests/Fixtures/.

For each tiny config below: build the model through open_clip's own factory (config JSON in a
temp dir -> open_clip.add_model_config -> open_clip.create_model), eval mode, fp32, seeded;
overwrite EVERY parameter with fresh random values of a sensible scale (timm initialises GRN
weight/bias to zero, V1 layer-scale gamma to 1e-6, LayerNorms to 1/0 — parity tests on such
weights would not notice if those parameters were ignored); round the weights to the fixture's
storage dtype and back to fp32; then record inputs and the model's outputs.

Per fixture directory (Tests/CLIPModelsTests/Fixtures/<name>/):
  config.json          the exact open_clip config used (model name = <name>)
  model.safetensors    model.state_dict(), open_clip's keys, stored in the fixture dtype
  images.npy           float32 (3, 3, S, S), standard normal
  tokens.npy           int64 (4, context_length): [sot, ids..., eot, 0...]; sot = vocab-2,
                       eot = vocab-1 (so argmax pooling finds eot); row 0 fills the context
  image_features.npy   float32 (3, embed_dim) = model.encode_image(images)            (normalize=False)
  text_features.npy    float32 (4, embed_dim) = model.encode_text(tokens)             (normalize=False)
  logit_scale.npy      float32 () — the raw parameter (not exp'd)
  params.json          {"visual", "text", "total", "dtype", "split"} — see _common.param_split
  reference_error.json how far torch fp32 is from torch fp64 on the same weights (the noise floor)
  versions.json        python, torch, timm, open_clip, numpy, safetensors

Also writes Fixtures/param_counts.json and Fixtures/state_dict_shapes/<name>.json for the
full-size configs (convnext_v2_tiny, ViT-B-32, and the ConvNeXt family on the
convnext_v2_tiny template), so the Swift loader can check key/shape sets against open_clip's.

Usage: make_model_fixtures.py [--out DIR] [--only NAME ...] [--skip-param-counts]
"""
import argparse
import copy
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "Tests", "CLIPModelsTests", "Fixtures")

TINY_TEXT = {"context_length": 16, "vocab_size": 1000, "width": 64, "heads": 2, "layers": 2}

FIXTURES = {
    # a) ConvNeXt-V2 atto trunk, avg pool, linear proj (the convnext_v2_tiny head shape)
    "convnext_v2_atto": (
        {
            "embed_dim": 32,
            "vision_cfg": {
                "timm_model_name": "convnextv2_atto", "timm_model_pretrained": False,
                "timm_pool": "avg", "timm_proj": "linear", "timm_drop": 0.0,
                "timm_drop_path": 0.1, "image_size": 64,
            },
            "text_cfg": dict(TINY_TEXT),
        },
        torch.float16,
    ),
    # b) tiny open_clip VisionTransformer (heads = width // head_width = 2), QuickGELU everywhere
    "vit_tiny_quickgelu": (
        {
            "embed_dim": 32,
            "quick_gelu": True,
            "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
            "text_cfg": dict(TINY_TEXT),
        },
        torch.float32,
    ),
    # c) ConvNeXt V1 atto trunk (layer-scale gamma, no GRN), pool "" (= trunk default, avg),
    #    MLP projection with biases
    "convnext_atto_mlp": (
        {
            "embed_dim": 32,
            "vision_cfg": {
                "timm_model_name": "convnext_atto", "timm_model_pretrained": False,
                "timm_pool": "", "timm_proj": "mlp", "timm_proj_bias": True, "timm_drop": 0.0,
                "timm_drop_path": 0.1, "image_size": 64,
            },
            "text_cfg": dict(TINY_TEXT),
        },
        torch.bfloat16,
    ),
    # d) proj "" -> the trunk's own classifier (visual.trunk.head.fc, with bias) projects
    "convnext_v2_atto_trunkfc": (
        {
            "embed_dim": 32,
            "vision_cfg": {
                "timm_model_name": "convnextv2_atto", "timm_model_pretrained": False,
                "timm_pool": "avg", "timm_proj": "", "timm_drop": 0.0,
                "timm_drop_path": 0.1, "image_size": 32,
            },
            "text_cfg": dict(TINY_TEXT, layers=1),
        },
        torch.float16,
    ),
}

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def layernorm_param_names(model):
    names = set()
    for mname, m in model.named_modules():
        if isinstance(m, torch.nn.LayerNorm):
            for pname, _ in m.named_parameters(recurse=False):
                names.add(f"{mname}.{pname}" if mname else pname)
    return names


@torch.no_grad()
def perturb_(model, gen):
    """Overwrite every parameter with fresh random values of a sensible scale."""
    ln_names = layernorm_param_names(model)

    def randn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if name in ("logit_scale", "logit_bias"):
            v = math.log(1 / 0.07) + 0.5 * randn(p.shape)
        elif name in ln_names and leaf == "weight":
            v = 1.0 + 0.25 * randn(p.shape)          # LayerNorm / LayerNorm2d scale
        elif name.endswith("grn.weight"):
            v = 0.5 * randn(p.shape)                  # GRN gamma (timm init: zeros)
        elif leaf == "gamma":
            v = 0.5 + 0.25 * randn(p.shape)           # ConvNeXt V1 layer scale (timm init: 1e-6)
        elif p.ndim <= 1 and name not in ("class_embedding",):
            v = 0.2 * randn(p.shape)                  # biases, LN/GRN biases
        elif name == "class_embedding":
            v = 0.5 * randn(p.shape)
        elif name.endswith("positional_embedding"):
            v = 0.5 * randn(p.shape)
        elif name == "token_embedding.weight":
            v = randn(p.shape)
        elif name in ("text_projection", "visual.proj"):
            v = randn(p.shape) / math.sqrt(p.shape[0])   # stored (in, out); used as x @ W
        else:
            fan_in = p[0].numel()                     # torch layout (out, in, kh, kw) / (out, in)
            v = randn(p.shape) / math.sqrt(fan_in)
        p.copy_(v)


@torch.no_grad()
def round_weights_(model, dtype):
    for p in model.parameters():
        p.copy_(p.to(dtype).to(torch.float32))


def make_tokens(rng, n, ctx, vocab):
    sot, eot = vocab - 2, vocab - 1
    lengths = [ctx, 5, 2, ctx - 5][:n]                # total length incl. sot & eot
    toks = np.zeros((n, ctx), dtype=np.int64)
    for i, L in enumerate(lengths):
        toks[i, 0] = sot
        toks[i, 1:L - 1] = rng.integers(1, vocab - 2, size=L - 2)
        toks[i, L - 1] = eot
    return toks


@torch.no_grad()
def sensitivity_check(model, images, tokens, gen):
    """Every parameter must change the output when nudged (catches dead parameters)."""
    base_i = model.encode_image(images)
    base_t = model.encode_text(tokens)
    dead = []
    for name, p in model.named_parameters():
        old = p.detach().clone()
        p.add_(0.05 * torch.randn(p.shape, generator=gen) * (old.abs().mean() + 1e-3))
        di = (model.encode_image(images) - base_i).abs().max().item()
        dt = (model.encode_text(tokens) - base_t).abs().max().item()
        p.copy_(old)
        if name == "logit_scale":
            continue  # only used by the loss / logits, not by the encoders
        if max(di, dt) < 1e-6:
            dead.append(name)
    return dead


def make_fixture(name, cfg, dtype, out_root, seed=0):
    from safetensors.torch import save_file

    C.register_configs({name: cfg})
    model = C.create_model(name, seed=seed)
    gen = torch.Generator().manual_seed(1000 + seed)
    perturb_(model, gen)
    round_weights_(model, dtype)

    sd = model.state_dict()
    names = [n for n, _ in model.named_parameters()]
    assert sorted(sd.keys()) == sorted(names), "state_dict has non-parameter entries"

    rng = np.random.default_rng(seed)
    S = cfg["vision_cfg"]["image_size"]
    tc = cfg["text_cfg"]
    images = rng.standard_normal((3, 3, S, S)).astype(np.float32)
    tokens = make_tokens(rng, 4, tc["context_length"], tc["vocab_size"])

    ti, tt = torch.from_numpy(images), torch.from_numpy(tokens)
    with torch.no_grad():
        img = model.encode_image(ti).numpy().astype(np.float32)
        txt = model.encode_text(tt).numpy().astype(np.float32)
        m64 = copy.deepcopy(model).double()
        img64 = m64.encode_image(ti.double()).numpy()
        txt64 = m64.encode_text(tt).numpy()
    dead = sensitivity_check(model, ti, tt, gen)
    if dead:
        raise SystemExit(f"{name}: parameters with no effect on the outputs: {dead}")

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    C.write_json(os.path.join(d, "config.json"), cfg)
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in sd.items()}
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    np.save(os.path.join(d, "images.npy"), images)
    np.save(os.path.join(d, "tokens.npy"), tokens)
    np.save(os.path.join(d, "image_features.npy"), img)
    np.save(os.path.join(d, "text_features.npy"), txt)
    np.save(os.path.join(d, "logit_scale.npy"), model.logit_scale.detach().numpy().astype(np.float32))
    params = C.param_split(model)
    params["dtype"] = DTYPE_NAMES[dtype]
    params["split"] = ("visual = parameters named visual.*; text = total - visual "
                       "(includes logit_scale); total = sum(p.numel() for p in model.parameters())")
    C.write_json(os.path.join(d, "params.json"), params)
    C.write_json(os.path.join(d, "reference_error.json"), {
        "what": "torch fp32 vs torch fp64 on the same (rounded) weights: "
                "[max row ||a-b||/||b||, max|a-b|/max|b|]",
        "image_features": C.rel_errors(img, img64),
        "text_features": C.rel_errors(txt, txt64),
    })
    C.write_json(os.path.join(d, "versions.json"), C.versions())
    C.log(f"{name}: {params['total']:,} params ({params['dtype']}), "
          f"image {img.shape} text {txt.shape}, fp32-vs-fp64 image {C.rel_errors(img, img64)[0]:.2e} "
          f"text {C.rel_errors(txt, txt64)[0]:.2e}")


def family_configs():
    cfgs = {"convnext_v2_tiny": C.CONVNEXT_V2_TINY}
    for trunk in ["convnextv2_atto", "convnextv2_femto", "convnextv2_pico", "convnextv2_nano",
                  "convnextv2_base", "convnext_tiny", "convnext_atto"]:
        c = copy.deepcopy(C.CONVNEXT_V2_TINY)
        c["vision_cfg"]["timm_model_name"] = trunk
        cfgs[f"clip_{trunk}"] = c
    return cfgs


def write_param_counts(out_root):
    cfgs = family_configs()
    C.register_configs(cfgs)
    names = ["convnext_v2_tiny", "ViT-B-32"] + [n for n in cfgs if n != "convnext_v2_tiny"]
    shapes_dir = os.path.join(out_root, "state_dict_shapes")
    os.makedirs(shapes_dir, exist_ok=True)
    counts = {"_note": ("visual = parameters named visual.*; text = total - visual (includes "
                        "logit_scale); total = sum(p.numel() for p in model.parameters()). "
                        "clip_<trunk> = the convnext_v2_tiny config with vision_cfg.timm_model_name "
                        "replaced by <trunk>. state_dict_shapes/<name>.json lists "
                        "[key, shape, dtype] of model.state_dict() in open_clip's order."),
              "versions": C.versions()}
    for n in names:
        model = C.create_model(n, seed=0)
        counts[n] = dict(C.param_split(model), config=C.model_config(n))
        sd = model.state_dict()
        entries = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()]
        with open(os.path.join(shapes_dir, f"{n}.json"), "w") as f:
            f.write("[\n" + ",\n".join(C.json.dumps(e) for e in entries) + "\n]\n")
        C.log(f"{n}: visual {counts[n]['visual']:,} text {counts[n]['text']:,} "
              f"total {counts[n]['total']:,} ({len(entries)} keys)")
        del model, sd
    C.write_json(os.path.join(out_root, "param_counts.json"), counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", help="fixture names to (re)build")
    ap.add_argument("--skip-param-counts", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name, (cfg, dtype) in FIXTURES.items():
        if a.only and name not in a.only:
            continue
        make_fixture(name, cfg, dtype, a.out, seed=a.seed)
    if not a.skip_param_counts and not a.only:
        write_param_counts(a.out)


if __name__ == "__main__":
    main()
