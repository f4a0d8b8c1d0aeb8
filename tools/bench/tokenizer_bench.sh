#!/usr/bin/env bash
# Benchmark (not a test): open_clip's Python tokenizer vs the Swift CLIPTokenizer on the same
# deterministic corpus of N captions (default 20000), in one run, and checks the ids agree.
#   tools/bench/tokenizer_bench.sh [N]
# Needs the reference venv (PYTHON, default tools/reference/.venv/bin/python, else the one in
# /work/main) and the vocabulary (scripts/setup.sh). The Swift side is compiled with swiftc from
# Sources/CLIPTokenizer plus tools/bench/tokenizer_bench_main.swift (no extra SwiftPM target).
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-20000}"
PYTHON="${PYTHON:-tools/reference/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=/work/main/tools/reference/.venv/bin/python
VOCAB="${SWIFTCLIP_VOCAB:-assets/bpe_simple_vocab_16e6.txt.gz}"
[ -s "$VOCAB" ] || { echo "vocabulary missing: run scripts/setup.sh" >&2; exit 1; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

"$PYTHON" - "$N" "$work/captions.txt" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(0)
adj = "red blue small large old young happy wooden shiny dark bright fluffy tiny ancient modern".split()
noun = ("cat dog car house tree person woman man child bird horse boat bicycle pizza cake beach "
        "mountain city street kitchen laptop phone guitar flower garden river bridge train plane").split()
verb = "sitting standing running eating sleeping playing walking jumping looking flying parked".split()
place = "on the grass|in a park|at night|under the sun|next to a window|in the snow|on a table|by the sea".split("|")
extra = ["", "", "", "!", "...", " (2019)", " #travel", " - photo by J. Smith", " & friends", " café", " 東京",
         " it's great", " 3.5 km", " 😀", " &amp; more", " naïve"]
with open(path, "w") as f:
    for _ in range(n):
        s = f"a {rng.choice(adj)} {rng.choice(noun)} {rng.choice(verb)} {rng.choice(place)}{rng.choice(extra)}"
        if rng.random() < 0.3:
            s = s.capitalize() + f", with {rng.randint(2, 12)} {rng.choice(noun)}s"
        f.write(s.replace("\n", " ") + "\n")
PY

cp tools/bench/tokenizer_bench_main.swift "$work/main.swift"  # top-level code must live in main.swift
swiftc -O -wmo -enforce-exclusivity=unchecked -module-name tokbench \
    Sources/CLIPTokenizer/*.swift "$work/main.swift" -o "$work/tokbench"

echo "corpus: $N captions ($(wc -c < "$work/captions.txt") bytes), $(nproc) cores"
"$PYTHON" - "$work/captions.txt" "$work/py.bin" <<'PY'
import sys, time
t0 = time.perf_counter()
from open_clip.tokenizer import SimpleTokenizer
tok = SimpleTokenizer()
load = time.perf_counter() - t0
caps = open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]
t0 = time.perf_counter(); ids = tok(caps); cold = time.perf_counter() - t0
t0 = time.perf_counter(); ids = tok(caps); warm = time.perf_counter() - t0
ids.to(dtype=__import__("torch").int32).numpy().tofile(sys.argv[2])
print(f"python  load {load:.3f} s | cold cache {len(caps)/cold:8.0f} texts/s | warm cache {len(caps)/warm:8.0f} texts/s"
      "  (open_clip SimpleTokenizer, import included in load)")
PY
"$work/tokbench" "$VOCAB" "$work/captions.txt" "$work/swift.bin"
if cmp -s "$work/py.bin" "$work/swift.bin"; then echo "ids: identical"; else echo "ids: DIFFER" >&2; exit 1; fi
