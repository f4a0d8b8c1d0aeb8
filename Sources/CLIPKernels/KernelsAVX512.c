// AVX-512 variant (x86-64 with AVX512F/BW/DQ/VL and FMA): 16-float vectors, GEMM tile 8 × 32.
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
#define KFN(name) clip_avx512_##name
#define ISA_NAME "avx512"
#define ISA_LEVEL CLIP_ISA_AVX512
#define VW 16
#define GEMM_MR 8
#define GEMM_NV 2
#include "KernelBodies.h"
#pragma clang attribute pop
#endif
