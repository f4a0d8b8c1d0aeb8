#!/usr/bin/env bash
# Side-by-side numbers for docs/search.md (a benchmark: figures, not assertions). Needs the release
# binary and tools/reference/.venv (open_clip, Pillow, numpy, faiss-cpu).
#   benchmarks/search_bench.sh latency [SIZES]   # exact top-10: swiftclip vs numpy vs FAISS IndexFlatIP (ROUNDS=2)
#   benchmarks/search_bench.sh indexing PHOTOS   # images/s: swiftclip fp32/bf16/int8 vs the rclip-like script (ROUNDS=2)
#   benchmarks/search_bench.sh rerun N           # unchanged re-run of `index` over N tiny files
#   benchmarks/search_bench.sh postgres [N]      # the PostgreSQL store: load, HNSW build, latency + recall@10 per ef_search (N=50000 low-rank)
# Results (JSON lines) go to stdout; run from the repository root. Systems are interleaved in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/swiftclip
py=tools/reference/.venv/bin/python
work=${SEARCH_BENCH_DIR:-/tmp/searchbench}
mkdir -p "$work"
export CUDA_VISIBLE_DEVICES=

case "${1:-}" in
postgres)
    n=${2:-50000}
    d="$work/lowrank-$n"
    [ -f "$d/queries.npy" ] || $py tools/reference/search_latency.py make "$n" 512 "$d" --structured
    rm -rf "$work/pg"
    url=$(scripts/pgvector_server.sh start .venv-pg "$work/pg")
    trap 'scripts/pgvector_server.sh stop "$work/pg"' EXIT
    $bin bench-search --db "$url" --vectors "$d/vectors.npy" --queries "$d/queries.npy" --top 10 --ef-search 40 100 200 400 ;;
latency)
    for n in ${2:-10000 100000 1000000}; do
        d="$work/vectors-$n"
        [ -f "$d/queries.npy" ] || $py tools/reference/search_latency.py make "$n" 512 "$d"
        for round in $(seq "${ROUNDS:-2}"); do
            $py tools/reference/search_latency.py time "$d" | sed "s/^{/{\"round\": $round, /"
            $bin bench-search --vectors "$d/vectors.npy" --queries "$d/queries.npy" --top 10 --output "$d/swift_ids.npy" \
                | sed "s/^{/{\"round\": $round, /"
            $bin bench-search --no-int8-pass --vectors "$d/vectors.npy" --queries "$d/queries.npy" --top 10 --output "$d/swift_float_ids.npy" \
                | sed "s/^{/{\"round\": $round, /"
        done
        $py tools/reference/search_latency.py agree "$d" "$d/swift_ids.npy"
        $py tools/reference/search_latency.py agree "$d" "$d/swift_float_ids.npy"
    done ;;
indexing)
    photos=${2:?give the photo folder}
    n=$(find "$photos" -name '*.jpg' | wc -l)
    for round in $(seq "${ROUNDS:-2}"); do
        for system in python fp32 bf16 int8; do
            rm -f "$work/idx-$system.sqlite"*
            if [ "$system" = python ]; then
                $py tools/reference/rclip_like_index.py "$photos" "$work/idx-python.sqlite" --batch-size 32 --threads 2 \
                    | sed "s/^{/{\"round\": $round, /"
            else
                start=$(date +%s.%N)
                $bin index "$photos" --db "$work/idx-$system.sqlite" --model convnext_v2_tiny --precision "$system" --batch-size 32 --json >/dev/null
                end=$(date +%s.%N)
                python3 -c "import json,sys; s=float(sys.argv[2])-float(sys.argv[1]); print(json.dumps({'round': $round, 'system': 'swiftclip-$system', 'images': $n, 'seconds': round(s,3), 'images_per_s': round($n/s,3)}))" "$start" "$end"
            fi
        done
    done ;;
rerun)
    n=${2:-100000}
    d="$work/tiny-$n"
    [ -d "$d" ] || $py tools/reference/make_photos.py "$d" "$n" --tiny
    cfg=Tests/CLIPEvaluationTests/Fixtures/model/config.json
    rm -f "$work/tiny.sqlite"*
    for run in first unchanged unchanged; do
        start=$(date +%s.%N)
        $bin index "$d" --db "$work/tiny.sqlite" --model "$cfg" --batch-size 256 --json | sed "s/^/$run: /"
        end=$(date +%s.%N)
        python3 -c "import sys; print('$run run of $n files: %.2f s' % (float(sys.argv[2])-float(sys.argv[1])))" "$start" "$end"
    done ;;
*) echo "usage: $0 latency|indexing|rerun ..." >&2; exit 64 ;;
esac
