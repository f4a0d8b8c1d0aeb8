#!/usr/bin/env bash
# Side-by-side benchmark: SwiftCLIP vs PyTorch (fp32, bf16 autocast) vs ONNX Runtime (on
# torch.onnx.export's file and on SwiftCLIP's own export), one machine, one run.
#
#   benchmarks/run_issue2.sh            # convnext_v2_tiny and ViT-B-32, image + text tower, batch 1 and 32
#
# Configurations (tower, batch) run one after another; within each, the systems run one process
# each, in an order that alternates from one configuration to the next (A B C, C B A, ...) so slow
# drift (thermal, neighbours compiling) does not systematically favour one system.
# Results: benchmarks/results/<date>-issue2.json (all rows + machine info) and -issue2.md (table).
# Env:
#   SWIFTCLIP_VENV   reference venv (default tools/reference/.venv; see tools/reference/setup_venv.sh)
#   SWIFTCLIP_BIN    swiftclip binary (default .build/release/swiftclip; missing -> skipped, noted)
#   SYSTEMS          default "swiftclip pytorch pytorch-bf16 onnxruntime onnxruntime-swiftclip"; also
#                    onnxruntime-int8 (quantize_dynamic of the torch export) and swiftclip-rss (one
#                    process per SwiftCLIP precision, for peak RSS)
#   THREADS          threads for every system (default: all CPUs; 1 is the fairer choice on a loaded machine,
#                    where spinning thread pools of the peers lose far more than they do alone)
#   SWIFT_PRECISIONS swiftclip's --precision list, timed interleaved in one process (default fp32)
#   MODELS           default "convnext_v2_tiny ViT-B-32" (MODEL=one also works)
#   CONFIGS          default "image:1 image:32 text:1 text:32"
#   CHART_PYTHON     a Python with matplotlib for docs/benchmarks.png (default: the venv's, else .venv-ci's)
#   ROUNDS           repeat the whole interleaved sweep N times (default 1)
#   REPEATS_LARGE    timed runs at batch >= 16 for the Python peers (default 3)
#   TAG              results file name part (default issue2)
#   CHART            where the chart goes (default docs/benchmarks.png)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
py="${SWIFTCLIP_VENV:-$repo/tools/reference/.venv}/bin/python"
bin="${SWIFTCLIP_BIN:-$repo/.build/release/swiftclip}"
models=(${MODELS:-${MODEL:-convnext_v2_tiny ViT-B-32}})
systems=(${SYSTEMS:-swiftclip pytorch pytorch-bf16 onnxruntime onnxruntime-swiftclip})
configs=(${CONFIGS:-image:1 image:32 text:1 text:32})
rounds="${ROUNDS:-1}"
repeats_large="${REPEATS_LARGE:-3}"
tag="${TAG:-issue2}"
swift_precisions="${SWIFT_PRECISIONS:-fp32}"
threads_arg=(); [ -n "${THREADS:-}" ] && threads_arg=(--threads "$THREADS")
stamp="$(date +%Y-%m-%d)"
outdir="benchmarks/results"
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
mkdir -p "$outdir"

[ -x "$py" ] || { echo "reference venv not found at $py (tools/reference/setup_venv.sh)" >&2; exit 2; }
have_swift=1
if [ ! -x "$bin" ]; then
  echo "note: $bin not found — SwiftCLIP rows will be missing (build with: swift build -c release)" >&2
  have_swift=0
fi

