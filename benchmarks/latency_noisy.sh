#!/usr/bin/env bash
# Batch-1 latency with and without a noisy neighbour: convnext_v2_tiny's image tower, fp32, batch 1,
# SwiftCLIP against ONNX Runtime (on SwiftCLIP's own ONNX export, CPUExecutionProvider), each at 1 and
# 2 threads, first on the machine as it is, then with a busy loop pinned to CPU 1
# (`taskset -c 1 sh -c 'while :; do :; done'`, another process holding one of the cores). All of it
# interleaved, ROUNDS rounds; the load average is recorded before and after.
#   [ROUNDS=2] [MODEL=convnext_v2_tiny] [BASE_BIN=path/to/old/swiftclip] [TAG=name] benchmarks/latency_noisy.sh
#     -> benchmarks/results/<date>-latency-noisy[-TAG].{jsonl,md}
# BASE_BIN adds an older build of swiftclip as a third system (before/after in one run).
# Needs the release build and a venv with onnxruntime (tools/reference/.venv, or .venv-ci from setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${MODEL:-convnext_v2_tiny}"
rounds="${ROUNDS:-2}"
bin="${SWIFTCLIP_BIN:-.build/release/swiftclip}"
py="${SWIFTCLIP_VENV:-tools/reference/.venv}/bin/python"
[ -x "$py" ] || py=.venv-ci/bin/python
out="benchmarks/results/$(date +%F)-latency-noisy${TAG:+-$TAG}"
onnx_dir="out/onnx"; mkdir -p "$onnx_dir"
sx="$onnx_dir/swiftclip-$model-image-opset17.onnx"
[ -s "$sx" ] || "$bin" export-onnx --model "$model" --tower image --output "$sx"
[ -s "$onnx_dir/swiftclip-$model-info.json" ] || "$bin" info --model "$model" --json > "$onnx_dir/swiftclip-$model-info.json"
busy=""
stop_busy() { if [ -n "$busy" ]; then kill "$busy" 2>/dev/null || true; wait "$busy" 2>/dev/null || true; busy=""; fi; }
trap stop_busy EXIT
: > "$out.jsonl"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
tag() { "$py" -c 'import json,sys; r=json.load(sys.stdin); r=r if isinstance(r,list) else [r]
for x in r: x.update(system=sys.argv[1], neighbour=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(x))' "$@"; }
for round in $(seq 1 "$rounds"); do
    for neighbour in none busy-cpu1; do
        if [ "$neighbour" = busy-cpu1 ]; then taskset -c 1 sh -c 'while :; do :; done' & busy=$!; sleep 1; fi
        for threads in 1 2; do
            echo "== round $round, neighbour $neighbour, $threads threads" >&2
            "$bin" bench --model "$model" --tower image --batch-sizes 1 --precision fp32 --threads "$threads" --json \
                | tag "swiftclip" "$neighbour" "$round" >> "$out.jsonl"
            if [ -n "${BASE_BIN:-}" ]; then
                "$BASE_BIN" bench --model "$model" --tower image --batch-sizes 1 --precision fp32 --threads "$threads" --json \
                    | tag "swiftclip-base" "$neighbour" "$round" >> "$out.jsonl"
            fi
            "$py" tools/reference/bench_peers.py --model "$model" --tower image --batch-sizes 1 --threads "$threads" \
                --runtime ort-swiftclip --onnx-file "$sx" --meta-json "$onnx_dir/swiftclip-$model-info.json" --json \
                | tag "onnxruntime" "$neighbour" "$round" >> "$out.jsonl"
        done
        stop_busy
    done
done
LOAD_BEFORE="$load_before" LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)" python3 - "$out" "$model" "$rounds" <<'PY'
import json, os, statistics, subprocess, sys
out, model, rounds = sys.argv[1:]
before, after = os.environ["LOAD_BEFORE"], os.environ["LOAD_AFTER"]
cpu = next(l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
           if l.startswith("Model name")) + f", {os.cpu_count()} CPUs"
rows = [json.loads(l) for l in open(out + ".jsonl")]
key = lambda r: (r["system"], r["neighbour"], r["threads"])
groups = {}
for r in rows: groups.setdefault(key(r), []).append(r)
med = {k: statistics.median(r["median_ms"] for r in v) for k, v in groups.items()}
lines = [f"# Batch-1 latency with a noisy neighbour: {model} image tower, fp32", "",
         f"`benchmarks/latency_noisy.sh` (ROUNDS={rounds}) on {cpu}; busy-cpu1 = a shell busy loop pinned to CPU 1. "
         f"Median ms of each run (p10/p90 of the run in brackets), then the median over rounds. Load average "
         f"(1, 5, 15 min) before: {before}; after: {after}.", "",
         "| system | neighbour | threads | median ms per round (p10–p90) | median | 1 thread ÷ 2 threads |", "|---|---|---|---|---|---|"]
for k in sorted(groups):
    runs = "; ".join(f"{r['median_ms']:.1f} ({r['p10_ms']:.1f}–{r['p90_ms']:.1f})" for r in groups[k])
    speedup = ""
    if k[2] == 2 and (k[0], k[1], 1) in med: speedup = f"{med[(k[0], k[1], 1)] / med[k]:.2f}×"
    lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {runs} | {med[k]:.1f} | {speedup} |")
for n in ("none", "busy-cpu1"):
    if ("swiftclip", n, 2) in med and ("onnxruntime", n, 2) in med:
        lines.append(f"\n{n}: swiftclip 2 threads {med[('swiftclip', n, 2)] / med[('onnxruntime', n, 2)]:.2f}× ONNX Runtime's latency at 2 threads.")
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
