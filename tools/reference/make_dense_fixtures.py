#!/usr/bin/env python3
"""Write the dense/region CLIP feature fixture (Tests/CLIPDetectionTests/Fixtures/dense/).

The model is the committed convnext_v2_atto parity fixture (Tests/CLIPModelsTests/Fixtures/
convnext_v2_atto: config.json + model.safetensors), built through open_clip's factory and loaded
with its state dict. The image is 96 x 160 (not the config's 64 x 64: dense features work at any
size the trunk accepts), so the last stage map is 3 x 5.

  image.npy     float32 (1, 3, 96, 160), standard normal
  dense.npy     float32 (1, 3, 5, 32): per location of trunk.forward_features(image), the tower's
                head as open_clip runs it on a pooled vector: trunk.forward_head (LayerNorm over
                channels; head.fc is Identity here) then visual.head (the linear projection)
  boxes.npy     float32 (4, 4) x0, y0, x1, y1 in input pixels (one partly outside the image)
  regions.npy   float32 (4, 32): torchvision.ops.roi_align(stage-4 map, boxes, output_size 7,
                spatial_scale 1/32, sampling_ratio 2, aligned=True), mean over the 7 x 7 bins,
                then the same head (pool first, then the non-linear LayerNorm)
  versions.json

Usage: make_dense_fixtures.py [--out DIR]
"""
import argparse, json, os, sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL_DIR = os.path.join(REPO, "Tests", "CLIPModelsTests", "Fixtures", "convnext_v2_atto")
DEFAULT_OUT = os.path.join(REPO, "Tests", "CLIPDetectionTests", "Fixtures", "dense")


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import open_clip
    from safetensors.torch import load_file
    from torchvision.ops import roi_align

    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        cfg = json.load(f)
    C.register_configs({"dense_fixture_atto": cfg})
    model = open_clip.create_model("dense_fixture_atto")
    sd = {k: v.float() for k, v in load_file(os.path.join(MODEL_DIR, "model.safetensors")).items()}
    model.load_state_dict(sd, strict=True)
    model.eval()
    visual = model.visual

    def head(pooled_rows):  # [M, C] -> [M, D], as the tower treats its pooled vector
        x = pooled_rows[:, :, None, None]  # global pool of a 1x1 map is the identity
        return visual.head(visual.trunk.forward_head(x))

    g = torch.Generator().manual_seed(24)
    image = torch.randn(1, 3, 96, 160, generator=g)
    fmap = visual.trunk.forward_features(image)  # [1, C, 3, 5]
    n, c, h, w = fmap.shape
    dense = head(fmap.permute(0, 2, 3, 1).reshape(-1, c)).reshape(n, h, w, -1)
    boxes = torch.tensor([[0, 0, 160, 96], [10.5, 7.25, 70.0, 60.5], [100, 40, 158, 95], [120, -10, 175, 30]], dtype=torch.float32)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    pooled = roi_align(fmap, rois, output_size=7, spatial_scale=1 / 32, sampling_ratio=2, aligned=True).mean((2, 3))
    regions = head(pooled)
    # Sanity: the whole-image mean through the head is encode_image.
    full = head(fmap.mean((2, 3)))
    assert torch.allclose(full, model.encode_image(image), atol=1e-5)

    np.save(os.path.join(args.out, "image.npy"), image.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "dense.npy"), dense.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "boxes.npy"), boxes.numpy())
    np.save(os.path.join(args.out, "regions.npy"), regions.numpy().astype(np.float32))
    C.write_json(os.path.join(args.out, "versions.json"), C.versions())
    print(f"dense {tuple(dense.shape)}, regions {tuple(regions.shape)} -> {args.out}")


if __name__ == "__main__":
    main()
