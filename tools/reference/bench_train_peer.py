"""PyTorch's training step, the peer of `swiftclip bench-train` (one configuration per process, so
peak RSS is the configuration's own).

One step = open_clip's model forward (train mode: drop_path active), open_clip's ClipLoss,
backward, torch.optim.AdamW (open_clip_train's two parameter groups: no decay for ndim < 2, bn,
ln, bias, logit_scale), zero_grad — what open_clip_train.main does per step at accum_freq 1.
Random images, captions like bench-train's ("a photo of a dog sitting on a sofa.") tokenized with
open_clip's tokenizer. Prints one JSON line with every step's time in order (warm-up steps too).

Steady state: PyTorch's CPU steps take 3-4 steps to settle (its allocator and first-touch page
faults; measured at batch 32: 23.7, 20.1, 16.0, 13.0, 12.9 s), so the default is 4 warm-up steps
and the median of 5 timed ones.

  python bench_train_peer.py --model convnext_v2_tiny --batch 32 --precision fp32|amp_bf16
"""
import argparse
import json
import resource
import sys
import time

import _common as C

SUBJECTS = ["a dog", "two cats", "an old man", "a red car", "a wooden table", "a child", "a bowl of soup", "a city street"]
SCENES = ["sitting on a sofa", "in the rain at night", "next to a window", "on a sunny beach",
          "covered in snow", "photographed from above", "in a busy market", "with a blurry background"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="convnext_v2_tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--precision", default="fp32", choices=["fp32", "amp_bf16"])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()

    import open_clip
    import torch
    from open_clip.loss import ClipLoss
    torch.set_num_threads(a.threads)
    model = C.create_model(a.model, seed=0)
    model.train()
    tokenizer = open_clip.get_tokenizer(a.model) if a.model in open_clip.list_models() else open_clip.get_tokenizer("ViT-B-32")
    captions = [f"a photo of {SUBJECTS[i % 8]} {SCENES[(i // 8 + i * 3) % 8]}." for i in range(a.batch)]
    text = tokenizer(captions)
    size = model.visual.image_size[0] if isinstance(model.visual.image_size, (tuple, list)) else model.visual.image_size
    images = torch.from_numpy(C.np.random.default_rng(3).uniform(-2, 2, (a.batch, 3, size, size)).astype("float32"))
    no_decay, rest, _ = C.param_groups(model)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": rest, "weight_decay": 0.2}]
    vit = a.model.lower().startswith("vit")
    opt = torch.optim.AdamW(groups, lr=5e-4, betas=(0.9, 0.98 if vit else 0.999), eps=1e-6 if vit else 1e-8)
    loss_fn = ClipLoss()

    def step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "amp_bf16"):
            image_features, text_features, logit_scale = model(images, text)[:3]
            loss = loss_fn(image_features, text_features, logit_scale)
        loss.backward()
        opt.step()

    def timed():
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0

    warmup_times = [timed() for _ in range(a.warmup)]
    step_times = [timed() for _ in range(a.steps)]
    times = sorted(step_times)
    median = times[len(times) // 2]
    print(json.dumps({"system": f"pytorch-{a.precision}", "model": a.model, "batch": a.batch, "steps": a.steps,
                      "median_step_s": median, "min_step_s": times[0], "max_step_s": times[-1],
                      "images_per_s": a.batch / median,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "threads": a.threads, "warmup": a.warmup,
                      "warmup_step_s": warmup_times, "step_s": step_times, "torch": torch.__version__, "open_clip": open_clip.__version__}))


if __name__ == "__main__":
    sys.exit(main())
