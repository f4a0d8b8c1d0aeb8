"""Shared helpers for the SwiftCLIP reference scripts (open_clip is the reference).

Everything here goes through open_clip's own factory: configs are written as JSON into a
temporary directory, registered with `open_clip.add_model_config`, and instantiated with
`open_clip.create_model(name)` — exactly the path a user of open_clip takes.
"""
import json
import os
import platform
import sys
import tempfile

import numpy as np

# torch is imported lazily so that the ONNX Runtime benchmark process never loads it (its peak RSS
# would otherwise include torch's).

# The text config shared by convnext_v2_tiny and ViT-B-32 (open_clip's ViT-B-32 text tower).
CLIP_TEXT_CFG = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}

# Issue 2, item 3: open_clip ships no `convnext_v2_tiny` config, so this is ours.
CONVNEXT_V2_TINY = {
    "embed_dim": 512,
    "vision_cfg": {
        "timm_model_name": "convnextv2_tiny",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
        "timm_drop": 0.0,
        "timm_drop_path": 0.1,
        "image_size": 224,
    },
    "text_cfg": dict(CLIP_TEXT_CFG),
}

_registered = {}


def register_configs(configs):
    """Register {name: config_dict} with open_clip (via a temp dir of JSON files)."""
    import open_clip
    todo = {k: v for k, v in configs.items() if _registered.get(k) != json.dumps(v, sort_keys=True)}
    if not todo:
        return
    d = tempfile.mkdtemp(prefix="swiftclip_cfg_")
    for name, cfg in todo.items():
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump(cfg, f, indent=2)
        _registered[name] = json.dumps(cfg, sort_keys=True)
    open_clip.add_model_config(d)


def model_config(name):
    """The config open_clip will use for `name` (built-in or registered)."""
    import open_clip
    if name == "convnext_v2_tiny":
        register_configs({name: CONVNEXT_V2_TINY})
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise SystemExit(f"unknown open_clip model config: {name}")
    return cfg


def create_model(name, seed=0, weights=None, **overrides):
    """open_clip.create_model(name) in eval mode, fp32, CPU, seeded; `weights` (an open_clip state
    dict, .safetensors or .pt) loaded over the random initialisation when given."""
    import open_clip
    import torch
    model_config(name)  # registers convnext_v2_tiny if needed
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = open_clip.create_model(name, precision="fp32", device="cpu", **overrides)
    if weights:
        open_clip.load_checkpoint(model, weights)
    model.eval()
    return model


def param_groups(model):
    """open_clip_train.main's AdamW groups: (no-decay params, decayed params, no-decay names);
    the predicate verbatim."""
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or 'logit_scale' in n  # noqa: E731
    include = lambda n, p: not exclude(n, p)  # noqa: E731
    named = list(model.named_parameters())
    gain_or_bias = [p for n, p in named if exclude(n, p) and p.requires_grad]
    rest = [p for n, p in named if include(n, p) and p.requires_grad]
    return gain_or_bias, rest, [n for n, p in named if exclude(n, p)]


def param_split(model):
    """visual = params whose name starts with 'visual.'; text = total - visual
    (token_embedding, positional_embedding, transformer.*, ln_final, text_projection AND
    logit_scale (and logit_bias if present))."""
    total = sum(p.numel() for p in model.parameters())
    visual = sum(p.numel() for n, p in model.named_parameters() if n.startswith("visual."))
    return {"visual": visual, "text": total - visual, "total": total}


def versions():
    import open_clip
    import timm
    import torch
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "open_clip": open_clip.__version__,
        "numpy": np.__version__,
    }
    try:
        import safetensors
        out["safetensors"] = safetensors.__version__
    except ImportError:
        pass
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def rel_errors(a, b):
    """(max over rows of ||a-b||/||b||, max|a-b| / max|b|), computed in float64."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    row = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-30)
    mx = np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)
    return float(row.max()), float(mx)


def log(*args):
    print(*args, file=sys.stderr, flush=True)
