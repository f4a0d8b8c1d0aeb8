#!/usr/bin/env python3
"""Write the PyTorch checkpoint fixtures: files made by torch's own torch.save, for SwiftCLIP's
torch zip reader (no torch needed by the tests).

Tests/CLIPNNTests/Fixtures/torch/
  fp32.pt, fp16.pt, bf16.pt  OrderedDict state dicts ({"a": (3, 4), "b": (5,), "scalar": ()}; b an
                             nn.Parameter) in each dtype
  views.pt                   {"base": arange(24), "t": base.view(4, 6).t() (strides (1, 6)),
                             "slice": base[5:17:3] (offset 5, stride 3), "nested": [{"x": view}, (1, 2.5, "s", None, True)]}
                             all sharing one storage
  expected.safetensors       fp32 values of every tensor above, keyed "FILE/KEY" (bf16/fp16 as stored)
  malicious.pt               a real torch.save whose pickle calls os.system("touch MARKER")
                             (MARKER = /tmp/swiftclip-pickle-executed) when loaded without weights_only
  deflated.pt                fp32.pt rewritten with deflate-compressed entries (refused, with a message)
  legacy.pt                  torch.save(..., _use_new_zipfile_serialization=False) (refused, with a message)
Tests/CLIPTrainingTests/Fixtures/torch/ (from ../train_vit_quickgelu):
  open_clip_pytorch_model.bin  its model.safetensors as an fp16 state dict (a hub .bin)
  epoch_1.pt                   open_clip_train's checkpoint after one AdamW step (two parameter
                               groups, lr 2e-3, wd 0.2) on its images/tokens, keys with DDP's
                               "module." prefix: {"epoch": 1, "name", "state_dict", "optimizer"}
  after_step2.safetensors      the parameters after a second step at lr 2e-3 (constant)
  timm_trunk.bin, timm_trunk.safetensors  a timm ImageNet-style checkpoint of ../train_convnext_v2's
                               trunk (convnextv2_atto with its depths/dims, 1000-class head.fc;
                               random weights, seed 1): stem.0.*, stages.*, head.norm.*, head.fc.*
  pretrained_image.safetensors that fixture's open_clip model after open_clip's own
                               TimmModel(pretrained=True) loaded timm_trunk.bin (timm's load, then
                               reset_classifier) — the whole state_dict, seed 0 elsewhere

Usage: make_checkpoint_fixtures.py
"""
import collections
import os
import sys
import zipfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NN = os.path.join(REPO, "Tests", "CLIPNNTests", "Fixtures", "torch")
TRAIN = os.path.join(REPO, "Tests", "CLIPTrainingTests", "Fixtures")
MARKER = "/tmp/swiftclip-pickle-executed"


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))


def tensors(dtype):
    g = torch.Generator().manual_seed(0)
    d = collections.OrderedDict()
    d["a"] = torch.randn(3, 4, generator=g).to(dtype)
    d["b"] = torch.nn.Parameter(torch.randn(5, generator=g).to(dtype), requires_grad=False)
    d["scalar"] = torch.tensor(2.5, dtype=dtype)
    return d


