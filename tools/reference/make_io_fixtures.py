"""Writes the tiny interop fixtures read by Tests/CLIPNNTests/IOInteropTests.swift.

Run once from the repository root with the reference venv:
    tools/reference/.venv/bin/python tools/reference/make_io_fixtures.py
Verified with numpy 2.4.6, torch 2.11.0, safetensors 0.8.0.
Values follow simple formulas (arange-based) that the Swift test recomputes.

The other direction (manual, not CI): let Swift write files, then check them with Python:
    mkdir -p /tmp/io && SWIFTCLIP_IO_INTEROP_DIR=/tmp/io swift test -c release \
        --filter IOInteropTests.testWritesFilesForPythonToCheck
    tools/reference/.venv/bin/python tools/reference/make_io_fixtures.py --check-swift-written /tmp/io
"""
import io
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file



def check_swift_written(folder):
    """Reads what IOInteropTests.testWritesFilesForPythonToCheck wrote; npy must match np.save byte for byte."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    d = pathlib.Path(folder)
    st = load_file(d / "swift_written.safetensors")
    assert set(st) == {"a", "scalar", "empty"}, set(st)
    assert np.array_equal(st["a"], (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4))
    assert st["scalar"].shape == () and st["scalar"] == np.float32(1.25)
    assert st["empty"].shape == (0, 3) and st["empty"].dtype == np.float32
    with safe_open(d / "swift_written.safetensors", framework="np") as f:
        assert f.metadata() == {"k": "v", 'quote"d': "\u00fc"}, f.metadata()
    expected = {
        "f4": (np.arange(15, dtype=np.float32) * 0.25 - 2).reshape(3, 5),
        "scalar": np.array(1.25, dtype=np.float32),
        "empty": np.zeros((0, 2), dtype=np.float32),
        "i4": (np.arange(6, dtype=np.int32) - 3).reshape(2, 3),
    }
    for name, want in expected.items():
        path = d / f"swift_written_{name}.npy"
        got = np.load(path)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), name
        buf = io.BytesIO()
        np.save(buf, want)
        assert path.read_bytes() == buf.getvalue(), f"{name}: bytes differ from np.save"
    print("Python reads the Swift-written files: OK")


if len(sys.argv) == 3 and sys.argv[1] == "--check-swift-written":
    check_swift_written(sys.argv[2])
    sys.exit(0)

out = pathlib.Path(__file__).resolve().parents[2] / "Tests" / "CLIPNNTests" / "Fixtures"
out.mkdir(parents=True, exist_ok=True)

# safetensors: F32 / F16 / BF16 / I64 with metadata.
tensors = {
    "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,   # i*0.5-1
    "f16": (torch.arange(8, dtype=torch.float32) * 0.25 - 1.0).half(),     # i*0.25-1
    "bf16": (torch.arange(4, dtype=torch.float32).reshape(2, 2) * 1.5 - 2.0).bfloat16(),  # i*1.5-2
    "f16_special": torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 2.0 ** -24, 65504.0],
                                dtype=torch.float16),
    "i64": torch.arange(5, dtype=torch.int64) - 2,                          # i-2
    "scalar": torch.tensor(3.25, dtype=torch.float32),                      # shape []
}
save_file(tensors, str(out / "python_written.safetensors"), metadata={"format": "pt", "writer": "make_io_fixtures"})

# .npy: f4 / f8 / i4 / i8 / u1 / f2 and a 0-d scalar.
np.save(out / "python_written_f4.npy", (np.arange(12, dtype=np.float32) * 0.25 - 1).reshape(3, 4))
np.save(out / "python_written_f8.npy", np.arange(6, dtype=np.float64).reshape(2, 3) / 8)
np.save(out / "python_written_i4.npy", np.arange(-3, 3, dtype=np.int32))
np.save(out / "python_written_i8.npy", (np.arange(4, dtype=np.int64) - 2) * 2 ** 40)
np.save(out / "python_written_u1.npy", np.arange(250, 256, dtype=np.uint8).reshape(2, 3))
np.save(out / "python_written_f2.npy", np.arange(4, dtype=np.float16) * 0.5)
np.save(out / "python_written_scalar.npy", np.float32(-7.5))
for p in sorted(out.iterdir()):
    print(p.name, p.stat().st_size)
