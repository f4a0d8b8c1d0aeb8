// CLIPKernels: the engine's inner loops over raw pointers, compiled once per instruction-set level
// (AVX-512, AVX2+FMA, portable: SSE2 on x86-64, NEON on arm64) and chosen once at start-up from
// the CPU's features, capped by the SWIFTCLIP_ISA environment variable (avx512bf16 | avx512 | avx2 | baseline).
// No shapes or tensors here: the Swift engine checks shapes and splits work; each function
// computes the rows or elements it is given. The one thing with threads is the pool that runs the
// engine's parallel regions (clip_pool_run, ThreadPool.c).
#ifndef CLIP_KERNELS_H
#define CLIP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t clip_index;

enum clip_activation { CLIP_ACTIVATION_NONE = 0, CLIP_ACTIVATION_GELU = 1, CLIP_ACTIVATION_QUICK_GELU = 2 };

/// AVX512_BF16 is AVX-512 plus the BF16 (`vdpbf16ps`) and VNNI (`vpdpbusd`) extensions (Zen 4 and
/// later, Sapphire Rapids, Cooper Lake): the same table as AVX512 with native bf16 and int8 GEMMs.
enum clip_isa_level { CLIP_ISA_BASELINE = 0, CLIP_ISA_AVX2 = 1, CLIP_ISA_AVX512 = 2, CLIP_ISA_AVX512_BF16 = 3 };

/// Packed GEMM weights: panels of CLIP_PANEL_WIDTH output columns, k-major ([K][32] per panel,
/// zero-padded past N). The same layout serves every level.
#define CLIP_PANEL_WIDTH 32

/// Reduced-precision packed weights keep the panels and take k in groups, the operand shape of
/// `vdpbf16ps` (pairs of bf16) and `vpdpbusd` (quads of int8): panel p holds ⌈k/G⌉ groups, each
/// CLIP_PANEL_WIDTH columns × G consecutive k values (column j's group at [j·G ..< j·G + G]),
/// zero past k and n. bf16 values are the upper halves of IEEE floats (round to nearest even).
#define CLIP_BF16_GROUP 2
#define CLIP_I8_GROUP 4

/// Floats of scratch one gemm_bf16 call needs: one panel and one block of A rows widened to fp32.
#define CLIP_BF16_SCRATCH(k, row_block) (((k) + 1) / 2 * 2 * (CLIP_PANEL_WIDTH + (row_block)))

