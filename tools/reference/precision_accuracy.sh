#!/usr/bin/env bash
# Full-size accuracy of --precision fp32|bf16|int8 against open_clip fp32 on the fixture photos
# (docs/precision.md). Not part of CI: needs the reference venv (tools/reference/setup_venv.sh).
#   tools/reference/precision_accuracy.sh [MODEL...]      (default convnext_v2_tiny)
# Env: SWIFTCLIP_VENV (default tools/reference/.venv), SWIFTCLIP_BIN (default .build/release/swiftclip).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
py="${SWIFTCLIP_VENV:-$repo/tools/reference/.venv}/bin/python"
bin="${SWIFTCLIP_BIN:-$repo/.build/release/swiftclip}"
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(convnext_v2_tiny)
[ -x "$py" ] || { echo "reference venv not found at $py — run tools/reference/setup_venv.sh" >&2; exit 2; }
[ -x "$bin" ] || swift build -c release --product swiftclip >&2
for m in "${models[@]}"; do
  d="out/precision/$m"
  [ -f "$d/zs_text_features.npy" ] || PYTHONDONTWRITEBYTECODE=1 "$py" tools/reference/precision_accuracy.py generate --model "$m" --out "$d" >&2
  for p in fp32 bf16 int8; do
    "$bin" embed-image --model "$m" --weights "$d/model.safetensors" --precision "$p" --output "$d/swift_${p}_image.npy" "$d/photos.npy" >&2
    "$bin" embed-text --model "$m" --weights "$d/model.safetensors" --precision "$p" --tokens "$d/tokens.npy" --output "$d/swift_${p}_text.npy" >&2
    "$bin" embed-image --model "$m" --weights "$d/model.safetensors" --precision "$p" --output "$d/swift_${p}_zs_image.npy" "$d/zs_images.npy" >&2
    "$bin" embed-text --model "$m" --weights "$d/model.safetensors" --precision "$p" --tokens "$d/zs_tokens.npy" --output "$d/swift_${p}_zs_text.npy" >&2
  done
  echo "## $m"
  PYTHONDONTWRITEBYTECODE=1 "$py" tools/reference/precision_accuracy.py compare --dir "$d"
done
