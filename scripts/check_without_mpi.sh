#!/usr/bin/env bash
# SwiftCLIP on a machine without libopenmpi-dev: builds the swiftclip product with Open MPI's headers
# and pkg-config files hidden (a private mount namespace, so nothing else on the machine notices),
# then checks that the binary does not link libmpi, trains one process on webdataset shards, and
# refuses a multi-rank launch with a message saying why. Needs root (unshare, mount --bind) and
# takes a full release build (~5 min); not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mpi_include=/usr/lib/x86_64-linux-gnu/openmpi/include
pc=/usr/lib/x86_64-linux-gnu/pkgconfig
mkdir "$work/empty" "$work/pc"
cp -a "$pc/." "$work/pc/"
rm -f "$work/pc"/ompi* "$work/pc"/orte* "$work/pc"/opal* "$work/pc"/pmix* "$work/pc"/mpi.pc "$work/pc"/mpi-*.pc
unshare --mount --propagation private bash -c "
    set -euo pipefail
    [ -d '$mpi_include' ] && mount --bind '$work/empty' '$mpi_include'
    [ -d /usr/lib/x86_64-linux-gnu/openmpi/lib/pkgconfig ] && mount --bind '$work/empty' /usr/lib/x86_64-linux-gnu/openmpi/lib/pkgconfig
    mount --bind '$work/pc' '$pc'
    if pkg-config --exists ompi-c; then echo 'check_without_mpi: ompi-c is still visible' >&2; exit 1; fi
    swift build -c release --scratch-path '$work/build' --product swiftclip 2>&1 | tail -n 2
"
bin="$work/build/release/swiftclip"
if ldd "$bin" | grep -q libmpi; then echo "check_without_mpi: the binary links libmpi" >&2; exit 1; fi
export SWIFTCLIP_VOCAB="${SWIFTCLIP_VOCAB:-$root/assets/bpe_simple_vocab_16e6.txt.gz}"
cat > "$work/tiny.json" <<'JSON'
{"embed_dim": 32, "vision_cfg": {"timm_model_name": "convnextv2_atto", "timm_model_pretrained": false,
  "timm_pool": "avg", "timm_proj": "linear", "image_size": 32},
 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
JSON
(cd "$work" && "$bin" make-synthetic --samples 8 --val-samples 2 --image-size 32 --output data >/dev/null &&
    "$bin" make-shards --train-data data/train.csv --csv-caption-key caption --output shards --samples-per-shard 4 >/dev/null &&
    "$bin" train --model tiny.json --train-data 'shards/{00000..00001}.tar' --batch-size 4 --epochs 1 --warmup 1 \
        --workers 1 --threads 1 --logs logs --name plain 2>&1 | tail -n 1)
if out="$(cd "$work" && OMPI_COMM_WORLD_SIZE=2 "$bin" train --model tiny.json --dataset-type synthetic --batch-size 4 \
        --epochs 1 --logs logs --name ranks 2>&1)"; then
    echo "check_without_mpi: a two-rank launch of a build without MPI did not fail" >&2; exit 1
fi
echo "$out" | grep -q "built without MPI" || { echo "$out"; echo "check_without_mpi: unclear message" >&2; exit 1; }
echo "check_without_mpi: ok (built and trained without MPI; a multi-rank launch says: $(echo "$out" | head -n 1))"
