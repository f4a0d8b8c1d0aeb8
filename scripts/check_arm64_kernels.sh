#!/usr/bin/env bash
# The C kernels must compile for arm64 (the portable variant becomes NEON there; the x86 variants
# compile to nothing). Cross-compiles each kernel file with the toolchain's clang; nothing links.
set -euo pipefail
cd "$(dirname "$0")/.."
clang_bin="$(command -v clang || true)"
[ -n "$clang_bin" ] || { echo "check_arm64_kernels: clang not found (it ships with the Swift toolchain)" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for f in Sources/CLIPKernels/Kernels*.c; do
    "$clang_bin" --target=aarch64-linux-gnu -O2 -Wall -Werror -ffreestanding -ISources/CLIPKernels/include -c "$f" -o "$out/$(basename "$f" .c).o"
done
count=$("${clang_bin%clang}llvm-objdump" -d "$out/KernelsPortable.o" 2>/dev/null | grep -c fmla || true)
echo "check_arm64_kernels: arm64 kernels compile (NEON fmla instructions: ${count:-?})"
