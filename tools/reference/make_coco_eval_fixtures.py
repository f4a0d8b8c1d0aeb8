#!/usr/bin/env python3
"""Write the COCO evaluation fixture for `swiftclip eval-detect` (Tests/CLIPDetectionTests/Fixtures/cocoeval/).

A small random ground truth (8 images, 5 categories: 3 base, 2 novel, one of them with no boxes;
a crowd box; boxes touching the image border) and detections made from it with jitter, misses,
duplicates, false positives, tied scores and detections on images without boxes. pycocotools'
COCOeval (iouType bbox) gives mAP@[.5:.95], AP50 and AP75 for all, base and novel categories
(params.catIds restricted to the set), written to expected.json.

Usage: make_coco_eval_fixtures.py [--out DIR]
"""
import argparse, contextlib, io, json, os, random, sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "Tests", "CLIPDetectionTests", "Fixtures", "cocoeval")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(24)
    cats = [{"id": 1, "name": "red circle", "split": "base"}, {"id": 2, "name": "blue square", "split": "base"},
            {"id": 3, "name": "green triangle", "split": "base"}, {"id": 4, "name": "red triangle", "split": "novel"},
            {"id": 5, "name": "cyan circle", "split": "novel"}]
    images, anns, dets = [], [], []
    aid = 1
    for i in range(1, 9):
        W, H = rng.choice([(128, 96), (160, 160), (200, 120)])
        images.append({"id": i, "file_name": f"{i:03d}.png", "width": W, "height": H})
        for _ in range(rng.randint(0 if i == 8 else 1, 5)):
            c = rng.choice([1, 2, 3, 4])  # category 5 never has ground truth
            w, h = rng.uniform(8, W / 2), rng.uniform(8, H / 2)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            if rng.random() < 0.15:
                x = 0.0  # on the border
            box = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
            crowd = 1 if aid == 5 else 0
            anns.append({"id": aid, "image_id": i, "category_id": c, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd})
            aid += 1
            if rng.random() < 0.8:  # found, with jitter
                j = [box[0] + rng.gauss(0, w * 0.08), box[1] + rng.gauss(0, h * 0.08), box[2] * rng.uniform(0.8, 1.2), box[3] * rng.uniform(0.8, 1.2)]
                dets.append({"image_id": i, "category_id": c, "bbox": [round(v, 2) for v in j], "score": round(rng.uniform(0.2, 1), 2)})
                if rng.random() < 0.3:  # duplicate
                    dets.append({"image_id": i, "category_id": c, "bbox": [round(v * rng.uniform(0.95, 1.05), 2) for v in j], "score": round(rng.uniform(0.1, 0.9), 2)})
            if rng.random() < 0.25:  # the right box, the wrong class
                dets.append({"image_id": i, "category_id": rng.choice([1, 2, 3, 4, 5]), "bbox": box, "score": round(rng.uniform(0.1, 0.7), 2)})
        for _ in range(rng.randint(0, 3)):  # false positives (also on the image with no boxes)
            w, h = rng.uniform(8, W / 3), rng.uniform(8, H / 3)
            dets.append({"image_id": i, "category_id": rng.choice([1, 2, 3, 4, 5]),
                         "bbox": [round(rng.uniform(0, W - w), 2), round(rng.uniform(0, H - h), 2), round(w, 2), round(h, 2)],
                         "score": round(rng.uniform(0.05, 0.8), 1)})  # 1 decimal: tied scores
    gt = {"images": images, "annotations": anns, "categories": cats}
    with open(os.path.join(args.out, "instances.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(args.out, "detections.json"), "w") as f:
        json.dump(dets, f)

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        coco = COCO(os.path.join(args.out, "instances.json"))
        res = coco.loadRes(os.path.join(args.out, "detections.json"))
    expected = {}
    for name, ids in [("all", [1, 2, 3, 4, 5]), ("base", [1, 2, 3]), ("novel", [4, 5])]:
        with contextlib.redirect_stdout(quiet):
            ev = COCOeval(coco, res, "bbox")
            ev.params.catIds = ids
            ev.evaluate(); ev.accumulate(); ev.summarize()
        expected[name] = {"ap": float(ev.stats[0]), "ap50": float(ev.stats[1]), "ap75": float(ev.stats[2])}
    import importlib.metadata, numpy
    expected["versions"] = {"python": sys.version.split()[0], "numpy": numpy.__version__,
                            "pycocotools": importlib.metadata.version("pycocotools")}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps(expected, indent=1))
    print(f"{len(images)} images, {len(anns)} boxes, {len(dets)} detections -> {args.out}")


if __name__ == "__main__":
    main()
