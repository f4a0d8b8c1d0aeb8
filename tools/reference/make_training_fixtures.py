#!/usr/bin/env python3
"""Write the training parity fixtures committed under Tests/CLIPTrainingTests/Fixtures/.

For each tiny config below: build the model through open_clip's own factory, overwrite every
parameter with fresh random values (make_model_fixtures.perturb_), then, in fp32 with
drop_path 0 and train mode:
  * the loss (open_clip.loss.ClipLoss on model(images, tokens), i.e. normalised features and
    logit_scale.exp()) and every parameter's gradient (one backward, no clipping);
  * 4 steps of open_clip_train's loop: scheduler (cosine_lr with warmup) -> zero_grad -> loss ->
    backward -> clip_grad_norm_ -> torch.optim.AdamW step with open_clip_train.main's two
    parameter groups -> logit_scale.clamp_(0, ln 100); the parameters after the 4 steps.

timm's ConvNeXt names have fixed depths/dims; timm.create_model takes them as overrides
(`depths=`, `dims=`), so for the ConvNeXt fixtures open_clip's TimmModel is built with
timm.create_model wrapped to pass them (trunk.json records them; SwiftCLIP builds the same trunk
from a ConvNeXtSpec). Small odd widths on purpose.

Per fixture directory:
  config.json            the open_clip config (model name = directory name)
  trunk.json             {"depths", "dims"} override of the timm ConvNeXt (ConvNeXt fixtures only)
  model.safetensors      initial state_dict (fp32)
  images.npy             float32 (3, 3, S, S) standard normal
  tokens.npy             int64 (3, context_length)
  loss.npy               float64 () loss at the initial weights
  grads.safetensors      every parameter's gradient at the initial weights (fp32, same keys)
  steps.json             optimiser settings, per-step lr and loss, grad norms
  after_steps.safetensors the parameters after the 4 steps (fp32)
  (train_convnext_v2 only) open_clip_train.train.train_one_epoch itself, from model.safetensors:
  accum2_*               2 steps of --accum-freq 2 over micro-batches of 3: images, tokens, settings, parameters after
  lock_image_*, lock_text_*  1 step with model.lock_image_tower() / lock_text_tower()
  versions.json

Usage: make_training_fixtures.py [--out DIR] [--only NAME ...]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import make_model_fixtures as M  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "Tests", "CLIPTrainingTests", "Fixtures")

TEXT = {"context_length": 12, "vocab_size": 300, "width": 30, "heads": 3, "layers": 2}

FIXTURES = {
    # ConvNeXt-V2 (GRN), avg pool, linear head: the convnext_v2_tiny shape in miniature.
    "train_convnext_v2": (
        {"embed_dim": 12,
         "vision_cfg": {"timm_model_name": "convnextv2_atto", "timm_model_pretrained": False,
                        "timm_pool": "avg", "timm_proj": "linear", "timm_drop": 0.0,
                        "timm_drop_path": 0.0, "image_size": 64},
         "text_cfg": dict(TEXT)},
        {"depths": [1, 1, 2, 1], "dims": [5, 11, 16, 23]},
    ),
    # ConvNeXt V1 (layer-scale gamma trainable), mlp head with bias.
    "train_convnext_v1_mlp": (
        {"embed_dim": 12,
         "vision_cfg": {"timm_model_name": "convnext_atto", "timm_model_pretrained": False,
                        "timm_pool": "avg", "timm_proj": "mlp", "timm_proj_bias": True, "timm_drop": 0.0,
                        "timm_drop_path": 0.0, "image_size": 32},
         "text_cfg": dict(TEXT, layers=1)},
        {"depths": [1, 2, 1, 1], "dims": [7, 9, 13, 17]},
    ),
    # open_clip VisionTransformer, QuickGELU, class token, patch embedding.
    "train_vit_quickgelu": (
        {"embed_dim": 12, "quick_gelu": True,
         "vision_cfg": {"image_size": 32, "layers": 2, "width": 24, "head_width": 8, "patch_size": 8},
         "text_cfg": dict(TEXT)},
        None,
    ),
}

# 4 steps: two of warmup (lr/2, lr), then cosine from e = 0 (lr) to e = 1 (0.75·lr).
OPT = {"lr": 2e-3, "wd": 0.2, "warmup": 2, "total_steps": 5, "steps": 4, "grad_clip_norm": 1.0}


def schedule_tables():
    """open_clip_train.scheduler's three schedules over 12 steps (fixtures for the Swift schedules)."""
    from open_clip_train.scheduler import const_lr, const_lr_cooldown, cosine_lr

    class Opt:
        param_groups = [{}]
    tables = []
    for kind, make in [
        ("cosine", lambda o: cosine_lr(o, 1e-3, 3, 12)),
        ("const", lambda o: const_lr(o, 1e-3, 3, 12)),
        ("const-cooldown", lambda o: const_lr_cooldown(o, 1e-3, 3, 12, 5, 1.0, 0.0)),
        ("const-cooldown", lambda o: const_lr_cooldown(o, 1e-3, 2, 12, 6, 2.0, 1e-5)),
    ]:
        f = make(Opt())
        tables.append({"kind": kind, "lr": [f(i) for i in range(12)]})
    tables[0].update(base_lr=1e-3, warmup=3, steps=12)
    tables[1].update(base_lr=1e-3, warmup=3, steps=12)
    tables[2].update(base_lr=1e-3, warmup=3, steps=12, cooldown_steps=5, power=1.0, end_lr=0.0)
    tables[3].update(base_lr=1e-3, warmup=2, steps=12, cooldown_steps=6, power=2.0, end_lr=1e-5)
    return tables