cat /proc/loadavg > "$raw/load_start"
n=0
onnx_dir="out/onnx"
mkdir -p "$onnx_dir"
for ((round = 1; round <= rounds; round++)); do
 for model in "${models[@]}"; do
  for cfg in "${configs[@]}"; do
    tower="${cfg%%:*}"; batch="${cfg##*:}"
    order=("${systems[@]}")
    if (( n % 2 == 1 )); then   # reverse every other configuration
      order=(); for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[$i]}"); done
    fi
    n=$((n + 1))
    for sys in "${order[@]}"; do
      f="$raw/$(printf '%03d' "$n")-$sys-$model-$tower-$batch-r$round.json"
      echo "== round $round: $sys $model $tower batch $batch" >&2
      case "$sys" in
        swiftclip)
          [ "$have_swift" = 1 ] || continue
          "$bin" bench --model "$model" --tower "$tower" --batch-sizes "$batch" --precision "$swift_precisions" "${threads_arg[@]}" --json > "$f" \
            || { echo "swiftclip bench failed" >&2; rm -f "$f"; } ;;
        swiftclip-rss)
          # One process per precision: its peak RSS is that precision's alone (timings not used).
          [ "$have_swift" = 1 ] || continue
          for p in ${swift_precisions//,/ }; do
            "$bin" bench --model "$model" --tower "$tower" --batch-sizes "$batch" --precision "$p" --repeats 3 "${threads_arg[@]}" --json \
              | "$py" -c 'import json,sys; r=json.load(sys.stdin); [x.update(system=x["system"]+"-own-process") for x in r]; print(json.dumps(r))' \
              > "${f%-r$round.json}-$p-r$round.json" || { echo "swiftclip-rss $p failed" >&2; rm -f "${f%-r$round.json}-$p-r$round.json"; }
          done ;;
        pytorch|pytorch-bf16|onnxruntime|onnxruntime-int8)
          rt=torch; [ "$sys" = pytorch-bf16 ] && rt=torch-bf16; [ "$sys" = onnxruntime ] && rt=ort
          [ "$sys" = onnxruntime-int8 ] && rt=ort-int8
          "$py" tools/reference/bench_peers.py --model "$model" --tower "$tower" --batch-sizes "$batch" \
            --runtime "$rt" --repeats-large "$repeats_large" "${threads_arg[@]}" --json > "$f" \
            2> >(grep -v -e "No pretrained weights" -e DeprecationWarning -e "torch.onnx.export(" >&2) \
            || { echo "$sys failed" >&2; rm -f "$f"; } ;;
        onnxruntime-swiftclip)
          [ "$have_swift" = 1 ] || continue
          sx="$onnx_dir/swiftclip-$model-$tower-opset17.onnx"
          [ -s "$sx" ] || "$bin" export-onnx --model "$model" --tower "$tower" --output "$sx"
          [ -s "$onnx_dir/swiftclip-$model-info.json" ] || "$bin" info --model "$model" --json > "$onnx_dir/swiftclip-$model-info.json"
          "$py" tools/reference/bench_peers.py --model "$model" --tower "$tower" --batch-sizes "$batch" \
            --runtime ort-swiftclip --onnx-file "$sx" --meta-json "$onnx_dir/swiftclip-$model-info.json" \
            --repeats-large "$repeats_large" --json > "$f" || { echo "$sys failed" >&2; rm -f "$f"; } ;;
        *) echo "unknown system $sys" >&2; exit 2 ;;
      esac
    done
  done
 done
done
cat /proc/loadavg > "$raw/load_end"

swift_version="$( (swift --version 2>/dev/null || true) | head -1)"
"$py" benchmarks/report_issue2.py --raw "$raw" --model "${models[*]}" \
  --json-out "$outdir/$stamp-$tag.json" --md-out "$outdir/$stamp-$tag.md" \
  --swift-version "$swift_version" --swift-bin "$bin" --have-swift "$have_swift"
echo "wrote $outdir/$stamp-$tag.json and $outdir/$stamp-$tag.md" >&2

# The chart (docs/benchmarks.png) from the JSON just written.
chart_py="${CHART_PYTHON:-}"
for c in "$py" "$repo/.venv-ci/bin/python"; do
  [ -n "$chart_py" ] && break
  "$c" -c "import matplotlib" 2>/dev/null && chart_py="$c"
done
if [ -n "$chart_py" ]; then
  "$chart_py" benchmarks/chart.py "$outdir/$stamp-$tag.json" "${CHART:-docs/benchmarks.png}"
else
  echo "note: no Python with matplotlib (set CHART_PYTHON); chart not drawn" >&2
fi
