#!/usr/bin/env python3
"""`swiftclip train` against `python -m open_clip_train.main`, in one run (issue 11, item 8).

1. The seed's pipeline: convnext_v2_tiny, 100 synthetic samples, 2 epochs, batch 32, open_clip's
   defaults otherwise (lr 5e-4, warmup 10000, cosine, AdamW wd 0.2), CPU, the same command-line
   flags for both, in each of --precisions (fp32; amp_bf16: bf16 GEMMs, open_clip_train's bf16
   autocast). Wall time of the whole command and images/s (samples trained / wall time). Run
   alternately, --repeats times each; the minimum is reported.
2. Loss curves: a tiny ConvNeXt-V2 CLIP (convnextv2_atto trunk, 2-layer text tower, 64×64
   images) from the same initial weights (open_clip's initialisation, saved as safetensors, loaded
   by both through --pretrained), drop_path 0, --aug-cfg scale='(1.0,1.0)' on 64×64 images (so the
   training crop is the identity) and a batch equal to the dataset (so the shuffle order does not
   change the loss): both systems then compute the same function, and their per-step losses are
   drawn on one chart.

Usage (repository root, reference venv with pandas, braceexpand, webdataset):
  tools/reference/.venv/bin/python benchmarks/train_pipeline.py [--repeats 1] [--steps 40] [--base-bin OLD] [--tag T]
Writes benchmarks/results/<date>-train-pipeline[-T].{json,md} and docs/train_loss_curves.png.
SWIFTCLIP_BIN picks the swiftclip build (default .build/release/swiftclip); --base-bin adds an older build of swiftclip as a third system in the rotation (before/after in one
run). The load average is recorded before and after, and swiftclip's own account of its wall time
(the "Time:" line of its log: start-up, set-up, data, steps, checkpoints) is kept per run.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SWIFTCLIP = os.path.abspath(os.environ.get("SWIFTCLIP_BIN", os.path.join(REPO, ".build", "release", "swiftclip")))
OPEN_CLIP_TRAIN = [sys.executable, os.path.join(REPO, "tools", "reference", "run_open_clip_train.py")]
VOCAB = os.path.join(REPO, "assets", "bpe_simple_vocab_16e6.txt.gz")

# The tiny model of `make demo` (convnextv2_atto trunk, 2-layer text tower, 64×64 images).
TINY = json.load(open(os.path.join(REPO, "examples", "configs", "tiny-convnext-v2-clip.json")))

LOSS = re.compile(r"Train Epoch: (\d+) .*? Loss: ([0-9.]+) \(")


def run(cmd, cwd, log):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    start = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}; see {log}")
    return wall


def losses(log):
    """Per-step losses from an out.log / stdout in open_clip_train's format (one line per step)."""
    return [float(m.group(2)) for m in LOSS.finditer(open(log).read())]


def common_flags(data, batch, epochs, extra):
    return ["--train-data", os.path.join(data, "train.csv"), "--csv-img-key", "filepath", "--csv-caption-key", "caption",
            "--batch-size", str(batch), "--epochs", str(epochs), "--workers", "2", "--seed", "0",
            "--log-every-n-steps", "1"] + extra