def build(name, cfg, trunk, seed=0):
    import open_clip.timm_model as tm
    C.register_configs({name: cfg})
    original = tm.timm.create_model

    def create(model_name, **kw):
        if trunk is not None:
            kw = dict(kw, depths=tuple(trunk["depths"]), dims=tuple(trunk["dims"]))
        return original(model_name, **kw)

    tm.timm.create_model = create
    try:
        model = C.create_model(name, seed=seed)
    finally:
        tm.timm.create_model = original
    return model


def clip_loss(model, images, tokens):
    from open_clip.loss import ClipLoss
    img, txt, scale = model(images, tokens)[:3]
    return ClipLoss()(img, txt, scale)


def make_fixture(name, cfg, trunk, out_root, seed=0):
    from open_clip_train.scheduler import cosine_lr
    from safetensors.torch import save_file

    model = build(name, cfg, trunk, seed)
    gen = torch.Generator().manual_seed(2000 + seed)
    M.perturb_(model, gen)
    model.train()
    rng = np.random.default_rng(seed + 7)
    S = cfg["vision_cfg"]["image_size"]
    tc = cfg["text_cfg"]
    images = rng.standard_normal((3, 3, S, S)).astype(np.float32)
    tokens = M.make_tokens(rng, 3, tc["context_length"], tc["vocab_size"])
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    C.write_json(os.path.join(out, "config.json"), cfg)
    if trunk is not None:
        C.write_json(os.path.join(out, "trunk.json"), trunk)
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              os.path.join(out, "model.safetensors"))
    np.save(os.path.join(out, "images.npy"), images)
    np.save(os.path.join(out, "tokens.npy"), tokens)
    ti, tt = torch.from_numpy(images), torch.from_numpy(tokens)

    # Loss and gradients at the initial weights; and in float64 for the noise floor.
    model.zero_grad(set_to_none=True)
    loss = clip_loss(model, ti, tt)
    loss.backward()
    grads = {n: p.grad.detach().clone().contiguous() for n, p in model.named_parameters()}
    np.save(os.path.join(out, "loss.npy"), np.array(loss.item(), dtype=np.float64))
    save_file(grads, os.path.join(out, "grads.safetensors"))
    m64 = build(name, cfg, trunk, seed).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.train()
    loss64 = clip_loss(m64, ti.double(), tt)
    loss64.backward()
    floor = max(((p.grad.double() - grads[n].double()).norm() / p.grad.norm().clamp_min(1e-30)).item()
                for n, p in m64.named_parameters())

    # open_clip_train's loop, 4 steps.
    defaults = {"lr": 5.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6} if "vit" in name.lower() \
        else {"lr": 5.0e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1.0e-8}
    gain_or_bias, rest, no_decay = C.param_groups(model)
    opt = torch.optim.AdamW([{"params": gain_or_bias, "weight_decay": 0.0},
                             {"params": rest, "weight_decay": OPT["wd"]}],
                            lr=OPT["lr"], betas=(defaults["beta1"], defaults["beta2"]), eps=defaults["eps"])
    scheduler = cosine_lr(opt, OPT["lr"], OPT["warmup"], OPT["total_steps"])
    lrs, losses, norms = [], [], []
    for step in range(OPT["steps"]):
        lrs.append(scheduler(step))
        opt.zero_grad()
        loss = clip_loss(model, ti, tt)
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), OPT["grad_clip_norm"], norm_type=2.0).item())
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              os.path.join(out, "after_steps.safetensors"))
    C.write_json(os.path.join(out, "steps.json"), {
        "optimizer": dict(OPT, beta1=defaults["beta1"], beta2=defaults["beta2"], eps=defaults["eps"],
                          schedule="cosine"),
        "lr": lrs, "loss": losses, "grad_norm_before_clip": norms,
        "no_weight_decay": no_decay,
        "grad_rel_error_fp32_vs_fp64": floor,
    })
    C.write_json(os.path.join(out, "versions.json"), C.versions())
    C.log(f"{name}: loss {losses[0]:.6f}, {sum(p.numel() for p in model.parameters())} params, "
          f"fp32-vs-fp64 grad error {floor:.2e}, lrs {lrs}, grad norms {norms}")