def nn_fixtures():
    os.makedirs(NN, exist_ok=True)
    expected = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        d = tensors(dtype)
        torch.save(d, os.path.join(NN, name + ".pt"))
        for k, v in d.items():
            expected[f"{name}/{k}"] = v.detach().float().contiguous()
    base = torch.arange(24, dtype=torch.float32) * 0.5 - 3
    views = {"base": base, "t": base.view(4, 6).t(), "slice": base[5:17:3],
             "nested": [{"x": base.view(2, 12)[1, 2:]}, (1, 2.5, "s", None, True)]}
    assert views["t"].stride() == (1, 6) and views["slice"].storage_offset() == 5
    torch.save(views, os.path.join(NN, "views.pt"))
    for k in ("base", "t", "slice"):
        expected["views/" + k] = views[k].clone().contiguous()
    expected["views/nested/0/x"] = views["nested"][0]["x"].clone().contiguous()
    save_file(expected, os.path.join(NN, "expected.safetensors"))
    torch.save({"weights": torch.ones(2), "payload": Exploit()}, os.path.join(NN, "malicious.pt"))
    with zipfile.ZipFile(os.path.join(NN, "fp32.pt")) as src, \
            zipfile.ZipFile(os.path.join(NN, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    torch.save(tensors(torch.float32), os.path.join(NN, "legacy.pt"), _use_new_zipfile_serialization=False)
    # The fixtures load back in torch as the tests expect.
    assert torch.equal(torch.load(os.path.join(NN, "views.pt"), weights_only=True)["t"], views["t"])
    try:
        torch.load(os.path.join(NN, "malicious.pt"), weights_only=True)
        raise SystemExit("malicious.pt loaded with weights_only=True")
    except Exception as e:  # noqa: BLE001 - torch's UnpicklingError
        print("torch refuses malicious.pt too:", str(e).splitlines()[0])


def train_fixtures():
    src = os.path.join(TRAIN, "train_vit_quickgelu")
    out = os.path.join(TRAIN, "torch")
    os.makedirs(out, exist_ok=True)
    sd = load_file(os.path.join(src, "model.safetensors"))
    torch.save(collections.OrderedDict((k, v.half()) for k, v in sd.items()),
               os.path.join(out, "open_clip_pytorch_model.bin"))

    import json
    import open_clip
    from open_clip.loss import ClipLoss
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    C.register_configs({"train_vit_quickgelu": cfg})
    model = open_clip.create_model("train_vit_quickgelu", pretrained=None)
    model.load_state_dict(sd)
    model.train()
    images = torch.from_numpy(np.load(os.path.join(src, "images.npy")))
    tokens = torch.from_numpy(np.load(os.path.join(src, "tokens.npy")))
    gain_or_bias, rest, _ = C.param_groups(model)
    opt = torch.optim.AdamW([{"params": gain_or_bias, "weight_decay": 0.0}, {"params": rest, "weight_decay": 0.2}],
                            lr=2e-3, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = ClipLoss()

    def step():
        opt.zero_grad()
        f_img, f_txt, scale = model(images, tokens)
        loss_fn(f_img, f_txt, scale).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))

    step()
    state = collections.OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save({"epoch": 1, "name": "fixture", "state_dict": state, "optimizer": opt.state_dict()},
               os.path.join(out, "epoch_1.pt"))
    step()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              os.path.join(out, "after_step2.safetensors"))


def timm_trunk_fixtures():
    import json
    import open_clip
    import open_clip.timm_model as tm
    import timm
    src = os.path.join(TRAIN, "train_convnext_v2")
    out = os.path.join(TRAIN, "torch")
    cfg = json.load(open(os.path.join(src, "config.json")))
    trunk = json.load(open(os.path.join(src, "trunk.json")))
    shape = dict(depths=tuple(trunk["depths"]), dims=tuple(trunk["dims"]))
    torch.manual_seed(1)
    imagenet = timm.create_model(cfg["vision_cfg"]["timm_model_name"], pretrained=False, num_classes=1000, **shape)
    sd = collections.OrderedDict((k, v.detach().clone()) for k, v in imagenet.state_dict().items())
    assert "head.norm.weight" in sd and "head.fc.weight" in sd and "stem.0.weight" in sd
    bin_path = os.path.join(out, "timm_trunk.bin")
    torch.save(sd, bin_path)
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out, "timm_trunk.safetensors"))

    # open_clip's own path: create_model(pretrained_image=True) -> TimmModel(pretrained=True) ->
    # timm.create_model(pretrained=True), pointed at the local file instead of the hub.
    original = tm.timm.create_model

    def create(model_name, **kw):
        kw = dict(kw, **shape)
        if kw.get("pretrained"):
            kw["pretrained_cfg_overlay"] = dict(file=bin_path, num_classes=1000)
        return original(model_name, **kw)

    C.register_configs({"train_convnext_v2": cfg})
    tm.timm.create_model = create
    try:
        torch.manual_seed(0)
        model = open_clip.create_model("train_convnext_v2", pretrained=None, pretrained_image=True)
    finally:
        tm.timm.create_model = original
    got = model.visual.trunk.state_dict()
    for k, v in sd.items():
        if not k.startswith("head.fc."):
            assert torch.equal(got[k], v), k
    assert "head.fc.weight" not in got
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              os.path.join(out, "pretrained_image.safetensors"))


if __name__ == "__main__":
    torch.manual_seed(0)
    nn_fixtures()
    train_fixtures()
    timm_trunk_fixtures()
    print("torch", torch.__version__)
