#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (Swift's -sanitize=fuzzer,address).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 180 s each, every target
# Targets: safetensors npy pickle image tokenizer config csv gzip tar shardlist zip torch queryterms dburl coco (Sources/CLIPFuzzTargets).
# The sanitizer build goes to .build-fuzz (git-ignored; Package.swift carries no unsafe flags);
# each target's corpus grows in .build-fuzz/corpus/<target>, seeded from Tests/CLIPFuzzTests/Seeds.
# A crash, leak, timeout or out-of-memory stops that target and fails the script; the input is
# left in .build-fuzz/crashes/<target>/. Commit it to Tests/CLIPFuzzTests/Regressions/<target>/
# (the test suite replays every file there) together with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors npy pickle image tokenizer config csv gzip tar shardlist zip torch queryterms dburl coco)

scripts/setup.sh  # the tokenizer target needs the vocabulary in assets/
swift build -c release --scratch-path .build-fuzz --product swiftclip-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING >&2
bin=.build-fuzz/release/swiftclip-fuzz

status=0
for t in "${targets[@]}"; do
    corpus=.build-fuzz/corpus/$t crashes=.build-fuzz/crashes/$t
    mkdir -p "$corpus" "$crashes"
    echo "fuzz: $t for ${seconds}s" >&2
    # -rss_limit_mb / -malloc_limit_mb: an input that makes a parser allocate over 2 GB is a finding.
    if ! SWIFTCLIP_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 "$bin" -max_total_time="$seconds" -timeout=10 \
            -rss_limit_mb=2560 -malloc_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
            -artifact_prefix="$crashes/" "$corpus" "Tests/CLIPFuzzTests/Seeds/$t" 2> ".build-fuzz/$t.log"; then
        echo "fuzz: $t FAILED; input(s) in $crashes, log in .build-fuzz/$t.log:" >&2
        grep -E "ERROR|SUMMARY|Test unit written" ".build-fuzz/$t.log" | head -5 >&2
        status=1
    else
        grep -E "stat::number_of_executed_units|cov:" ".build-fuzz/$t.log" | tail -2 | sed "s/^/fuzz: $t: /" >&2
    fi
done
exit $status
