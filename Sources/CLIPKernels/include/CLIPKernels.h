// CLIPKernels: the engine's inner loops over raw pointers, compiled once per instruction-set level
// (AVX-512, AVX2+FMA, portable: SSE2 on x86-64, NEON on arm64) and chosen once at start-up from
// the CPU's features, capped by the SWIFTCLIP_ISA environment variable (avx512 | avx2 | baseline).
// No shapes, tensors or threads here: the Swift engine checks shapes and splits work; each
// function computes the rows or elements it is given.
#ifndef CLIP_KERNELS_H
#define CLIP_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t clip_index;

enum clip_activation { CLIP_ACTIVATION_NONE = 0, CLIP_ACTIVATION_GELU = 1, CLIP_ACTIVATION_QUICK_GELU = 2 };

enum clip_isa_level { CLIP_ISA_BASELINE = 0, CLIP_ISA_AVX2 = 1, CLIP_ISA_AVX512 = 2 };

/// Packed GEMM weights: panels of CLIP_PANEL_WIDTH output columns, k-major ([K][32] per panel,
/// zero-padded past N). The same layout serves every level.
#define CLIP_PANEL_WIDTH 32

typedef struct clip_kernel_table {
    /// "avx512", "avx2" or "baseline" (the portable variant: SSE2 on x86-64, NEON on arm64).
    const char *_Nonnull name;
    int level;
    /// Rows of A a thread should take at a time in `gemm_packed` (a multiple of the micro-tile).
    clip_index gemm_row_block;

    /// C[rows, cols] (= or +=) act(A · B + bias) for rows row_lo..<row_hi and B's panels
    /// panel_lo..<panel_hi; B packed as above; bias (nullable) of length n; `accumulate` adds
    /// into C (a residual) and is not combined with an activation.
    void (*_Nonnull gemm_packed)(const float *_Nonnull a, clip_index lda, const float *_Nonnull packed,
                                 clip_index k, clip_index n, float *_Nonnull c, clip_index ldc,
                                 const float *_Nullable bias, int activation, int accumulate,
                                 clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi);

    /// dst[i] = f(src[i] + bias[i]) (bias nullable), f = exact-erf GELU, QuickGELU; dst may be src.
    void (*_Nonnull gelu)(const float *_Nonnull src, const float *_Nullable bias, float *_Nonnull dst, clip_index count);
    void (*_Nonnull quick_gelu)(const float *_Nonnull src, const float *_Nullable bias, float *_Nonnull dst, clip_index count);
    /// a[i] += b[i].
    void (*_Nonnull add)(float *_Nonnull a, const float *_Nonnull b, clip_index count);
    /// dst[i] = src[i] · s.
    void (*_Nonnull scale)(const float *_Nonnull src, float *_Nonnull dst, clip_index count, float s);

    /// Rows of `width` floats: LayerNorm with biased variance; softmax (max-subtracted); x/max(‖x‖₂, 1e-12).
    void (*_Nonnull layer_norm_rows)(const float *_Nonnull src, float *_Nonnull dst, const float *_Nonnull gamma,
                                     const float *_Nonnull beta, clip_index width, clip_index rows, float eps);
    void (*_Nonnull softmax_rows)(const float *_Nonnull src, float *_Nonnull dst, clip_index width, clip_index rows);
    void (*_Nonnull l2_normalize_rows)(const float *_Nonnull src, float *_Nonnull dst, clip_index width, clip_index rows);
    /// sums[c] += Σ over `rows` rows of x[r, c] (or x[r, c]² when `squared`).
    void (*_Nonnull accumulate_rows)(const float *_Nonnull x, float *_Nonnull sums, clip_index width, clip_index rows, int squared);
    /// Row r of a channels-last map: dst[r, c] = src[r, c] · scale[r / rows_per_image, c] + shift[c], rows row_lo..<row_hi.
    void (*_Nonnull channel_affine_rows)(const float *_Nonnull src, float *_Nonnull dst, const float *_Nonnull scale,
                                         const float *_Nonnull shift, clip_index width, clip_index rows_per_image,
                                         clip_index row_lo, clip_index row_hi);

    /// Depthwise 2-D convolution, channels-last, stride 1, zero padding: output rows row_lo..<row_hi
    /// (row = image · oh + oy) of x [N, h, w, c] with weight [kh, kw, c] and bias [c] (nullable).
    void (*_Nonnull depthwise_conv_rows)(const float *_Nonnull x, const float *_Nonnull weight, const float *_Nullable bias,
                                         float *_Nonnull out, clip_index h, clip_index w, clip_index c,
                                         clip_index kh, clip_index kw, clip_index padding, clip_index oh, clip_index ow,
                                         clip_index row_lo, clip_index row_hi);
} clip_kernel_table;

/// The table for this CPU (chosen on the first call, thread-safely; never changes afterwards).
const clip_kernel_table *_Nonnull clip_kernels(void);

/// The best level this CPU supports, ignoring SWIFTCLIP_ISA.
int clip_kernels_cpu_level(void);

/// 1 when SWIFTCLIP_ISA was set to something other than avx512, avx2 or baseline (then ignored).
int clip_kernels_isa_request_invalid(void);

/// The table of one level, or NULL when this CPU (or this build's architecture) lacks it.
const clip_kernel_table *_Nullable clip_kernels_for_level(int level);

#ifdef __cplusplus
}
#endif
#endif