/// gemm_at_bf16 packs K in blocks of CLIP_AT_BF16_KC activation rows (B's columns as panels, C's
/// rows in blocks of CLIP_AT_BF16_MC, a multiple of every level's micro-tile height) and needs
/// CLIP_AT_BF16_SCRATCH(cols) floats of scratch per concurrent call for `cols` columns of C.
#define CLIP_AT_BF16_KC 512
#define CLIP_AT_BF16_MC 240
#define CLIP_AT_BF16_SCRATCH(cols) (CLIP_AT_BF16_KC * (((cols) + CLIP_PANEL_WIDTH - 1) / CLIP_PANEL_WIDTH * CLIP_PANEL_WIDTH + CLIP_AT_BF16_MC))

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
    /// LayerNorm's backward over `rows` rows (statistics recomputed from src): dx, and dgamma += Σ dy·x̂,
    /// dbeta += Σ dy.
    void (*_Nonnull layer_norm_backward_rows)(const float *_Nonnull src, const float *_Nonnull dy, const float *_Nonnull gamma,
                                              float *_Nonnull dx, float *_Nonnull dgamma, float *_Nonnull dbeta,
                                              clip_index width, clip_index rows, float eps);
    void (*_Nonnull softmax_rows)(const float *_Nonnull src, float *_Nonnull dst, clip_index width, clip_index rows);
    void (*_Nonnull l2_normalize_rows)(const float *_Nonnull src, float *_Nonnull dst, clip_index width, clip_index rows);
    /// y[r] = scale[r] · Σ_j x[j]·a[r·k + j] over `rows` int8 rows of length k (exact search's first pass).
    void (*_Nonnull dot_i8_rows)(const int8_t *_Nonnull a, const float *_Nonnull scale, const float *_Nonnull x,
                                 float *_Nonnull y, clip_index k, clip_index rows);
    /// sums[c] += Σ over `rows` rows of x[r, c] (or x[r, c]² when `squared`).
    void (*_Nonnull accumulate_rows)(const float *_Nonnull x, float *_Nonnull sums, clip_index width, clip_index rows, int squared);
    /// Row r of a channels-last map: dst[r, c] = src[r, c] · scale[r / rows_per_image, c] + shift[c], rows row_lo..<row_hi.
    void (*_Nonnull channel_affine_rows)(const float *_Nonnull src, float *_Nonnull dst, const float *_Nonnull scale,
                                         const float *_Nonnull shift, clip_index width, clip_index rows_per_image,
                                         clip_index row_lo, clip_index row_hi);
    /// gemm_packed (lda = k) of A's rows normalised as normalize_rows_bf16 describes (`layer_norm`:
    /// as layer_norm_rows with γ = scale, β = shift; else as channel_affine_rows), block by block into
    /// `scratch` (gemm_row_block · k floats per concurrent call): the normalised rows never reach
    /// memory. Bit for bit the normalisation's kernel followed by gemm_packed.
    void (*_Nonnull gemm_packed_normalized)(const float *_Nonnull a, const float *_Nonnull packed, clip_index k,
                                            clip_index n, float *_Nonnull c, clip_index ldc, const float *_Nullable bias,
                                            int activation, int accumulate, clip_index row_lo, clip_index row_hi,
                                            clip_index panel_lo, clip_index panel_hi, const float *_Nonnull scale,
                                            const float *_Nonnull shift, clip_index rows_per_scale, float eps,
                                            int layer_norm, float *_Nonnull scratch);

    /// ConvNeXt-V2's GELU → GRN in training (rows of `width` floats): h = GELU(z) with sums[c] += h²;
    /// sum_dyx[c] += dy·x and sum_dy[c] += dy; and GRN's backward d = dy·scale[n, c] + x·coef[n, c]
    /// (n = r / rows_per_image) for rows row_lo..<row_hi, times GELU'(z) when z is not NULL.
    void (*_Nonnull gelu_rows_square_sums)(const float *_Nonnull z, float *_Nonnull h, float *_Nonnull sums,
                                           clip_index width, clip_index rows);
    void (*_Nonnull accumulate_rows_dot)(const float *_Nonnull dy, const float *_Nonnull x, float *_Nonnull sum_dyx,
                                         float *_Nonnull sum_dy, clip_index width, clip_index rows);
    /// (With z, x is not read: GELU(z) is recomputed from the same Φ(z) the derivative needs.)
    void (*_Nonnull grn_backward_rows)(const float *_Nonnull dy, const float *_Nonnull x, const float *_Nullable z,
                                       const float *_Nonnull scale, const float *_Nonnull coef, float *_Nonnull dx,
                                       clip_index width, clip_index rows_per_image, clip_index row_lo, clip_index row_hi);
    /// h = GELU(z) and y = h · scale[r / rows_per_image, c] + shift[c] for rows row_lo..<row_hi in one
    /// pass: bit for bit `gelu` then `channel_affine_rows` (GRN's output once its statistics are known).
    void (*_Nonnull gelu_affine_rows)(const float *_Nonnull z, float *_Nonnull h, float *_Nonnull y,
                                      const float *_Nonnull scale, const float *_Nonnull shift, clip_index width,
                                      clip_index rows_per_image, clip_index row_lo, clip_index row_hi);

    /// Depthwise 2-D convolution, channels-last, stride 1, zero padding: output rows row_lo..<row_hi
    /// (row = image · oh + oy) of x [N, h, w, c] with weight [kh, kw, c] and bias [c] (nullable).
    void (*_Nonnull depthwise_conv_rows)(const float *_Nonnull x, const float *_Nonnull weight, const float *_Nullable bias,
                                         float *_Nonnull out, clip_index h, clip_index w, clip_index c,
                                         clip_index kh, clip_index kw, clip_index padding, clip_index oh, clip_index ow,
                                         clip_index row_lo, clip_index row_hi);

    // Training.

    /// C[r, j] (= or +=) Σ_kk a[kk·lda + r] · b[kk·ldb + j] for rows row_lo..<row_hi and columns
    /// col_lo..<col_hi: C = Aᵀ·B with A [k, m] and B [k, n] row-major as they lie, a weight
    /// gradient dW = dYᵀ·X over k = every activation row (no transpose, no packing).
    void (*_Nonnull gemm_at)(const float *_Nonnull a, clip_index lda, const float *_Nonnull b, clip_index ldb,
                             clip_index k, float *_Nonnull c, clip_index ldc, int accumulate,
                             clip_index row_lo, clip_index row_hi, clip_index col_lo, clip_index col_hi);
    /// Packs panels panel_lo..<panel_hi of B [k, n] (B[kk][j] = src[kk·ld + j], or src[j·ld + kk]
    /// when `transposed`) into `dst` (panels · k · CLIP_PANEL_WIDTH floats).
    void (*_Nonnull pack_panels)(const float *_Nonnull src, clip_index ld, int transposed, clip_index k, clip_index n,
                                 float *_Nonnull dst, clip_index panel_lo, clip_index panel_hi);
    /// dz[i] = dy[i] · f'(z[i]) for exact-erf GELU and QuickGELU.
    void (*_Nonnull gelu_backward)(const float *_Nonnull z, const float *_Nonnull dy, float *_Nonnull dz, clip_index count);
    void (*_Nonnull quick_gelu_backward)(const float *_Nonnull z, const float *_Nonnull dy, float *_Nonnull dz, clip_index count);
    /// torch.optim.AdamW's update of `count` weights (decoupled decay; bias corrections folded
    /// into step_size = lr / (1 − β1^t) and bc2_sqrt = √(1 − β2^t)).
    void (*_Nonnull adamw_update)(float *_Nonnull w, const float *_Nonnull g, float *_Nonnull m, float *_Nonnull v,
                                  clip_index count, float lr, float beta1, float beta2, float eps, float weight_decay,
                                  float step_size, float bc2_sqrt);
    /// Σ x².
    double (*_Nonnull sum_squares)(const float *_Nonnull x, clip_index count);
    /// Depthwise conv backward for the weights over output rows row_lo..<row_hi: dw [kh, kw, c]
    /// and db [c] (nullable) accumulated (+=).
    void (*_Nonnull depthwise_weight_grad_rows)(const float *_Nonnull x, const float *_Nonnull dy, float *_Nonnull dw,
                                                float *_Nullable db, clip_index h, clip_index w, clip_index c,
                                                clip_index kh, clip_index kw, clip_index padding, clip_index oh,
                                                clip_index ow, clip_index row_lo, clip_index row_hi);

    // Image resampling (Pillow's 8-bit horizontal pass, bit for bit; CLIPData's Resampler).

    /// The fixed-point weights (`taps` per output, the first count[i] used) of `outputs` output
    /// pixels of `channels` (3 or 4) samples laid out for resample_rows_u8 in `grouped` (outputs ·
    /// taps · 16 int32 always suffice); returns the vectors per output to give resample_rows_u8.
    clip_index (*_Nonnull resample_weights_u8)(const int32_t *_Nonnull weights, clip_index taps,
                                               const clip_index *_Nonnull count, clip_index outputs, int channels,
                                               int32_t *_Nonnull grouped);
    /// `rows` rows of pixels of `channels` (3 or 4) bytes (src_stride apart; nothing at or past
    /// src_end is read) resampled horizontally: output pixel i of a row = clip8((1 << 21 + Σ_x
    /// w_i[x] · pixel start[i] + x) >> 22) per channel, in Int32 as Pillow's
    /// ImagingResampleHorizontal_8bpc sums.
    void (*_Nonnull resample_rows_u8)(const uint8_t *_Nonnull src, clip_index src_stride,
                                      const uint8_t *_Nonnull src_end, clip_index rows,
                                      const clip_index *_Nonnull start, const clip_index *_Nonnull count,
                                      const int32_t *_Nonnull grouped, clip_index per_output, clip_index out_width,
                                      int channels, uint8_t *_Nonnull dst, clip_index dst_stride);

    // Reduced precision (inference). Activations are converted per row where the GEMM consumes
    // them; accumulation is fp32 (bf16) or int32 (int8); the epilogue is the fp32 one.

    /// Rows of src (leading dimension lds, k floats) rounded to nearest-even bf16 into dst
    /// (leading dimension ldd ≥ k, even); dst[k ..< ldd] of each row set to zero. NaN stays NaN.
    void (*_Nonnull round_rows_bf16)(const float *_Nonnull src, clip_index lds, clip_index k, uint16_t *_Nonnull dst,
                                     clip_index ldd, clip_index rows);
    /// round_rows_bf16 of a normalisation's output, in one pass: rows row_lo..<row_hi of src (k floats
    /// each, contiguous) normalised — with `layer_norm`, (x − mean)·rstd·scale[c] + shift[c] as
    /// layer_norm_rows; else x·scale[(r / rows_per_scale)·k + c] + shift[c] as channel_affine_rows —
    /// then rounded into dst (leading dimension ldd ≥ k, zero past k). Bit for bit what the separate
    /// kernels and round_rows_bf16 give.
    void (*_Nonnull normalize_rows_bf16)(const float *_Nonnull src, clip_index k, uint16_t *_Nonnull dst, clip_index ldd,
                                         const float *_Nonnull scale, const float *_Nonnull shift,
                                         clip_index rows_per_scale, float eps, int layer_norm, clip_index row_lo,
                                         clip_index row_hi);
    /// As pack_panels, into the bf16 group layout (dst: panels · ⌈k/2⌉ · 64 values).
    void (*_Nonnull pack_panels_bf16)(const float *_Nonnull src, clip_index ld, int transposed, clip_index k, clip_index n,
                                      uint16_t *_Nonnull dst, clip_index panel_lo, clip_index panel_hi);
    /// As gemm_packed with A in bf16 (round_rows_bf16's layout, lda even) and B from pack_panels_bf16;
    /// products of bf16 values (exact in fp32) summed in fp32. This one widens both operands to
    /// fp32 once per row block / panel and runs the fp32 micro-tile (faster than `vdpbf16ps` on
    /// Intel's Sapphire/Emerald Rapids, whose `vdpbf16ps` runs at ~0.6× the fp32 FMA rate:
    /// docs/precision.md), in `scratch`: CLIP_BF16_SCRATCH(k, gemm_row_block) floats per concurrent call.
    void (*_Nonnull gemm_bf16)(const uint16_t *_Nonnull a, clip_index lda, const uint16_t *_Nonnull packed,
                               clip_index k, clip_index n, float *_Nonnull c, clip_index ldc,
                               const float *_Nullable bias, int activation, int accumulate,
                               clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi,
                               float *_Nonnull scratch);
    /// gemm_bf16 on `vdpbf16ps` (AVX512_BF16 level only, else NULL): the same result up to the
    /// order of the fp32 additions; chosen where clip_kernels_bf16_dot_preferred(). `scratch` is not used.
    void (*_Nullable gemm_bf16_dot)(const uint16_t *_Nonnull a, clip_index lda, const uint16_t *_Nonnull packed,
                                    clip_index k, clip_index n, float *_Nonnull c, clip_index ldc,
                                    const float *_Nullable bias, int activation, int accumulate,
                                    clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi,
                                    float *_Nonnull scratch);
    /// gemm_at with both operands rounded to bf16 and the products summed in fp32: amp_bf16's weight
    /// gradients (PyTorch's autocast runs them in bf16 too). Each K block of A and B is rounded and
    /// packed once into `scratch` (CLIP_AT_BF16_SCRATCH(col_hi − col_lo) floats); this one keeps the
    /// rounded values as floats and runs the fp32 micro-tile.
    void (*_Nonnull gemm_at_bf16)(const float *_Nonnull a, clip_index lda, const float *_Nonnull b, clip_index ldb,
                                  clip_index k, float *_Nonnull c, clip_index ldc, int accumulate,
                                  clip_index row_lo, clip_index row_hi, clip_index col_lo, clip_index col_hi,
                                  float *_Nonnull scratch);
    /// gemm_at_bf16 on `vdpbf16ps` (AVX512_BF16 level only, else NULL), pairs of k packed as it reads them.
    void (*_Nullable gemm_at_bf16_dot)(const float *_Nonnull a, clip_index lda, const float *_Nonnull b, clip_index ldb,
                                       clip_index k, float *_Nonnull c, clip_index ldc, int accumulate,
                                       clip_index row_lo, clip_index row_hi, clip_index col_lo, clip_index col_hi,
                                       float *_Nonnull scratch);
    /// Dynamic per-row asymmetric uint8 quantisation (ONNX's DynamicQuantizeLinear, per row):
    /// scale = (max(x, 0) − min(x, 0)) / 255, zero = round(−min(x, 0) / scale), q = sat(round(x / scale) + zero);
    /// dst leading dimension ldd ≥ k (a multiple of 4), padding zero. A row of zeros gets scale 1;
    /// a non-finite row gets scale NaN (its outputs are NaN).
    void (*_Nonnull quantize_rows_u8)(const float *_Nonnull src, clip_index lds, clip_index k, uint8_t *_Nonnull dst,
                                      clip_index ldd, float *_Nonnull scale, int32_t *_Nonnull zero_point, clip_index rows);
    /// As pack_panels, quantising each output column j symmetrically: col_scale[j] = max|B[·][j]| / 127
    /// (1 for a zero column), q = round(B / col_scale) in [−127, 127], col_sum[j] = Σ q; the
    /// int8 group layout (dst: panels · ⌈k/4⌉ · 128 bytes); col_* hold panels · 32 entries (0 past n).
    void (*_Nonnull pack_panels_i8)(const float *_Nonnull src, clip_index ld, int transposed, clip_index k, clip_index n,
                                    int8_t *_Nonnull dst, float *_Nonnull col_scale, int32_t *_Nonnull col_sum,
                                    clip_index panel_lo, clip_index panel_hi);
    /// C = act(a_scale[r] · col_scale[j] · (Σ_k qa[r][k] · qb[k][j] − a_zero[r] · col_sum[j]) + bias[j]) (or +=),
    /// A from quantize_rows_u8 (lda a multiple of 4), B from pack_panels_i8; int32 sums.
    void (*_Nonnull gemm_i8)(const uint8_t *_Nonnull a, clip_index lda, const float *_Nonnull a_scale,
                             const int32_t *_Nonnull a_zero, const int8_t *_Nonnull packed,
                             const float *_Nonnull col_scale, const int32_t *_Nonnull col_sum,
                             clip_index k, clip_index n, float *_Nonnull c, clip_index ldc,
                             const float *_Nullable bias, int activation, int accumulate,
                             clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi);
} clip_kernel_table;

