#!/usr/bin/env python3
"""Data-parallel scaling model for SwiftCLIP's MPI training (docs/scaling.md).

Ring allreduce of S bytes over W ranks on links of b Gb/s with per-message latency alpha, in k
buckets: T(S) = 2 (W-1)/W * S / (b/8 * 1e9) + 2 (W-1) * k * alpha. The text tower's gradients
(and logit_scale's) start when the text backward ends and can hide behind the image tower's
backward (t_image_backward); the image tower's go after the backward. Efficiency =
compute / (compute + exposed communication). Usage:
    benchmarks/scaling_model.py [--step S] [--image-backward S] [--bytes-per-value 4|2] [--bucket-mb 25] [--alpha 10e-6]
"""
import argparse
import math

TEXT, VISUAL = 63_428_097, 28_259_712   # convnext_v2_tiny: text tower + logit_scale, image tower (swiftclip info)


def ring(nbytes, ranks, gbps, buckets, alpha):
    return 2 * (ranks - 1) / ranks * nbytes / (gbps / 8 * 1e9) + 2 * (ranks - 1) * buckets * alpha


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--step", type=float, default=0.5, help="compute seconds per step on one rank (forward + backward + AdamW)")
    p.add_argument("--image-backward", type=float, default=None, help="seconds of the image tower's backward (default: half the step)")
    p.add_argument("--bytes-per-value", type=int, default=4, help="4 for fp32 gradients, 2 for bf16")
    p.add_argument("--bucket-mb", type=float, default=25)
    p.add_argument("--alpha", type=float, default=10e-6, help="latency per message, seconds")
    a = p.parse_args()
    ib = a.image_backward if a.image_backward is not None else a.step / 2
    text, visual = TEXT * a.bytes_per_value, VISUAL * a.bytes_per_value
    kt, kv = (math.ceil(n / (a.bucket_mb * 2**20)) for n in (text, visual))
    print(f"gradients {(text + visual) / 1e6:.0f} MB ({kt} + {kv} buckets of {a.bucket_mb:g} MB), step {a.step} s, image backward {ib} s")
    print("| link | " + " | ".join(f"W={w}" for w in (8, 16, 32, 64, 128, 256)) + " |")
    print("|---|" + "---|" * 6)
    for gbps in (25, 100, 200, 400):
        cells = []
        for w in (8, 16, 32, 64, 128, 256):
            total = ring(text + visual, w, gbps, kt + kv, a.alpha)
            exposed = max(0.0, ring(text, w, gbps, kt, a.alpha) - ib) + ring(visual, w, gbps, kv, a.alpha)
            cells.append(f"{total * 1e3:.0f} ms, {100 * a.step / (a.step + exposed):.0f}%")
        print(f"| {gbps} Gb/s | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
