#!/usr/bin/env python3
"""Markdown tables from benchmarks/detection_table.sh's JSON files (eval-detect --json).
Usage: report_detection.py OUT_DIR"""
import json, os, sys

out = sys.argv[1]


def row(name, label):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None
    r = json.load(open(p))
    cells = []
    for s in ("novel", "base", "all"):
        cells += [f"{100 * r[s]['ap50']:.1f}", f"{100 * r[s]['ap']:.1f}"]
    return f"| {label} | " + " | ".join(cells) + " |"


head = "| method | novel AP50 | novel mAP | base AP50 | base mAP | all AP50 | all mAP |\n|---|---|---|---|---|---|---|"
main = [("fvlm_blend", "**detector: box head + blend of in-vocab and CLIP region scores (w 0.35 base / 0.65 novel)**"),
        ("detic_invocab", "(a) Detic-style: text-embedding classifier only, no CLIP region score"),
        ("clip_region_only", "CLIP region score only (w = 1)"),
        ("heatmap_boxes", "(b) training-free: heatmap (256 px) → threshold 0.3 → connected components"),
        ("heatmap_boxes_0.15", "(b) the same, threshold 0.15"),
        ("heatmap_boxes_512", "(b) the same, 512 px input (16 × 16 map), threshold 0.3"),
        ("upper_all_invocab", "(c) closed vocabulary, boxes of all 18 categories, in-vocab classifier"),
        ("upper_all_blend", "(c) closed vocabulary, boxes of all 18 categories, blend w 0.35")]
print(head)
for n, l in main:
    r = row(n, l)
    if r:
        print(r)
print("\nBlend weights (detector trained on base boxes; w is the CLIP region score's weight):\n")
print(head)
for n, l in [("blend_base_0.0", "w base 0, novel 0.65"), ("blend_novel_0.35", "w base 0.35, novel 0.35"), ("blend_novel_0.5", "w base 0.35, novel 0.5"),
             ("fvlm_blend", "w base 0.35, novel 0.65 (F-VLM)"), ("blend_base_0.65", "w base 0.65, novel 0.65"),
             ("blend_novel_0.8", "w base 0.35, novel 0.8"), ("blend_novel_1.0", "w base 0.35, novel 1.0")]:
    r = row(n, l)
    if r:
        print(r)
print("\nInput resolution (head trained at 256 px; CLIP at 128 px):\n")
print(head)
for n, l in [("size_128", "128 px (blend)"), ("size_160", "160 px (blend)"), ("size_192", "192 px (blend)"), ("detic_192", "192 px, in-vocab only (a)"),
             ("clip_192", "192 px, CLIP region only"), ("fvlm_blend", "256 px (blend)"), ("size_320", "320 px (blend)"), ("size_384", "384 px (blend)")]:
    r = row(n, l)
    if r:
        print(r)
