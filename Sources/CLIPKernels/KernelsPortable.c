// Portable variant, compiled for the architecture's baseline: SSE2 on x86-64, NEON on arm64.
// 4-float vectors; GEMM tile 4 × 8 on x86-64 (no FMA: products need a temporary register each),
// 8 × 8 on arm64 (32 NEON registers and fused multiply-add).
#define KFN(name) clip_baseline_##name
#define ISA_NAME "baseline"
#define ISA_LEVEL CLIP_ISA_BASELINE
#define VW 4
#if defined(__aarch64__)
#define GEMM_MR 8
#else
#define GEMM_MR 4
#endif
#define GEMM_NV 2
#include "KernelBodies.h"