/// The table for this CPU (chosen on the first call, thread-safely; never changes afterwards).
const clip_kernel_table *_Nonnull clip_kernels(void);

/// Moves the pages of [src, src + bytes) to dst (page-aligned; `bytes` a multiple of the page
/// size), replacing whatever was mapped there, without copying or zeroing them (Linux `mremap`):
/// 0, or −1 where that failed or the system has no such call (the caller then maps fresh pages).
int clip_move_pages(void *_Nonnull src, size_t bytes, void *_Nonnull dst);

/// A part of a parallel region: task(context, part).
typedef void (*clip_pool_task)(void *_Nullable context, clip_index part);

/// Runs task(context, 0) … task(context, parts − 1) on the calling thread and the pool's workers
/// (up to parts − 1 of them and one fewer than the online CPUs, started on first need and kept;
/// idle ones spin ~0.2 ms, then sleep)
/// and returns when every part has finished: 0. −1, having run nothing, while another thread's
/// region is running or for more than 4095 parts (the caller then runs its parts another way).
int clip_pool_run(clip_index parts, clip_pool_task _Nonnull task, void *_Nullable context);

/// clip_pool_run with at most `threads` threads (the caller included) taking part: each claims the
/// next unstarted part when it finishes one, so with more parts than threads a fast thread takes
/// the parts a slow (preempted) one has not started.
int clip_pool_run_threads(clip_index parts, clip_index threads, clip_pool_task _Nonnull task, void *_Nullable context);

