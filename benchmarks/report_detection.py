#!/usr/bin/env python3
"""Markdown tables from benchmarks/detection_table.sh's JSON files (eval-detect --json).
Usage: report_detection.py OUT_DIR"""
import json, os, sys

out = sys.argv[1]


def row(name, label):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p) or os.path.getsize(p) == 0:  # absent or still being written
        return None
    r = json.load(open(p))
    cells = []
    for s in ("novel", "base", "all"):
        cells += [f"{100 * r[s]['ap50']:.1f}", f"{100 * r[s]['ap']:.1f}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def table(rows):
    print(head)
    for n, l in rows:
        r = row(n, l)
        if r:
            print(r)


head = "| method | novel AP50 | novel mAP | base AP50 | base mAP | all AP50 | all mAP |\n|---|---|---|---|---|---|---|"
main = [("region_mask_blend", "**detector, masked region score: box head + blend with CLIP on the image masked outside each box (w 0.35 / 0.65)**"),
        ("region_mask_only", "masked region score only (w = 1)"),
        ("fvlm_blend", "detector, F-VLM region score: blend with CLIP RoI-aligned on the 256 px map (w 0.35 / 0.65)"),
        ("detic_invocab", "(a) Detic-style: text-embedding classifier only, no CLIP region score"),
        ("clip_region_only", "CLIP region score only (w = 1)"),
        ("heatmap_boxes", "(b) training-free: heatmap (256 px) → threshold 0.3 → connected components"),
        ("heatmap_boxes_0.15", "(b) the same, threshold 0.15"),
        ("heatmap_boxes_512", "(b) the same, 512 px input (16 × 16 map), threshold 0.3"),
        ("upper_all_invocab", "(c) closed vocabulary, boxes of all 18 categories, in-vocab classifier"),
        ("upper_all_blend", "(c) closed vocabulary, boxes of all 18 categories, blend w 0.35"),
        ("upper_all_mask_blend", "(c) closed vocabulary, boxes of all 18 categories, masked region score, blend w 0.35")]
table(main)
print("\nRegion scores (detector trained on base boxes, 256 px input; CLIP trained at 128 px):\n")
table([("clip_region_only", "RoI-align on the 256 px map, CLIP score only"), ("fvlm_blend", "RoI-align on the 256 px map, blend"),
             ("region_roi128_only", "RoI-align on a 128 px map (second backbone pass), CLIP score only"),
             ("region_roi128_blend", "RoI-align on a 128 px map, blend"),
             ("region_crop_only", "crop, stretched to 128 px, encoded (ViLD), CLIP score only"), ("region_crop_blend", "crop, blend"),
             ("region_mask_only", "image masked grey outside the box, 128 px, encoded, CLIP score only"),
             ("region_mask_blend", "masked, blend")])
print("\nCalibration of the blend with the masked region score (w base 0.35 unless said):\n")
table([("mask_novel_0.35", "geometric, w novel 0.35"), ("region_mask_blend", "geometric, w novel 0.65 (F-VLM)"),
             ("mask_novel_0.8", "geometric, w novel 0.8"), ("mask_arithmetic", "arithmetic, w novel 0.65"),
             ("mask_scale_5", "geometric, w novel 0.65, CLIP softmax scale 5 (softer)"),
             ("mask_scale_30", "geometric, w novel 0.65, CLIP softmax scale 30 (sharper)")])
print("\nBlend weights, RoI-align region score (detector trained on base boxes; w is the CLIP region score's weight):\n")
table([("blend_base_0.0", "w base 0, novel 0.65"), ("blend_novel_0.35", "w base 0.35, novel 0.35"), ("blend_novel_0.5", "w base 0.35, novel 0.5"),
             ("fvlm_blend", "w base 0.35, novel 0.65 (F-VLM)"), ("blend_base_0.65", "w base 0.65, novel 0.65"),
             ("blend_novel_0.8", "w base 0.35, novel 0.8"), ("blend_novel_1.0", "w base 0.35, novel 1.0")])
print("\nInput resolution (head trained at 256 px; CLIP at 128 px):\n")
table([("size_128", "128 px (blend)"), ("size_160", "160 px (blend)"), ("size_192", "192 px (blend)"), ("detic_192", "192 px, in-vocab only (a)"),
             ("clip_192", "192 px, CLIP region only"), ("fvlm_blend", "256 px (blend)"), ("size_320", "320 px (blend)"), ("size_384", "384 px (blend)")])
