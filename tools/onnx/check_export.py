#!/usr/bin/env python3
"""Checks a SwiftCLIP ONNX export: onnx.checker (full_check) and ONNX Runtime CPU against SwiftCLIP's output.

    check_export.py MODEL.onnx INPUTS.npy EXPECTED.npy [--tolerance 1e-4] [--min-fraction F --bound B]

INPUTS.npy is the tower's input (float32 pixel_values [N, 3, S, S], or integer token ids
[N, context], given to the model as int64). EXPECTED.npy is SwiftCLIP's embedding [N, D].
A row's error is its relative error ||ort - swift|| / ||swift||. By default every row must be
within the tolerance. With --min-fraction F and --bound B (int8 exports): at least a fraction F of
the rows within the tolerance, and every row within B. Prints one JSON line; exits 1 on a
mismatch, 2 on an invalid model.
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("expected")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--min-fraction", type=float, default=1.0)
    p.add_argument("--bound", type=float, default=None)
    a = p.parse_args()
    bound = a.tolerance if a.bound is None else a.bound

    try:
        onnx.checker.check_model(a.model, full_check=True)
    except Exception as e:  # checker raises ValidationError / InferenceError
        print(json.dumps({"ok": False, "error": f"onnx.checker: {e}"}))
        return 2

    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    x = np.load(a.inputs)
    x = x.astype(np.int64) if inp.type == "tensor(int64)" else x.astype(np.float32)
    (got,) = session.run(["embedding"], {inp.name: x})
    expected = np.load(a.expected).astype(np.float64)
    if got.shape != expected.shape:
        print(json.dumps({"ok": False, "error": f"shape {got.shape} != expected {expected.shape}"}))
        return 1
    diff = np.linalg.norm(got.astype(np.float64) - expected, axis=1)
    rows = diff / np.maximum(np.linalg.norm(expected, axis=1), 1e-30)
    rel = float(np.max(rows))
    within = rows[rows <= a.tolerance]
    ok = bool(np.all(np.isfinite(rows)) and rel <= bound and len(within) >= a.min_fraction * len(rows))
    print(json.dumps({"ok": ok, "max_rel_error": rel, "rows_within_tolerance": len(within), "rows": len(rows),
                      "max_rel_error_within_tolerance": float(np.max(within)) if len(within) else None,
                      "input": inp.name, "shape": list(got.shape), "onnx": onnx.__version__, "onnxruntime": ort.__version__}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
