#!/usr/bin/env bash
# Create the reference venv (git-ignored) with the versions SwiftCLIP's fixtures were made with.
#   tools/reference/setup_venv.sh            -> tools/reference/.venv
#   SWIFTCLIP_VENV=/some/dir setup_venv.sh   -> that directory instead
# torch from PyPI pulls CUDA libraries (~5 GB on disk); it runs on the CPU all the same. To get the
# much smaller CPU-only build, set SWIFTCLIP_TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (the numbers we record were made with the PyPI build, 2.11.0+cu130, running on the CPU).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${SWIFTCLIP_VENV:-$here/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade --quiet pip

if [ -n "${SWIFTCLIP_TORCH_INDEX:-}" ]; then
  # torch (and only torch) from the given index first; the line below then finds it satisfied.
  "$venv/bin/python" -m pip install --index-url "$SWIFTCLIP_TORCH_INDEX" torch==2.11.0
fi

"$venv/bin/python" -m pip install \
  torch==2.11.0 \
  timm==1.0.31 \
  open-clip-torch==3.3.0 \
  onnx==1.23.2 \
  onnxruntime==1.32.0 \
  safetensors==0.8.0 \
  pillow==13.0.0 \
  numpy==2.4.6 \
  matplotlib==3.11.2 \
  pandas==3.1.1 braceexpand==0.1.7 webdataset==1.0.2 \
  pycocotools==2.0.11 transformers==5.25.0
# pandas, braceexpand, webdataset: open_clip_train.main (benchmarks/train_pipeline.py);
# pycocotools, transformers: the detection mAP fixture and the OWL-ViT timing.

"$venv/bin/python" - <<'PY'
import torch, timm, open_clip, onnx, onnxruntime, safetensors, PIL, numpy
print("reference venv ready: torch", torch.__version__, "timm", timm.__version__,
      "open_clip", open_clip.__version__, "onnxruntime", onnxruntime.__version__,
      "numpy", numpy.__version__)
PY