def curves(args, work, result):
    """Both systems from one initial state; writes result["curves"] and docs/train_loss_curves.png."""
    import numpy as np
    sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
    import _common as C
    import torch
    from safetensors.torch import save_file
    C.register_configs({"tiny_convnext_v2": TINY})
    import open_clip
    torch.manual_seed(0)
    model = open_clip.create_model("tiny_convnext_v2", precision="fp32", device="cpu")
    init = os.path.join(work, "tiny_init.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, init)
    config = os.path.join(work, "tiny_convnext_v2.json")
    json.dump(TINY, open(config, "w"))
    data = os.path.join(work, "tiny")
    samples = 64
    subprocess.run([SWIFTCLIP, "make-synthetic", "--samples", str(samples), "--image-size", "64", "--output", data],
                   check=True, stdout=subprocess.DEVNULL)
    flags = common_flags(data, samples, args.steps, ["--pretrained", init, "--aug-cfg", "scale=(1.0,1.0)",
                                                     "--lr", str(args.lr), "--warmup", str(args.warmup), "--save-frequency", "0"])
    logs = os.path.join(work, "curves")
    swift_log, torch_log = os.path.join(work, "curve_swift.log"), os.path.join(work, "curve_torch.log")
    swift_wall = run([SWIFTCLIP, "train", "--model", config, "--vocab", VOCAB, "--logs", logs, "--name", "swift"] + flags, data, swift_log)
    torch_wall = run(OPEN_CLIP_TRAIN + ["--model", config, "--precision", "fp32", "--logs", logs, "--name", "torch"] + flags, data, torch_log)
    a, b = np.array(losses(swift_log)), np.array(losses(torch_log))
    if len(a) != args.steps or len(b) != args.steps:
        sys.exit(f"expected {args.steps} losses, got {len(a)} (swiftclip) and {len(b)} (open_clip_train)")
    result["curves"] = {
        "model": TINY, "samples": samples, "steps": args.steps, "lr": args.lr, "warmup": args.warmup,
        "swiftclip": a.tolist(), "open_clip_train": b.tolist(),
        "max_abs_difference": float(np.abs(a - b).max()),
        "wall_s": {"swiftclip": swift_wall, "open_clip_train": torch_wall},
    }

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, args.steps + 1)
    ax.plot(steps, b, label="open_clip_train (PyTorch fp32)", linewidth=3, alpha=0.5)
    ax.plot(steps, a, label="swiftclip train", linewidth=1.2, linestyle="--", marker=".")
    ax.axhline(np.log(samples), color="grey", linewidth=0.8, linestyle=":", label=f"ln {samples} (chance)")
    ax.set_xlabel("step")
    ax.set_ylabel("contrastive loss")
    ax.set_title(f"Same initial weights and data: tiny ConvNeXt-V2 CLIP, batch {samples}, lr {args.lr:g}, warmup {args.warmup}")
    ax.title.set_fontsize(9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(REPO, "docs", "train_loss_curves.png"), dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precisions", default="fp32,amp_bf16", help="comma-separated: fp32, amp_bf16")
    ap.add_argument("--skip-pipeline", action="store_true", help="keep the pipeline timing of today's results file")
    ap.add_argument("--skip-curves", action="store_true", help="keep the loss curves of today's results file")
    ap.add_argument("--base-bin", help="an older swiftclip build, run as a third system (swiftclip-base)")
    ap.add_argument("--tag", help="results file suffix")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="swiftclip-train-bench-")
    result = {"date": datetime.date.today().isoformat(), "machine": os.uname().machine, "cores": os.cpu_count()}
    out = os.path.join(REPO, "benchmarks", "results", f"{result['date']}-train-pipeline" + (f"-{args.tag}" if args.tag else ""))
    result["cpu"] = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    result["load_before"] = open("/proc/loadavg").read().split()[:3]
    if args.skip_pipeline and os.path.exists(out + ".json"):
        previous = json.load(open(out + ".json"))
        if "pipeline" in previous:
            result["pipeline"] = previous["pipeline"]
    if args.skip_curves and os.path.exists(out + ".json"):
        previous = json.load(open(out + ".json"))
        if "curves" in previous:
            result["curves"] = previous["curves"]

    # 1. The seed's pipeline, in each precision (swiftclip's amp_bf16 against open_clip_train's).
    if not args.skip_pipeline:
        data = os.path.join(work, "synthetic")
        subprocess.run([SWIFTCLIP, "make-synthetic", "--samples", "100", "--output", data], check=True, stdout=subprocess.DEVNULL)
        flags = common_flags(data, 32, 2, [])
        precisions = args.precisions.split(",")
        times, logs_of, accounts = {}, {}, {}
        systems = [("swiftclip", [SWIFTCLIP, "train", "--model", "convnext_v2_tiny", "--vocab", VOCAB])]
        if args.base_bin:
            systems.append(("swiftclip-base", [os.path.abspath(args.base_bin), "train", "--model", "convnext_v2_tiny", "--vocab", VOCAB]))
        systems.append(("open_clip_train", OPEN_CLIP_TRAIN + ["--model", "convnext_v2_tiny", "--save-frequency", "1"]))
        for r in range(args.repeats):
            for precision in precisions:
                logs = os.path.join(work, f"logs{r}{precision}")
                for system, cmd in systems:
                    key = f"{system} {precision}"
                    log = os.path.join(work, f"{system}{r}{precision}.log")
                    times.setdefault(key, []).append(run(cmd + ["--precision", precision, "--logs", logs, "--name", system] + flags,
                                                         data, log))
                    logs_of.setdefault(key, log)
                    account = [l.strip() for l in open(log) if l.startswith("Time: ")]
                    if account:
                        accounts.setdefault(key, []).append(account[-1])
                    print(f"pipeline run {r}: {key} {times[key][-1]:.1f} s" + (f" ({account[-1]})" if account else ""), flush=True)
                    shutil.rmtree(logs, ignore_errors=True)   # the next system starts on an emptied disk cache of checkpoints
        images = 2 * (100 // 32) * 32
        speedups = {f"swiftclip {a} / open_clip_train {b}": min(times[f"open_clip_train {b}"]) / min(times[f"swiftclip {a}"])
                    for a in precisions for b in precisions}
        if args.base_bin:
            speedups.update({f"swiftclip-base {a} / open_clip_train {a}": min(times[f"open_clip_train {a}"]) / min(times[f"swiftclip-base {a}"])
                             for a in precisions})
        result["pipeline"] = {
            "command": "convnext_v2_tiny, 100 samples, --batch-size 32 --epochs 2, defaults otherwise, CPU",
            "images_trained": images,
            "wall_s": times,
            "images_per_s": {k: images / min(v) for k, v in times.items()},
            "speedups": speedups,
            "final_loss": {k: losses(log)[-1] for k, log in logs_of.items()},
            "swiftclip_time_accounts": accounts,
        }

    # 2. Loss curves from the same initial weights on the same data.
    if not args.skip_curves:
        curves(args, work, result)

    result["load_after"] = open("/proc/loadavg").read().split()[:3]
    json.dump(result, open(out + ".json", "w"), indent=1)
    lines = [f"# swiftclip train vs open_clip_train.main ({result['date']}, {result['cpu']}, {result['cores']} cores)", "",
             f"Load average (1, 5, 15 min) before: {' '.join(result['load_before'])}; after: {' '.join(result['load_after'])} "
             f"(above {result['cores']} means other processes shared the cores).", ""]
    if "pipeline" in result:
        p = result["pipeline"]
        lines += ["The seed's pipeline (" + p["command"] + "), whole command, minimum of "
                  f"{len(next(iter(p['wall_s'].values())))} alternating run(s):", "",
                  "| system | wall s | images/s | final loss |", "|---|---|---|---|"]
        for k in p["wall_s"]:
            lines.append(f"| {k} | {min(p['wall_s'][k]):.1f} | {p['images_per_s'][k]:.2f} | {p['final_loss'][k]:.4f} |")
        lines.append("")
        lines += [f"- {k}: {v:.2f}× faster" for k, v in p["speedups"].items()]
        lines.append("")
        for k, v in p.get("wall_s", {}).items():
            lines.append(f"- {k}, every run (s): " + ", ".join(f"{t:.1f}" for t in v))
        lines.append("")
        for k, v in p.get("swiftclip_time_accounts", {}).items():
            lines += [f"- {k}, run {i + 1}: {a}" for i, a in enumerate(v)]
        lines.append("")
    if "curves" in result:
        c = result["curves"]
        lines += [f"Loss curves (tiny ConvNeXt-V2 CLIP, same init and data, {c['steps']} steps): max |difference| "
                  f"{c['max_abs_difference']:.2e}; wall {c['wall_s']['swiftclip']:.1f} s vs {c['wall_s']['open_clip_train']:.1f} s. "
                  "Chart: docs/train_loss_curves.png.", ""]
    open(out + ".md", "w").write("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
