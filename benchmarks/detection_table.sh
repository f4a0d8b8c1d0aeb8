#!/usr/bin/env bash
# The open-vocabulary detection table of docs/detection.md: trains the box head on base boxes and on
# all boxes over a frozen CLIP, then scores every method on the validation scenes with all 18
# category names queried at once. Usage (from the repository root, after `make-synthetic-scenes`
# and `train`):
#   [KEEP=1] [ONLY="fvlm_blend …"] benchmarks/detection_table.sh MODEL_CONFIG CLIP_WEIGHTS SCENES_DIR OUT_DIR [EPOCHS]
set -euo pipefail
model=$1 weights=$2 scenes=$3 out=$4 epochs=${5:-15}
bin=.build/release/swiftclip
mkdir -p "$out"
common=(--model "$model" --weights "$weights")
for set in base all; do
    [ -f "$out/det_$set.safetensors" ] || $bin train-detector "${common[@]}" --annotations "$scenes/instances_train_$set.json" \
        --images "$scenes/train" --output "$out/det_$set.safetensors" --epochs "$epochs" | tee "$out/train_$set.log"
done
ev() {  # name, then eval-detect options; KEEP=1 keeps a row whose JSON is already there
    local name=$1; shift
    if [ "${KEEP:-0}" = 1 ] && [ -s "$out/$name.json" ]; then echo "$name: kept"; return; fi
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi   # ONLY="row row …": just these rows
    $bin eval-detect --annotations "$scenes/instances_val.json" --images "$scenes/val" "${common[@]}" --json "$@" > "$out/$name.json"
    echo "$name: $(tr -d ' \n' < "$out/$name.json")"
}
ev fvlm_blend --detector "$out/det_base.safetensors" --scoring blend --region-embedding roiAlign
ev detic_invocab --detector "$out/det_base.safetensors" --scoring inVocabulary
ev clip_region_only --detector "$out/det_base.safetensors" --scoring clipRegion --region-embedding roiAlign
ev heatmap_boxes --heatmap-threshold 0.3 --size 256
ev upper_all_invocab --detector "$out/det_all.safetensors" --scoring inVocabulary
ev upper_all_blend --detector "$out/det_all.safetensors" --scoring blend --base-weight 0.35 --novel-weight 0.35 --region-embedding roiAlign
for w in 0.35 0.5 0.8 1.0; do ev "blend_novel_$w" --detector "$out/det_base.safetensors" --novel-weight "$w" --region-embedding roiAlign; done
for w in 0.0 0.65; do ev "blend_base_$w" --detector "$out/det_base.safetensors" --base-weight "$w" --region-embedding roiAlign; done
for s in 192 320 384; do ev "size_$s" --detector "$out/det_base.safetensors" --size "$s" --region-embedding roiAlign; done
# The rows above are F-VLM's RoI-align region score; the default (mask) rows follow.
# How the CLIP region score is computed (docs/detection.md, "Region scores"): the image masked outside
# the box and re-encoded, RoI-align on a map at CLIP's training size, crops re-encoded (ViLD).
clip_side=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vision_cfg'].get('image_size', 224))" "$model" 2>/dev/null || echo 224)
for r in "mask:--region-embedding mask" "roi$clip_side:--region-embedding roiAlign --region-size $clip_side" "crop:--region-embedding crop"; do
    name=${r%%:*} opts=${r#*:}
    ev "region_${name}_only" --detector "$out/det_base.safetensors" --scoring clipRegion $opts
    ev "region_${name}_blend" --detector "$out/det_base.safetensors" $opts
done
# How many boxes the masked score re-encodes (--encoded-regions; the default 10; 100 = every proposal).
for n in 5 20 100; do ev "region_mask_blend_n$n" --detector "$out/det_base.safetensors" --region-embedding mask --encoded-regions "$n"; done
# Calibration of the blend with the masked region score.
ev upper_all_mask_blend --detector "$out/det_all.safetensors" --region-embedding mask --base-weight 0.35 --novel-weight 0.35
for w in 0.35 0.8; do ev "mask_novel_$w" --detector "$out/det_base.safetensors" --region-embedding mask --novel-weight "$w"; done
ev mask_arithmetic --detector "$out/det_base.safetensors" --region-embedding mask --blend-mean arithmetic
for s in 5 30; do ev "mask_scale_$s" --detector "$out/det_base.safetensors" --region-embedding mask --clip-scale "$s"; done
