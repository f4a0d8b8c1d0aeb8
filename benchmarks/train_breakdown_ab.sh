#!/usr/bin/env bash
# Two builds of swiftclip, one training step's breakdown each, alternated in one run: the way to
# compare a kernel change on a machine others share (the load drifts; alternation spreads it over
# both). Each round runs `bench-train --breakdown --json` with the old binary, then the new one;
# the table gives per binary the median step, the fastest, and per operation kind the median of
# the profiled steps' seconds, with the load average before and after.
#   benchmarks/train_breakdown_ab.sh OLD_BIN NEW_BIN [BATCH=8] [ROUNDS=3] [STEPS=2]
#     -> benchmarks/results/<date>-train-breakdown-ab[-TAG].{jsonl,md}   (TAG from the environment)
# PRECISION (fp32) and WARMUP (1) come from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"; new="$2"; batch="${3:-8}"; rounds="${4:-3}"; steps="${5:-2}"
out="benchmarks/results/$(date +%F)-train-breakdown-ab${TAG:+-$TAG}"
: > "$out.jsonl"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    for which in old new; do
        bin="$old"; [ "$which" = new ] && bin="$new"
        "$bin" bench-train --model convnext_v2_tiny --batch "$batch" --warmup "${WARMUP:-1}" --steps "$steps" \
            --precision "${PRECISION:-fp32}" --breakdown --json \
            | python3 -c 'import json,sys; r=json.load(sys.stdin); r["binary"]=sys.argv[1]; r["round"]=int(sys.argv[2]); print(json.dumps(r))' \
                "$which" "$round" >> "$out.jsonl"
    done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
python3 - "$out" "$old" "$new" "$batch" "$rounds" "$load_before" "$load_after" "$cpu" <<'PY'
import json, statistics, sys
out, old, new, batch, rounds, before, after, cpu = sys.argv[1:]
rows = [json.loads(l) for l in open(out + ".jsonl")]
by = {w: [r for r in rows if r["binary"] == w] for w in ("old", "new")}
med = lambda xs: statistics.median(xs) if xs else float("nan")
lines = [f"# One training step's breakdown, two builds alternated (convnext_v2_tiny, batch {batch})", "",
         f"`benchmarks/train_breakdown_ab.sh {old} {new} {batch} {rounds}` on {cpu}, {rounds} rounds "
         f"(old then new each round). Load average (1, 5, 15 min) before: {before}; after: {after} "
         "(above the CPU count: other processes shared them; compare the two columns, not absolute times).", "",
         "| | old | new | new − old |", "|---|---|---|---|"]
def row(name, f):
    o, n = med([f(r) for r in by["old"]]), med([f(r) for r in by["new"]])
    lines.append(f"| {name} | {o:.3f} | {n:.3f} | {n - o:+.3f} |")
row("median timed step (s)", lambda r: r["median_step_s"])
row("fastest timed step (s)", lambda r: r["min_step_s"])
row("profiled step (s)", lambda r: r["profiled_step_s"])
row("peak RSS (MB)", lambda r: r["peak_rss_mb"])
kinds = sorted({k for r in rows for k in r.get("breakdown_s", {})},
               key=lambda k: -med([r["breakdown_s"].get(k, 0) for r in by["old"] + by["new"]]))
for k in kinds:
    row(f"{k} (s)", lambda r, k=k: r["breakdown_s"].get(k, 0.0))
lines.append("")
lines.append("Every step in order (s): " + "; ".join(
    f"{r['binary']} round {r['round']}: " + ", ".join(f"{t:.2f}" for t in r["warmup_step_s"] + r["step_s"]) for r in rows))
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
