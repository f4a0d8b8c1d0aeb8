// AVX2 variant (x86-64 with AVX2 and FMA, e.g. Haswell and later): 8-float vectors, GEMM tile
// 6 × 16 (12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers).
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define KFN(name) clip_avx2_##name
#define ISA_NAME "avx2"
#define ISA_LEVEL CLIP_ISA_AVX2
#define VW 8
#define GEMM_MR 6
#define GEMM_NV 2
#include "KernelBodies.h"
#pragma clang attribute pop
#endif
