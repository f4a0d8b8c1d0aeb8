// AVX-512 variant (x86-64 with AVX512F/BW/DQ/VL and FMA): 16-float vectors, GEMM tile 8 × 32.
// Two tables: AVX512 (bf16 widened to fp32, int8 widened to int32) and AVX512_BF16, the same
// kernels plus reduced-precision micro-tiles on `vpdpbusd` (its int8 GEMM) and `vdpbf16ps` (its
// gemm_bf16_dot and gemm_at_bf16_dot; the engine picks them over the widening ones where
// clip_kernels_bf16_dot_preferred says they are faster). Only those functions
// carry the avx512bf16/avx512vnni target; Dispatch.c selects the table only when the CPU has both.
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
#define KFN(name) clip_avx512_##name
#define ISA_NAME "avx512"
#define ISA_LEVEL CLIP_ISA_AVX512
#define VW 16
#define GEMM_MR 8
#define GEMM_NV 2
#include "KernelBodies.h"
#pragma clang attribute pop

#define NATIVE __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,avx512bf16,avx512vnni")))

/// 8 × 32 tile of bf16 products summed in fp32: per group of two k, one `vdpbf16ps` per
/// accumulator (the A pair broadcast as a 32-bit word, B's 16 columns × 2 k in a zmm).
NATIVE INLINE void native_tile_bf16(const int rows, const gemm_operands *g, clip_index row, clip_index panel,
                                    clip_index sub, float *c, clip_index ldc, const float *bias, int accumulate) {
    const uint16_t *a = bf16_rows(g, row), *b = bf16_groups(g, panel, sub);
    vf acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vsplat(0);
    for (clip_index q = 0; q < g->groups; q++) {
        __m512bh bv[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * VW * CLIP_BF16_GROUP);
        b += CLIP_PANEL_WIDTH * CLIP_BF16_GROUP;
        for (int r = 0; r < rows; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)load_u32(a + r * g->lda + q * CLIP_BF16_GROUP));
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = (vf)_mm512_dpbf16_ps((__m512)acc[r][v], av, bv[v]);
        }
    }
    store_tile(rows, acc, c, ldc, bias, accumulate);
}

/// 8 × 32 tile of uint8 × int8 products summed in int32: one `vpdpbusd` per accumulator per
/// group of four k.
NATIVE INLINE void native_tile_i8(const int rows, const gemm_operands *g, clip_index row, clip_index panel,
                                  clip_index sub, float *c, clip_index ldc, const float *bias, int accumulate) {
    const uint8_t *a = u8_rows(g, row);
    const int8_t *b = i8_groups(g, panel, sub);
    vi acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vsplati(0);
    for (clip_index q = 0; q < g->groups; q++) {
        __m512i bv[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) bv[v] = _mm512_loadu_si512(b + v * VW * CLIP_I8_GROUP);
        b += CLIP_PANEL_WIDTH * CLIP_I8_GROUP;
        for (int r = 0; r < rows; r++) {
            __m512i av = _mm512_set1_epi32((int)load_u32(a + r * g->lda + q * CLIP_I8_GROUP));
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = (vi)_mm512_dpbusd_epi32((__m512i)acc[r][v], av, bv[v]);
        }
    }
    store_tile_i8(rows, acc, g, row, panel * CLIP_PANEL_WIDTH + sub, c, ldc, bias, accumulate);
}

/// gemm_at_bf16_dot's 8 × 32 tile: A's packed block holds, per pair of k, one word per row of C
/// (rows lda words apart per pair), B's panel one word per column.
NATIVE INLINE void native_tile_at_bf16(const int rows, const unsigned *a, clip_index lda, const unsigned *b,
                                       clip_index groups, float *c, clip_index ldc, int accumulate) {
    vf acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vsplat(0);
    for (clip_index q = 0; q < groups; q++) {
        __m512bh bv[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * VW);
        b += CLIP_PANEL_WIDTH;
        for (int r = 0; r < rows; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[q * lda + r]);
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = (vf)_mm512_dpbf16_ps((__m512)acc[r][v], av, bv[v]);
        }
    }
    store_tile(rows, acc, c, ldc, 0, accumulate);
}

NATIVE static void native_tile_rows_at_bf16(int rows, const void *a, clip_index lda, const void *b,
                                            clip_index k_padded, float *c, clip_index ldc, int accumulate) {
#define CALL(R) native_tile_at_bf16(R, (const unsigned *)a, lda, (const unsigned *)b, k_padded / 2, c, ldc, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

NATIVE static void native_tile_rows_bf16(int rows, const gemm_operands *g, clip_index row, clip_index panel,
                                         clip_index sub, float *c, clip_index ldc, const float *bias, int accumulate) {
#define CALL(R) native_tile_bf16(R, g, row, panel, sub, c, ldc, bias, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

NATIVE static void native_tile_rows_i8(int rows, const gemm_operands *g, clip_index row, clip_index panel,
                                       clip_index sub, float *c, clip_index ldc, const float *bias, int accumulate) {
#define CALL(R) native_tile_i8(R, g, row, panel, sub, c, ldc, bias, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
REDUCED_GEMM_ENTRIES(clip_avx512bf16_gemm_bf16_dot, clip_avx512bf16_gemm_i8, native_tile_rows_bf16, native_tile_rows_i8, 0)
static void clip_avx512bf16_gemm_at_bf16_dot(const float *a, clip_index lda, const float *b, clip_index ldb, clip_index k,
                                             float *c, clip_index ldc, int accumulate, clip_index row_lo,
                                             clip_index row_hi, clip_index col_lo, clip_index col_hi, float *scratch) {
    gemm_at_bf16_blocks(1, native_tile_rows_at_bf16, a, lda, b, ldb, k, c, ldc, accumulate, row_lo, row_hi, col_lo,
                        col_hi, scratch);
}
KERNEL_TABLE(clip_avx512bf16_table, "avx512bf16", CLIP_ISA_AVX512_BF16, clip_avx512bf16_gemm_bf16_dot,
             clip_avx512bf16_gemm_at_bf16_dot, clip_avx512bf16_gemm_i8)
#pragma clang attribute pop
#endif
