#!/usr/bin/env bash
# Regenerates Sources/CLIPExport/Generated/onnx.pb.swift from the onnx.proto shipped in the onnx wheel.
# Run once by hand when the proto changes; nothing is generated at build time.
#
# Last run with:
#   proto:            onnx/onnx.proto from the PyPI wheel onnx==1.23.2 (proto2, package "onnx")
#   protoc:           libprotoc 3.21.12 (Debian 12: apt-get install -y protobuf-compiler)
#   protoc-gen-swift: swift-protobuf 1.39.0 (same version as the package dependency)
set -euo pipefail
cd "$(dirname "$0")/../.."
ONNX_VERSION=1.23.2
SWIFT_PROTOBUF_VERSION=1.39.0
work="${TMPDIR:-/tmp}/swiftclip-protogen"
mkdir -p "$work/wheel" "$work/plugin"

command -v protoc >/dev/null || { echo "install protoc: apt-get install -y protobuf-compiler" >&2; exit 1; }

# 1. onnx.proto from the wheel (no install needed).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 -d "$work/wheel" "onnx==$ONNX_VERSION"
python3 - "$work" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/wheel/onnx-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    open(sys.argv[1] + "/onnx.proto", "wb").write(z.read("onnx/onnx.proto"))
PY

# 2. protoc-gen-swift at the pinned version.
cat > "$work/plugin/Package.swift" <<SWIFT
// swift-tools-version:5.9
import PackageDescription
let package = Package(name: "protogen", dependencies: [
  .package(url: "https://github.com/apple/swift-protobuf", exact: "$SWIFT_PROTOBUF_VERSION")
], targets: [])
SWIFT
(cd "$work/plugin" && swift build -c release --product protoc-gen-swift)

# 3. Generate (public types, one file).
protoc --plugin=protoc-gen-swift="$work/plugin/.build/release/protoc-gen-swift" \
       --swift_opt=Visibility=Public \
       -I "$work" --swift_out=Sources/CLIPExport/Generated "$work/onnx.proto"
echo "wrote Sources/CLIPExport/Generated/onnx.pb.swift" >&2
