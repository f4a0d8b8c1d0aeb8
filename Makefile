# The two commands of the README: `make demo` (the main job) and `make test`.
.PHONY: demo test setup build parity-full bench fuzz fuzz-smoke

setup:
	scripts/setup.sh

build: setup
	swift build -c release

# Main job: build, then the end-to-end demo (grows as training/eval/export land).
demo: build
	scripts/demo.sh

# Tests run in release mode: debug builds of numeric loops are tens of times slower. The whole
# suite runs at the CPU's best kernel level; the kernel, open_clip parity and PyTorch training
# parity tests run again with
# the kernels capped at AVX2 and at the portable level; the portable (NEON) kernels must compile
# for arm64; the release binary is checked under qemu's Haswell and Nehalem (PortableBinaryTests);
# examples/Embedder builds against a tagged clone, as a package depending on SwiftCLIP would.
test: setup
	swift build -c release --build-tests
	swift test -c release --skip-build
	SWIFTCLIP_ISA=avx2 swift test -c release --skip-build --filter 'CLIPEngineTests|CLIPModelsTests|CLIPTrainingTests'
	SWIFTCLIP_ISA=baseline swift test -c release --skip-build --filter 'CLIPEngineTests|CLIPModelsTests|CLIPTrainingTests'
	scripts/check_arm64_kernels.sh
	scripts/check_downstream.sh
	benchmarks/precision_agreement.sh --check

# libFuzzer on every parser of untrusted input, a few minutes each (scripts/fuzz.sh; docs/reliability.md).
# FUZZ_SECONDS=N sets the time per target. A crash fails the target and leaves the input in .build-fuzz/crashes/.
fuzz:
	scripts/fuzz.sh $${FUZZ_SECONDS:-180}

# The short pass CI runs after the tests: 3 s per target (the sanitizer build is cached in .build-fuzz).
fuzz-smoke:
	scripts/fuzz.sh 3

# Full-size parity with open_clip (convnext_v2_tiny, ViT-B-32). Needs the reference venv:
# tools/reference/setup_venv.sh. Not part of CI.
parity-full: build
	tools/reference/full_parity.sh

# SwiftCLIP side by side with PyTorch (fp32, bf16 autocast) and ONNX Runtime (on torch.onnx.export's and on
# SwiftCLIP's own export), convnext_v2_tiny and ViT-B-32, one run (needs the reference venv); writes
# benchmarks/results/<date>-issue2.{json,md} and docs/benchmarks.png.
bench: build
	benchmarks/run_issue2.sh
