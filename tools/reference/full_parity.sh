#!/usr/bin/env bash
# Full-size numeric parity, SwiftCLIP vs open_clip, for convnext_v2_tiny and ViT-B-32.
# Not part of CI (needs the reference venv: tools/reference/setup_venv.sh). Run via `make parity-full`.
#
#   tools/reference/full_parity.sh [--python-only] [--regenerate] [MODEL...]
#
# For each model: the Python half (open_clip) writes out/parity/<model>/{model.safetensors,
# images.npy, tokens.npy, image_features.npy, text_features.npy, ...} (skipped when present;
# --regenerate forces it), then the Swift CLI embeds the same inputs with the same weights:
#   swiftclip embed-image --model M --weights W --output swift_image_features.npy images.npy
#   swiftclip embed-text  --model M --weights W --tokens tokens.npy --output swift_text_features.npy
# and both are compared: max over rows of ||a-b||/||b|| and max|a-b|/max|b| must be <= 1e-4
# (SWIFTCLIP_PARITY_TOL overrides). Prints a table; exits non-zero on any failure.
# --python-only: generate the references only (no Swift binary needed).
# Env: SWIFTCLIP_VENV (default tools/reference/.venv), SWIFTCLIP_BIN (default .build/release/swiftclip).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
py="${SWIFTCLIP_VENV:-$repo/tools/reference/.venv}/bin/python"
bin="${SWIFTCLIP_BIN:-$repo/.build/release/swiftclip}"
tol="${SWIFTCLIP_PARITY_TOL:-1e-4}"
python_only=0; regenerate=0; models=()
for arg in "$@"; do
  case "$arg" in
    --python-only) python_only=1 ;;
    --regenerate) regenerate=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) models+=("$arg") ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(convnext_v2_tiny ViT-B-32)

if [ ! -x "$py" ]; then
  echo "reference venv not found at $py — run tools/reference/setup_venv.sh (or set SWIFTCLIP_VENV)" >&2
  exit 2
fi
if [ "$python_only" = 0 ] && [ ! -x "$bin" ]; then
  echo "building $bin (swift build -c release)" >&2
  swift build -c release --product swiftclip >&2
fi

status=0
rows=()
for m in "${models[@]}"; do
  d="out/parity/$m"
  if [ "$regenerate" = 1 ] || [ ! -f "$d/text_features.npy" ]; then
    echo "== $m: generating open_clip reference in $d" >&2
    "$py" tools/reference/full_parity.py generate --model "$m" --out "$d" >&2
  fi
  [ "$python_only" = 1 ] && continue
  echo "== $m: running swiftclip" >&2
  if ! "$bin" embed-image --model "$m" --weights "$d/model.safetensors" \
        --output "$d/swift_image_features.npy" "$d/images.npy" >&2; then
    rows+=("| $m image | swiftclip embed-image failed | | FAIL |"); status=1
  else
    rows+=("$("$py" tools/reference/full_parity.py compare --tol "$tol" --name "$m image" \
        --expected "$d/image_features.npy" --actual "$d/swift_image_features.npy")") || status=1
  fi
  if ! "$bin" embed-text --model "$m" --weights "$d/model.safetensors" \
        --tokens "$d/tokens.npy" --output "$d/swift_text_features.npy" >&2; then
    rows+=("| $m text | swiftclip embed-text failed | | FAIL |"); status=1
  else
    rows+=("$("$py" tools/reference/full_parity.py compare --tol "$tol" --name "$m text" \
        --expected "$d/text_features.npy" --actual "$d/swift_text_features.npy")") || status=1
  fi
done

if [ "$python_only" = 1 ]; then
  echo "references written under out/parity/ (--python-only: no comparison)"
  exit 0
fi
echo
echo "Full-size parity vs open_clip (tolerance $tol)"
echo
echo "| output | max row rel. L2 err | max abs err / max abs | result |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $status
