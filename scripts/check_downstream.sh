#!/usr/bin/env bash
# SwiftCLIP as a versioned dependency: clones this checkout into a bare repository, tags it 0.2.0,
# points a copy of examples/Embedder at it (instead of the public URL) and builds and runs it.
# SwiftPM refuses unsafe build flags in such a dependency, so this fails if any target has them.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The working tree as the next commit would hold it (tracked and new files, none that git ignores).
mkdir "$work/src"
git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$work/src"
git -C "$work/src" init -q
git -C "$work/src" add -A
git -C "$work/src" -c user.name=check -c user.email=check@localhost commit -q -m "downstream check"
git -C "$work/src" tag 0.2.0
git clone -q --bare "$work/src" "$work/swiftclip.git"

cp -R examples/Embedder "$work/Embedder"
sed -i "s|https://github.com/swiftclip/swiftclip|file://$work/swiftclip.git|" "$work/Embedder/Package.swift"
echo "check_downstream: building examples/Embedder against a tagged clone (SwiftCLIP 0.2.0)" >&2
swift build --package-path "$work/Embedder" -c release 2>&1 | tail -n 3
out="$("$work/Embedder/.build/release/Embedder" examples/Embedder/tiny-config.json \
    Tests/CLIPDataTests/Fixtures/china.jpg cat dog 2>&1)" || { echo "$out"; echo "check_downstream: Embedder failed" >&2; exit 1; }
echo "$out"
echo "$out" | grep -q "^cat: " || { echo "check_downstream: no classification printed" >&2; exit 1; }
echo "check_downstream: ok"