class _Loader(list):
    """The two attributes train_one_epoch reads from a DataLoader."""
    def __init__(self, batches, batch_size):
        super().__init__(batches)
        self.num_batches = len(batches)
        self.num_samples = len(batches) * batch_size


class _DataInfo:
    def __init__(self, loader):
        self.dataloader = loader

    def set_epoch(self, epoch):
        pass


def run_train_one_epoch(name, cfg, trunk, out, tag, accum_freq, lock=None, micro=3, steps=2, seed=0):
    """open_clip_train.train.train_one_epoch itself (fp32, CPU) for `steps` optimiser steps of
    `accum_freq` micro-batches of `micro` samples; optional --lock-image / --lock-text."""
    import types
    from open_clip.loss import ClipLoss
    from open_clip_train.scheduler import cosine_lr
    from open_clip_train.train import train_one_epoch
    from safetensors.torch import save_file, load_file

    model = build(name, cfg, trunk, seed)
    model.load_state_dict(load_file(os.path.join(out, "model.safetensors")))
    model.output_dict = True          # as open_clip_train.main creates it
    if lock == "image":
        model.lock_image_tower()
    elif lock == "text":
        model.lock_text_tower()
    rng = np.random.default_rng(seed + 11)
    S = cfg["vision_cfg"]["image_size"]
    tc = cfg["text_cfg"]
    n = micro * accum_freq * steps
    images = rng.standard_normal((n, 3, S, S)).astype(np.float32)
    tokens = np.concatenate([M.make_tokens(rng, 3, tc["context_length"], tc["vocab_size"]) for _ in range(n // 3)])
    batches = [(torch.from_numpy(images[i:i + micro]), torch.from_numpy(tokens[i:i + micro])) for i in range(0, n, micro)]
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1.0e-8}
    gain_or_bias, rest, _ = C.param_groups(model)
    opt = torch.optim.AdamW([{"params": gain_or_bias, "weight_decay": 0.0}, {"params": rest, "weight_decay": OPT["wd"]}],
                            lr=OPT["lr"], betas=(defaults["beta1"], defaults["beta2"]), eps=defaults["eps"])
    warmup, total = 1, steps + 1
    scheduler = cosine_lr(opt, OPT["lr"], warmup, total)
    args = types.SimpleNamespace(device="cpu", precision="fp32", distill=False, accum_freq=accum_freq, skip_scheduler=False,
                                 grad_clip_norm=OPT["grad_clip_norm"], horovod=False, log_every_n_steps=1000, world_size=1,
                                 batch_size=micro, wandb=False, rank=0, local_rank=0, distributed=False)
    train_one_epoch(model, {"train": _DataInfo(_Loader(batches, micro))}, ClipLoss(), 0, opt, None, scheduler, None, args)
    np.save(os.path.join(out, f"{tag}_images.npy"), images)
    np.save(os.path.join(out, f"{tag}_tokens.npy"), tokens)
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"{tag}_after.safetensors"))
    C.write_json(os.path.join(out, f"{tag}.json"), {
        "accum_freq": accum_freq, "micro_batch": micro, "steps": steps, "lock": lock,
        "lr": OPT["lr"], "wd": OPT["wd"], "warmup": warmup, "total_steps": total, "grad_clip_norm": OPT["grad_clip_norm"],
        **defaults, "frozen": [k for k, p in model.named_parameters() if not p.requires_grad],
    })
    C.log(f"{name} {tag}: train_one_epoch, accum_freq {accum_freq}, lock {lock}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    C.write_json(os.path.join(args.out, "schedules.json"), schedule_tables())
    for name, (cfg, trunk) in FIXTURES.items():
        if args.only and name not in args.only:
            continue
        make_fixture(name, cfg, trunk, args.out)
        if name == "train_convnext_v2":
            out = os.path.join(args.out, name)
            run_train_one_epoch(name, cfg, trunk, out, "accum2", accum_freq=2)
            run_train_one_epoch(name, cfg, trunk, out, "lock_image", accum_freq=1, lock="image", steps=1)
            run_train_one_epoch(name, cfg, trunk, out, "lock_text", accum_freq=1, lock="text", steps=1)


if __name__ == "__main__":
    main()
