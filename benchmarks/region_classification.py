#!/usr/bin/env python3
"""Why is the CLIP region score weak? Zero-shot accuracy over the 18 scene labels of a scenes CLIP on
the validation boxes (ground truth, no detector), each box embedded four ways with open_clip + timm +
torchvision: cropped and stretched to CLIP's 128 px (ViLD), the image masked mid-grey outside the
box at 128 px (as `--region-embedding mask`), and RoI-aligned on the last stage map at 128 and 256 px
(F-VLM, `roiAlign`); plus the whole image's recall of its own labels among its top n (n = objects).
Usage: region_classification.py MODEL_CONFIG WEIGHTS SCENES_DIR   (CPU; a few minutes)"""
import json, sys
import numpy as np, open_clip, torch
from PIL import Image
from safetensors.torch import load_file
from torchvision.ops import roi_align

config, weights, scenes = sys.argv[1:4]
open_clip.add_model_config(config)
name = config.rsplit("/", 1)[-1].removesuffix(".json")
m = open_clip.create_model(name)
m.load_state_dict(load_file(weights))
m.eval()
tok = open_clip.get_tokenizer(name)
side = m.visual.image_size[0] if isinstance(m.visual.image_size, tuple) else m.visual.image_size
gt = json.load(open(f"{scenes}/instances_val.json"))
cats = sorted(gt["categories"], key=lambda c: c["id"])
cid = [c["id"] for c in cats]
novel = {c["id"] for c in cats if c.get("split") == "novel"}
mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(3, 1, 1)
std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(3, 1, 1)


def prep(img, s):  # stretched to s × s, bicubic, normalised
    a = np.asarray(img.convert("RGB").resize((s, s), Image.BICUBIC), dtype=np.float32) / 255
    return (torch.from_numpy(a).permute(2, 0, 1) - mean) / std


imgs = {i["id"]: Image.open(f"{scenes}/val/{i['file_name']}") for i in gt["images"]}
anns = gt["annotations"]
labels = torch.tensor([cid.index(a["category_id"]) for a in anns])
isnov = torch.tensor([a["category_id"] in novel for a in anns])


def report(E, tag):
    ok = ((E / E.norm(dim=-1, keepdim=True)) @ T.T).argmax(-1).eq(labels).float()
    print(f"{tag:34s} all {ok.mean():.3f}  base {ok[~isnov].mean():.3f}  novel {ok[isnov].mean():.3f}")


def rect(a):
    x, y, w, h = a["bbox"]
    return int(np.floor(x)), int(np.floor(y)), int(np.ceil(x + w)), int(np.ceil(y + h))


with torch.no_grad():
    T = m.encode_text(tok(["a " + c["name"] for c in cats]), normalize=True)
    print(f"{len(anns)} validation boxes ({int(isnov.sum())} novel), 18 labels (chance 0.056)")
    report(m.encode_image(torch.stack([prep(imgs[a["image_id"]].crop(rect(a)), side) for a in anns])), f"crop, {side} px (ViLD)")
    masked = []
    for a in anns:
        im = np.asarray(imgs[a["image_id"]].convert("RGB"))
        out = np.full_like(im, 128)
        x0, y0, x1, y1 = rect(a)
        out[y0:y1, x0:x1] = im[y0:y1, x0:x1]
        masked.append(prep(Image.fromarray(out), side))
    report(m.encode_image(torch.stack(masked)), f"mask grey outside the box, {side} px")
    trunk = m.visual.trunk
    index = {i["id"]: k for k, i in enumerate(gt["images"])}
    for s in (side, 256):
        X = torch.stack([prep(imgs[i["id"]], s) for i in gt["images"]])
        fm = trunk.forward_features(X)
        f = s / gt["images"][0]["width"]
        boxes = torch.tensor([[index[a["image_id"]], a["bbox"][0] * f, a["bbox"][1] * f, (a["bbox"][0] + a["bbox"][2]) * f,
                               (a["bbox"][1] + a["bbox"][3]) * f] for a in anns], dtype=torch.float32)
        r = roi_align(fm, boxes, 7, spatial_scale=fm.shape[-1] / s, sampling_ratio=2, aligned=True).mean((2, 3))
        n = trunk.head.norm
        r = torch.nn.functional.layer_norm(r, (r.shape[-1],), n.weight, n.bias, n.eps)
        report(m.visual.head(trunk.head.fc(r)), f"RoI-align on the {s} px map (F-VLM)")
    E = m.encode_image(torch.stack([prep(imgs[i["id"]], side) for i in gt["images"]]), normalize=True)
    hit = total = 0
    for k, i in enumerate(gt["images"]):
        g = {cid.index(a["category_id"]) for a in anns if a["image_id"] == i["id"]}
        hit += len(g & set((E[k] @ T.T).topk(len(g)).indices.tolist()))
        total += len(g)
    print(f"whole image, its labels among its top n: recall {hit / total:.3f}")
