#!/usr/bin/env python3
"""Hand a training run from SwiftCLIP to open_clip_train and back, and check the next updates.

A tiny ConvNeXt-V2 CLIP (examples/configs/tiny-convnext-v2-clip.json, drop_path 0), 16 synthetic
64x64 samples, batch 16 (one batch = the dataset, so the shuffle cannot change a step), crop scale
(1, 1) (the training crop is the identity), fp32, lr 1e-4, warmup 1, cosine over 3 epochs, both
systems started from the same initial weights (open_clip's initialisation, --pretrained):

  forward:  swiftclip trains 3 epochs (its own run, the reference); `swiftclip convert` turns its
            epoch_1 checkpoint into epoch_1.pt; `python -m open_clip_train.main --resume epoch_1.pt`
            trains epochs 2-3. Its epoch_3.pt is compared with swiftclip's epoch_3.
  reverse:  open_clip_train trains 3 epochs (the reference); `swiftclip train --resume` on its
            epoch_1.pt trains epochs 2-3; compared with open_clip_train's epoch_3.pt.

For each direction: the losses of steps 2 and 3 (as logged), and per parameter the relative error
of the weights after the 2 resumed steps and of the update itself (w_3 - w_1) against the
reference. Pass: the resumed run logs the reference's losses, and every parameter's weights are
within 1e-4 relative (the training-parity tests' tolerance, with their key-bias rule) — update
errors are reported, not judged (an update of 2 steps at lr 1e-4 is ~1e-4 of the weight, so its
relative error magnifies rounding).

Usage (repository root, after `swift build -c release --product swiftclip`):
  tools/reference/.venv/bin/python tools/reference/check_train_handoff.py [--keep DIR]
Prints a JSON summary; exits 1 if a check fails.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.dont_write_bytecode = True
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import _common as C  # noqa: E402

SWIFTCLIP = os.path.join(REPO, ".build", "release", "swiftclip")
OPEN_CLIP_TRAIN = [sys.executable, os.path.join(REPO, "tools", "reference", "run_open_clip_train.py")]
VOCAB = os.path.join(REPO, "assets", "bpe_simple_vocab_16e6.txt.gz")
CONFIG = os.path.join(REPO, "examples", "configs", "tiny-convnext-v2-clip.json")
LOSS = re.compile(r"Train Epoch: (\d+) .*? Loss: ([0-9.]+) \(")
SAMPLES, EPOCHS, LR, WARMUP = 16, 3, 1e-4, 1


def run(cmd, cwd, log):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n" + open(log).read()[-3000:])


def losses(log):
    return [float(m.group(2)) for m in LOSS.finditer(open(log).read())]


def compare(ours, ref, start, steps):
    """Worst relative errors of the weights and of the updates (w - start) over every key. The key
    third of attn.in_proj_bias has gradient exactly 0 (softmax ignores q.b_k): both sides hold only
    rounding noise there, which Adam's g/sqrt(v) turns into steps of up to ~lr of either sign, so it
    is bounded absolutely by 3 lr per step (as compareAfterTraining does) and left out of the rest."""
    worst_w, worst_u, worst_kb = (0.0, ""), (0.0, ""), 0.0
    for k, r in ref.items():
        o = ours[k].double()
        r = r.double()
        s = start[k].double()
        if k.endswith("attn.in_proj_bias"):
            d = r.numel() // 3
            worst_kb = max(worst_kb, float((o[d:2 * d] - r[d:2 * d]).abs().max()))
            keep = torch.cat([torch.arange(0, d), torch.arange(2 * d, 3 * d)])
            o, r, s = o[keep], r[keep], s[keep]
        ew = float((o - r).norm() / r.norm()) if r.norm() > 0 else float((o - r).norm())
        du, dr = o - s, r - s
        eu = float((du - dr).norm() / dr.norm()) if dr.norm() > 0 else float(du.norm())
        if ew > worst_w[0]:
            worst_w = (ew, k)
        if eu > worst_u[0]:
            worst_u = (eu, k)
    return {"weights_rel_err_max": worst_w[0], "weights_worst_key": worst_w[1],
            "update_rel_err_max": worst_u[0], "update_worst_key": worst_u[1],
            "key_bias_abs_err_max": worst_kb, "key_bias_bound": 3 * LR * steps}


def state_dict(path):
    if path.endswith(".safetensors"):
        return load_file(path)
    ck = torch.load(path, map_location="cpu", weights_only=True)
    sd = ck["state_dict"] if "state_dict" in ck else ck
    return {k.removeprefix("module."): v for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="swiftclip-handoff-")
    os.makedirs(work, exist_ok=True)
    tiny = json.load(open(CONFIG))
    C.register_configs({"tiny_convnext_v2": tiny})
    import open_clip
    torch.manual_seed(0)
    model = open_clip.create_model("tiny_convnext_v2", precision="fp32", device="cpu")
    init = os.path.join(work, "init.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, init)
    config = os.path.join(work, "tiny_convnext_v2.json")
    json.dump(tiny, open(config, "w"))
    data = os.path.join(work, "data")
    subprocess.run([SWIFTCLIP, "make-synthetic", "--samples", str(SAMPLES), "--image-size", "64", "--output", data],
                   check=True, stdout=subprocess.DEVNULL)
    flags = ["--train-data", os.path.join(data, "train.csv"), "--csv-img-key", "filepath", "--csv-caption-key", "caption",
             "--batch-size", str(SAMPLES), "--epochs", str(EPOCHS), "--workers", "1", "--seed", "0",
             "--log-every-n-steps", "1", "--pretrained", init, "--aug-cfg", "scale=(1.0,1.0)",
             "--lr", str(LR), "--warmup", str(WARMUP), "--save-frequency", "1"]
    logs = os.path.join(work, "logs")
    swift = [SWIFTCLIP, "train", "--model", config, "--vocab", VOCAB, "--logs", logs]
    torch_train = OPEN_CLIP_TRAIN + ["--model", config, "--precision", "fp32", "--logs", logs]
    ck = lambda name, k, ext: os.path.join(logs, name, "checkpoints", f"epoch_{k}.{ext}")  # noqa: E731
    result = {"setup": {"config": os.path.relpath(CONFIG, REPO), "samples": SAMPLES, "batch": SAMPLES, "epochs": EPOCHS,
                        "lr": LR, "warmup": WARMUP, "torch": torch.__version__, "open_clip": open_clip.__version__}}

    # Forward: swiftclip -> open_clip_train.
    run(swift + ["--name", "swift"] + flags, data, os.path.join(work, "swift.log"))
    converted = os.path.join(work, "epoch_1.pt")
    run([SWIFTCLIP, "convert", ck("swift", 1, "safetensors"), converted], data, os.path.join(work, "convert.log"))
    run(torch_train + ["--name", "torch_resumed", "--resume", converted] + flags, data, os.path.join(work, "torch_resumed.log"))
    fwd = compare(state_dict(ck("torch_resumed", 3, "pt")), state_dict(ck("swift", 3, "safetensors")),
                  state_dict(ck("swift", 1, "safetensors")), EPOCHS - 1)
    fwd["losses_reference"] = losses(os.path.join(work, "swift.log"))
    fwd["losses_resumed"] = losses(os.path.join(work, "torch_resumed.log"))
    result["swiftclip_to_open_clip_train"] = fwd

    # Reverse: open_clip_train -> swiftclip.
    run(torch_train + ["--name", "torch"] + flags, data, os.path.join(work, "torch.log"))
    run(swift + ["--name", "swift_resumed", "--resume", ck("torch", 1, "pt")] + flags, data, os.path.join(work, "swift_resumed.log"))
    rev = compare(state_dict(ck("swift_resumed", 3, "safetensors")), state_dict(ck("torch", 3, "pt")), state_dict(ck("torch", 1, "pt")),
                  EPOCHS - 1)
    rev["losses_reference"] = losses(os.path.join(work, "torch.log"))
    rev["losses_resumed"] = losses(os.path.join(work, "swift_resumed.log"))
    result["open_clip_train_to_swiftclip"] = rev

    ok = all(r["weights_rel_err_max"] <= 1e-4 and r["key_bias_abs_err_max"] <= r["key_bias_bound"]
             and r["losses_resumed"] == r["losses_reference"][1:] for r in (fwd, rev))
    result["pass"] = ok
    print(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
