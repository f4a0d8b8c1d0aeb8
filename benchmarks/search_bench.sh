#!/usr/bin/env bash
# Side-by-side numbers for docs/search.md (a benchmark: figures, not assertions). Needs the release
# binary and tools/reference/.venv (open_clip, Pillow, numpy, faiss-cpu).
#   benchmarks/search_bench.sh latency [SIZES]   # exact top-10: swiftclip vs numpy vs FAISS IndexFlatIP (ROUNDS=2)
#   benchmarks/search_bench.sh indexing PHOTOS   # images/s: swiftclip fp32/bf16/int8 vs the rclip-like script (ROUNDS=2;
#                                                  # SYSTEMS="python fp32" to run fewer; BASE_BIN=an older swiftclip
#                                                  # adds "base-fp32")
#   benchmarks/search_bench.sh rerun N           # unchanged re-run of `index` over N tiny files
#   benchmarks/search_bench.sh postgres [N]      # the PostgreSQL store: load, HNSW build, latency + recall@10 per ef_search (N=50000 low-rank)
#   benchmarks/search_bench.sh oneshot PHOTOS [N]  # one process per query, as a user runs it: `swiftclip search` vs the
#                                                  # rclip-like search script, both indexes grown to N rows (default 100000;
#                                                  # ROUNDS=3; BASE_BIN=an older swiftclip to compare builds)
#   benchmarks/search_bench.sh pgshare PHOTOS [P]  # P (default 2) `swiftclip index` processes at once into one PostgreSQL
#                                                  # index: how many files each embedded, none twice
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
        for system in ${SYSTEMS:-python fp32 bf16 int8} ${BASE_BIN:+base-fp32}; do
            rm -f "$work/idx-$system.sqlite"*
            # Every system is timed the same way: the whole command, start-up included (Python's
            # imports and model creation, SwiftCLIP's model set-up). The Python script's own figure
            # (its loop alone, after the model is made) is kept as loop_seconds.
            start=$(date +%s.%N)
            if [ "$system" = python ]; then
                $py tools/reference/rclip_like_index.py "$photos" "$work/idx-python.sqlite" --batch-size 32 --threads 2 >"$work/python-loop.json"
                label=python-rclip-like
            else
                exe=$bin precision=$system
                [ "$system" = base-fp32 ] && exe=$BASE_BIN precision=fp32
                "$exe" index "$photos" --db "$work/idx-$system.sqlite" --model convnext_v2_tiny --precision "$precision" --batch-size 32 --json >/dev/null
                label=swiftclip-$system
            fi
            end=$(date +%s.%N)
            python3 - "$start" "$end" "$label" "$work/python-loop.json" <<PY
import json, sys
s = float(sys.argv[2]) - float(sys.argv[1])
row = {"round": $round, "system": sys.argv[3], "images": $n, "seconds": round(s, 3), "images_per_s": round($n / s, 3)}
if sys.argv[3].startswith("python"):
    row["loop_seconds"] = json.load(open(sys.argv[4]))["seconds"]
print(json.dumps(row))
PY
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
oneshot)
    photos=${2:?give the photo folder}
    n=${3:-100000}
    weights="$work/convnext_v2_tiny-seed0.safetensors"
    [ -f "$weights" ] || $py -c "import sys; sys.path.insert(0, 'tools/reference'); import _common
from safetensors.torch import save_file
m = _common.create_model('convnext_v2_tiny', seed=0)
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[1])" "$weights"
    rm -f "$work/oneshot-swift.sqlite"* "$work/oneshot-python.sqlite"*
    $bin index "$photos" --db "$work/oneshot-swift.sqlite" --model convnext_v2_tiny --weights "$weights" >/dev/null
    $py tools/reference/rclip_like_index.py "$photos" "$work/oneshot-python.sqlite" --weights "$weights" >/dev/null
    # Both indexes grown to n rows by copying the photos' rows under new paths (the timing needs the
    # row count, not distinct photos).
    $py - "$work/oneshot-swift.sqlite" "$work/oneshot-python.sqlite" "$n" <<'PY'
import sqlite3, sys
swift, python, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(swift)
rows = db.execute("SELECT f.path, f.size, f.mtime_ns, f.hash, v.model_id, v.vector FROM files f JOIN vectors v ON v.file_id = f.id").fetchall()
with db:
    for i in range(len(rows), n):
        path, size, mtime, digest, model, vector = rows[i % len(rows)]
        cur = db.execute("INSERT INTO files (path, size, mtime_ns, hash) VALUES (?, ?, ?, ?)", (f"{path}.copy{i}", size, mtime, digest))
        db.execute("INSERT INTO vectors (model_id, file_id, vector) VALUES (?, ?, ?)", (model, cur.lastrowid, vector))
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db = sqlite3.connect(python)
rows = db.execute("SELECT filepath, modified_at, size, vector FROM images").fetchall()
with db:
    for i in range(len(rows), n):
        path, mtime, size, vector = rows[i % len(rows)]
        db.execute("INSERT INTO images (filepath, modified_at, size, vector) VALUES (?, ?, ?, ?)", (f"{path}.copy{i}", mtime, size, vector))
PY
    query="a red car in the snow"
    for round in $(seq "${ROUNDS:-3}"); do
        # BASE_BIN: an older swiftclip joins the rotation as "swiftclip-base".
        for system in python swiftclip ${BASE_BIN:+swiftclip-base}; do
            start=$(date +%s.%N)
            case $system in
            python) $py tools/reference/rclip_like_search.py "$work/oneshot-python.sqlite" "$query" --weights "$weights" >/dev/null 2>"$work/oneshot-phases.txt" ;;
            swiftclip) $bin search --db "$work/oneshot-swift.sqlite" "$query" >/dev/null ;;
            swiftclip-base) "$BASE_BIN" search --db "$work/oneshot-swift.sqlite" "$query" >/dev/null ;;
            esac
            end=$(date +%s.%N)
            python3 -c "import json,sys; print(json.dumps({'round': $round, 'system': '$system', 'vectors': $n, 'seconds': round(float(sys.argv[2])-float(sys.argv[1]), 3)}))" "$start" "$end"
            if [ "$system" = python ]; then tail -1 "$work/oneshot-phases.txt"; fi
        done
    done ;;
pgshare)
    photos=${2:?give the photo folder}
    procs=${3:-2}
    rm -rf "$work/pg"
    url=$(scripts/pgvector_server.sh start .venv-pg "$work/pg")
    trap 'scripts/pgvector_server.sh stop "$work/pg"' EXIT
    pids=()
    start=$(date +%s.%N)
    for p in $(seq "$procs"); do
        # One thread each: the processes share the cores, as on a machine that runs several.
        $bin index "$photos" --db "$url" --model convnext_v2_tiny --precision int8 --threads 1 --batch-size 8 --json \
            > "$work/pgshare-$p.json" 2>"$work/pgshare-$p.err" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    python3 -c "import sys; print('{\"processes\": $procs, \"seconds\": %.2f}' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)"
    for p in $(seq "$procs"); do echo "{\"process\": $p, \"summary\": $(tail -1 "$work/pgshare-$p.json")}"; done
    psql=$(cat "$work/pg/bin")/psql
    "$psql" "$url" -Atc "SELECT json_build_object('files', (SELECT count(*) FROM files), 'vectors', count(*)) FROM vectors_1" ;;
*) echo "usage: $0 latency|indexing|rerun|postgres|oneshot|pgshare ..." >&2; exit 64 ;;
esac
