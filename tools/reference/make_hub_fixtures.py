#!/usr/bin/env python3
"""A Hugging Face hub folder as open_clip publishes it, and what open_clip computes from it.

open_clip's ``save_for_hf`` (push_to_hf_hub.py) writes ``open_clip_config.json``
(``{"model_cfg", "preprocess_cfg"}`` via ``save_config_for_hf``), ``open_clip_model.safetensors``
and ``open_clip_pytorch_model.bin`` (``torch.save`` of the state dict), plus tokenizer files. This
script writes such a folder to a temporary directory for the tiny ViT of
Tests/CLIPModelsTests/Fixtures/vit_tiny_quickgelu (its weights), with a non-default
preprocess_cfg (mean/std 0.5, bilinear, resize_mode "longest"), loads it back with
``open_clip.create_model_and_transforms("local-dir:DIR")`` and records:

  Tests/CLIPDataTests/Fixtures/hub/open_clip_config.json   the folder's config, as written
  Tests/CLIPDataTests/Fixtures/hub/expected.json           per test image: open_clip's normalised
                                                            image embedding
  Tests/CLIPDataTests/Fixtures/hub/crops.rgb               per test image: the 8-bit RGB pixels
                                                            open_clip's transform feeds ToTensor
  Tests/CLIPDataTests/Fixtures/hub/open_clip_pytorch_model.bin  (only with --bin) torch.save's file

The weights file is not committed twice: the test copies vit_tiny_quickgelu/model.safetensors in
as open_clip_model.safetensors; this script checks that it holds exactly the tensors save_for_hf
wrote. Run: tools/reference/.venv/bin/python tools/reference/make_hub_fixtures.py [--bin]
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.model import set_model_preprocess_cfg
from open_clip.push_to_hf_hub import save_config_for_hf
from PIL import Image
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "Tests" / "CLIPModelsTests" / "Fixtures" / "vit_tiny_quickgelu"
OUT = ROOT / "Tests" / "CLIPDataTests" / "Fixtures" / "hub"
IMAGES = ["modes/p_trns_40x30.png", "modes/rgba_30x40.png", "modes/cmyk_40x30.jpg", "china.jpg"]
PREPROCESS = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear", "resize_mode": "longest"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="store_true", help="also commit the torch.save .bin weights")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model_cfg = json.loads((TINY / "config.json").read_text())
    model = open_clip.model.CLIP(**model_cfg).eval()
    model.load_state_dict(load_file(TINY / "model.safetensors"))
    set_model_preprocess_cfg(model, {"size": model_cfg["vision_cfg"]["image_size"], **PREPROCESS})
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hub = Path(tmp)
        # save_for_hf, without the tokenizer files (SwiftCLIP reads its own vocabulary).
        tensors = model.state_dict()
        save_file(tensors, hub / "open_clip_model.safetensors")
        torch.save(tensors, hub / "open_clip_pytorch_model.bin")
        save_config_for_hf(model, hub / "open_clip_config.json", model_config=model_cfg)
        written = load_file(hub / "open_clip_model.safetensors")
        committed = load_file(TINY / "model.safetensors")
        assert written.keys() == committed.keys() and all(torch.equal(written[k], committed[k]) for k in written)

        loaded, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{hub}")
        loaded.eval()
        print(preprocess, file=sys.stderr)
        expected = {"preprocess": PREPROCESS, "image_size": model_cfg["vision_cfg"]["image_size"], "images": []}
        crops = b""
        for name in IMAGES:
            path = ROOT / "Tests" / "CLIPDataTests" / "Fixtures" / name
            x = preprocess(Image.open(path)).unsqueeze(0)
            eight_bit = Image.open(path)
            for step in preprocess.transforms[:-2]:
                eight_bit = step(eight_bit)
            assert torch.equal(preprocess.transforms[-1](preprocess.transforms[-2](eight_bit)), x[0])
            crops += np.asarray(eight_bit).tobytes()
            with torch.no_grad():
                f = loaded.encode_image(x, normalize=True)
            expected["images"].append({"file": name, "embedding": f.flatten().tolist()})
        (OUT / "crops.rgb").write_bytes(crops)
        shutil.copyfile(hub / "open_clip_config.json", OUT / "open_clip_config.json")
        if args.bin:
            shutil.copyfile(hub / "open_clip_pytorch_model.bin", OUT / "open_clip_pytorch_model.bin")
    (OUT / "expected.json").write_text(json.dumps(expected) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
