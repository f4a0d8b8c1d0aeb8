#!/usr/bin/env python3
"""Peer benchmark: one CLIP tower in PyTorch (fp32 / bf16 autocast) or ONNX Runtime, on the CPU.

  bench_peers.py --model convnext_v2_tiny|ViT-B-32 --tower image|text --batch-sizes 1,32 \
                 --runtime torch|torch-bf16|ort [--warmup N] [--repeats N] [--threads N] [--json]

What is timed
  image tower: model.visual(images)           images (B, 3, S, S) float32, N(0, 1)
  text tower : model.encode_text(tokens)      tokens (B, context_length) int64, [sot ids... eot 0...]
  torch      : eval mode, fp32, under torch.inference_mode()
  torch-bf16 : the same under torch.autocast('cpu', dtype=torch.bfloat16) (fp32 weights)
  ort-int8   : ONNX Runtime on onnxruntime.quantization.quantize_dynamic(<the ort file>, QInt8
               weights; uint8 activations quantised per tensor at run time; cached as
               out/onnx/<model>-<tower>-opset17.int8.onnx)
  ort        : ONNX Runtime CPUExecutionProvider on torch.onnx.export of the same tower
               (TorchScript exporter, opset 17, dynamic batch axis; cached as
               out/onnx/<model>-<tower>-opset17.onnx), graph optimisation ORT_ENABLE_ALL,
               intra-op threads = --threads (default: all CPUs of this process).
  Latency = median wall time of one forward over --repeats runs after --warmup runs
  (p10/p90 too); items_per_s = batch / median.

Models are open_clip.create_model(name) with random (seeded) init. Only the benchmarked tower is
built at full size: the other tower's config is replaced by a minimal one (a 1-layer 64-wide
ViT / text transformer, <0.5 M params) so that the process's peak RSS reflects the tower being
timed, not the whole CLIP model (--full-model builds everything). `params` is the tower's
parameter count from the real config: image = parameters named visual.*, text = all others
(including logit_scale), matching `swiftclip info` and Fixtures/param_counts.json.

peak_rss_mb is ru_maxrss of this process (high-water mark: interpreter + libraries + model +
activations). Run each (system, model, tower) in its own process — benchmarks/run_issue2.sh
does — so the figures are comparable; batch sizes run in increasing order, so the batch-32
figure is the peak of the whole process. The ORT process never imports torch (the export runs in
a child process), so its RSS holds ONNX Runtime + model only.

Output: one JSON object per batch size (a JSON list with --json), else a table on stdout.
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)

SYSTEM_NAMES = {"torch": "pytorch", "torch-bf16": "pytorch-bf16-autocast", "ort": "onnxruntime",
                "ort-int8": "onnxruntime-int8", "ort-swiftclip": "onnxruntime-swiftclip-export"}

TINY_VISION = {"image_size": 32, "layers": 1, "width": 64, "head_width": 64, "patch_size": 32}
TINY_TEXT = {"context_length": 8, "vocab_size": 64, "width": 64, "heads": 1, "layers": 1}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def make_images(batch, size, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def make_tokens(batch, ctx, vocab, seed=0):
    """CLIP-tokenizer-like rows: sot, random ids, eot, zero padding; lengths vary per row."""
    rng = np.random.default_rng(seed)
    sot, eot = vocab - 2, vocab - 1
    toks = np.zeros((batch, ctx), dtype=np.int64)
    for i in range(batch):
        L = int(rng.integers(3, ctx + 1))
        toks[i, 0] = sot
        toks[i, 1:L - 1] = rng.integers(1, sot, size=L - 2)
        toks[i, L - 1] = eot
    return toks


# ---------------------------------------------------------------------------------- torch side
def build_tower(model_name, tower, seed, full_model):
    """(module, params, meta) for the tower; module(x) == model.visual(x) / model.encode_text(x)."""
    import torch
    import _common as C

    cfg = C.model_config(model_name)
    overrides = {}
    if not full_model:
        if tower == "image":
            overrides["text_cfg"] = dict(TINY_TEXT)
        else:
            overrides["vision_cfg"] = dict(TINY_VISION)
    model = C.create_model(model_name, seed=seed, **overrides)
    split = C.param_split(model)
    if tower == "image":
        module = model.visual
        params = split["visual"]
    else:
        class EncodeText(torch.nn.Module):
            def __init__(self, clip):
                super().__init__()
                self.clip = clip

            def forward(self, text):
                return self.clip.encode_text(text)

        module = EncodeText(model)
        params = split["text"]
    module.eval()
    meta = {"image_size": cfg["vision_cfg"].get("image_size", 224),
            "context_length": cfg["text_cfg"]["context_length"],
            "vocab_size": cfg["text_cfg"]["vocab_size"], "params": params}
    return module, params, meta


def make_input(tower, batch, meta, seed=0):
    if tower == "image":
        return make_images(batch, meta["image_size"], seed)
    return make_tokens(batch, meta["context_length"], meta["vocab_size"], seed)


def onnx_paths(a):
    d = os.path.join(a.onnx_dir)
    stem = f"{a.model}-{a.tower}-opset17"
    return os.path.join(d, stem + ".onnx"), os.path.join(d, stem + ".json"), os.path.join(d, stem + ".check.npz")


def export_onnx(a):
    """Child-process job: export the tower, write metadata and a torch reference output."""
    import torch
    torch.set_num_threads(a.threads)
    module, params, meta = build_tower(a.model, a.tower, a.seed, a.full_model)
    path, meta_path, check_path = onnx_paths(a)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    x = torch.from_numpy(make_input(a.tower, 2, meta, seed=123))
    tmp = path + ".tmp"
    # nn.MultiheadAttention's fused fast path (taken without a mask under no_grad, i.e. the ViT image
    # tower) has no ONNX symbolic; the unfused path exports and computes the same thing.
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad():
        torch.onnx.export(module, (x,), tmp, opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["features"],
                          dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})
        ref = module(x).numpy()
    os.replace(tmp, path)
    np.savez(check_path, input=x.numpy(), output=ref)
    import onnx
    meta.update(torch=torch.__version__, onnx=onnx.__version__, opset=17, seed=a.seed,
                exporter="torch.onnx.export(dynamo=False)")
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
    log(f"exported {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


# ---------------------------------------------------------------------------------- timing
def time_runs(fn, x, warmup, repeats, budget_s):
    t_first = None
    for i in range(warmup):
        t0 = time.perf_counter()
        fn(x)
        dt = time.perf_counter() - t0
        t_first = dt if t_first is None else min(t_first, dt)
    if repeats is None:
        est = t_first if t_first else 0.1
        repeats = int(max(3, min(30, math.ceil(budget_s / max(est, 1e-4)))))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def pct(v, q):
    return float(np.percentile(np.asarray(v), q))


def run(a):
    batches = [int(b) for b in a.batch_sizes.split(",") if b]
    versions = {"python": platform.python_version()}
    if a.runtime in ("ort", "ort-int8"):
        import onnxruntime as ort
        path, meta_path, check_path = onnx_paths(a)
        if not (os.path.exists(path) and os.path.exists(meta_path)) or a.reexport:
            cmd = [sys.executable, os.path.abspath(__file__), "--export-only", "--model", a.model,
                   "--tower", a.tower, "--threads", str(a.threads), "--seed", str(a.seed),
                   "--onnx-dir", a.onnx_dir] + (["--full-model"] if a.full_model else [])
            subprocess.run(cmd, check=True)
        with open(meta_path) as f:
            meta = json.load(f)
        params = meta["params"]
        if a.runtime == "ort-int8":
            quantized = path[: -len(".onnx")] + ".int8.onnx"
            if not os.path.exists(quantized) or a.reexport:
                from onnxruntime.quantization import QuantType, quantize_dynamic
                quantize_dynamic(path, quantized + ".tmp", weight_type=QuantType.QInt8)
                os.replace(quantized + ".tmp", quantized)
            path = quantized
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = a.threads
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        chk = np.load(check_path)
        got = sess.run(None, {"input": chk["input"]})[0]
        ref = chk["output"]
        check_err = float(np.abs(got - ref).max() / np.abs(ref).max())
        versions.update(onnxruntime=ort.__version__, torch_export=meta.get("torch"))
        threads = a.threads

        def fn(x):
            return sess.run(None, {"input": x})[0]
        prep = lambda x: x  # noqa: E731
    elif a.runtime == "ort-swiftclip":
        # ONNX Runtime on `swiftclip export-onnx`'s file; sizes and parameter counts from
        # `swiftclip info --json` (--meta-json). No torch in this process.
        import onnxruntime as ort
        with open(a.meta_json) as f:
            info = json.load(f)
        meta = {"image_size": info["image_size"], "context_length": info["context_length"],
                "vocab_size": info["vocab_size"]}
        params = info["params"]["visual" if a.tower == "image" else "text"]
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = a.threads
        sess = ort.InferenceSession(a.onnx_file, so, providers=["CPUExecutionProvider"])
        input_name = sess.get_inputs()[0].name
        versions.update(onnxruntime=ort.__version__)
        threads = a.threads
        check_err = None

        def fn(x):
            return sess.run(None, {input_name: x})[0]
        prep = lambda x: x  # noqa: E731
    else:
        import torch
        torch.set_num_threads(a.threads)
        module, params, meta = build_tower(a.model, a.tower, a.seed, a.full_model)
        versions.update(torch=torch.__version__)
        import open_clip
        import timm
        versions.update(open_clip=open_clip.__version__, timm=timm.__version__)
        threads = torch.get_num_threads()
        check_err = None
        bf16 = a.runtime == "torch-bf16"

        def fn(x):
            with torch.inference_mode():
                if bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return module(x)
                return module(x)
        prep = torch.from_numpy

    rss_before = rss_mb()
    results = []
    for b in sorted(batches):
        x = prep(make_input(a.tower, b, meta, seed=b))
        warmup = a.warmup if a.warmup is not None else (1 if b >= 16 else 3)
        repeats = a.repeats
        if repeats is None and a.repeats_large is not None and b >= 16:
            repeats = a.repeats_large
        times = time_runs(fn, x, warmup, repeats, a.budget_s)
        med = statistics.median(times)
        r = {
            "system": SYSTEM_NAMES[a.runtime], "model": a.model, "tower": a.tower, "batch": b,
            "median_ms": round(med, 3), "p10_ms": round(pct(times, 10), 3),
            "p90_ms": round(pct(times, 90), 3), "min_ms": round(min(times), 3),
            "items_per_s": round(b / (med / 1000.0), 3),
            "peak_rss_mb": round(rss_mb(), 1), "rss_before_runs_mb": round(rss_before, 1),
            "params": params, "threads": threads, "warmup": warmup, "repeats": len(times),
            "versions": versions,
            "peak_rss_note": "ru_maxrss of this process; one process per (system, model, tower)",
        }
        if check_err is not None:
            r["ort_vs_torch_max_rel_err"] = check_err
        results.append(r)
        log(f"{r['system']:>22} {a.model} {a.tower:5} b={b:<3} median {med:9.2f} ms "
            f"(p10 {r['p10_ms']:.2f}, p90 {r['p90_ms']:.2f}, n={len(times)})  "
            f"{r['items_per_s']:8.2f}/s  peak RSS {r['peak_rss_mb']:.0f} MB")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["convnext_v2_tiny", "ViT-B-32"])
    ap.add_argument("--tower", required=True, choices=["image", "text"])
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--runtime", default="torch", choices=["torch", "torch-bf16", "ort", "ort-int8", "ort-swiftclip"])
    ap.add_argument("--onnx-file", help="ort-swiftclip: the .onnx written by swiftclip export-onnx")
    ap.add_argument("--meta-json", help="ort-swiftclip: swiftclip info --json of the same model")
    ap.add_argument("--warmup", type=int, default=None, help="default: 3 (batch < 16), 1 (batch >= 16)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="default: enough for ~--budget-s seconds, clamped to [3, 30]")
    ap.add_argument("--repeats-large", type=int, default=None, help="repeats for batch >= 16 only")
    ap.add_argument("--budget-s", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--onnx-dir", default=os.path.join(REPO, "out", "onnx"))
    ap.add_argument("--reexport", action="store_true")
    ap.add_argument("--full-model", action="store_true", help="build both towers at full size")
    ap.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.export_only:
        export_onnx(a)
        return
    results = run(a)
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        print("| system | model | tower | batch | median ms | p10 | p90 | items/s | peak RSS MB | params |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['system']} | {r['model']} | {r['tower']} | {r['batch']} | {r['median_ms']:.1f} | "
                  f"{r['p10_ms']:.1f} | {r['p90_ms']:.1f} | {r['items_per_s']:.2f} | "
                  f"{r['peak_rss_mb']:.0f} | {r['params']:,} |")


if __name__ == "__main__":
    main()
