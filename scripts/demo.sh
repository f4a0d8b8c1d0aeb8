#!/usr/bin/env bash
# End-to-end demo on built-in inputs. Needs `make build` first (the Makefile does it).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/swiftclip
$bin