/// 1 while the pool runs its workers in bursts (for ~0.2 s after it last saw a worker preempted or
/// a caller wait on a preempted worker's part: another process busy on a shared core), else 0.
int clip_pool_contended(void);

/// Starts (or renews) that mode as a sign of contention would: for tests and measurements.
void clip_pool_note_contention(void);

/// How many CPUs the calling thread may run on (its affinity; 0 where unknown), and in `cpu` the
/// one it runs on now (−1 where unknown): the workers' placement while contended, for tests.
int clip_thread_placement(int *_Nonnull cpu);

/// Pins the calling thread to `cpu`, or with −1 lets it run on every online CPU: 0, or −1 where
/// that failed or the system has no such call. For tests.
int clip_thread_pin(int cpu);

/// The best level this CPU supports, ignoring SWIFTCLIP_ISA.
int clip_kernels_cpu_level(void);

/// 1 when this CPU's `vdpbf16ps` is worth more than widening bf16 to fp32 FMAs (AMD Zen 4/5:
/// measured ~1.7× the fp32 GEMM rate; Intel Sapphire/Emerald Rapids: ~0.6×, docs/precision.md).
int clip_kernels_bf16_dot_preferred(void);

/// 1 when SWIFTCLIP_ISA was set to something other than avx512bf16, avx512, avx2 or baseline (then ignored).
int clip_kernels_isa_request_invalid(void);

/// The table of one level, or NULL when this CPU (or this build's architecture) lacks it.
const clip_kernel_table *_Nullable clip_kernels_for_level(int level);

#ifdef __cplusplus
}
#endif
#endif
