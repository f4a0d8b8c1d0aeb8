#!/usr/bin/env python3
"""Run open_clip_train.main with SwiftCLIP's model configs registered.

open_clip ships no `convnext_v2_tiny` config (ours is in _common.py), and `--model` takes only a
registered name, so this registers it — and any `--model` given as a path to a JSON config, under
the file's stem — then hands every argument to `open_clip_train.main.main` unchanged.

Usage: run_open_clip_train.py --model convnext_v2_tiny|CONFIG.json <open_clip_train.main flags>
Run on the CPU: CUDA_VISIBLE_DEVICES= ... --precision fp32 (needs pandas, braceexpand, webdataset).
"""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def main(argv):
    argv = list(argv)
    if "--model" in argv:
        i = argv.index("--model") + 1
        if argv[i].endswith(".json"):
            with open(argv[i]) as f:
                name = os.path.splitext(os.path.basename(argv[i]))[0]
                C.register_configs({name: json.load(f)})
            argv[i] = name
        else:
            C.model_config(argv[i])
    from open_clip_train.main import main as train_main
    train_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
