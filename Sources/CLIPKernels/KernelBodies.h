// The kernels, written once over clang's generic vectors and compiled once per level: a variant
// file defines KFN(name) (the level's suffix), VW (floats per vector), GEMM_MR (rows of the GEMM
// micro-tile) and GEMM_NV (vectors per micro-tile row), pushes its target attribute, and includes
// this file. Each variant's vectors are its registers' width, so the same source becomes zmm code
// under AVX-512, ymm under AVX2 and xmm/NEON in the portable build. a·b + c is contracted to an
// FMA where the level has one (clang's default -ffp-contract=on).

#include "CLIPKernels.h"


typedef float vf __attribute__((vector_size(VW * 4)));
typedef int vi __attribute__((vector_size(VW * 4)));

#define INLINE static inline __attribute__((always_inline))
#define GEMM_NR (GEMM_NV * VW)

INLINE vf vload(const float *p) { vf v; __builtin_memcpy(&v, p, sizeof v); return v; }
INLINE void vstore(float *p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
INLINE vf vsplat(float x) {
    vf v;
    for (int i = 0; i < VW; i++) v[i] = x;   // a broadcast; `(vf){0} + x` would cost an add (−0 + 0 ≠ −0)
    return v;
}
INLINE vf vselect(vi mask, vf yes, vf no) { return (vf)(((vi)yes & mask) | ((vi)no & ~mask)); }
INLINE vf vmin(vf a, vf b) { return vselect(b < a, b, a); }
INLINE vf vmax(vf a, vf b) { return vselect(b > a, b, a); }

/// `count` (< VW) floats; the other lanes `fill`.
INLINE vf vload_partial(const float *p, clip_index count, float fill) {
    float lanes[VW];
    for (int i = 0; i < VW; i++) lanes[i] = i < count ? p[i] : fill;
    return vload(lanes);
}
INLINE void vstore_partial(float *p, vf v, clip_index count) {
    float lanes[VW];
    vstore(lanes, v);
    for (clip_index i = 0; i < count; i++) p[i] = lanes[i];
}
INLINE float vsum(vf v) {
    float s = 0;
    for (int i = 0; i < VW; i++) s += v[i];
    return s;
}
INLINE float vmax_lane(vf v) {
    float m = v[0];
    for (int i = 1; i < VW; i++) m = v[i] > m ? v[i] : m;
    return m;
}

// MARK: exp, GELU, QuickGELU

/// e^(hi + lo), lo a small correction to hi (|lo| ≲ 2): the range reduction subtracts n·ln2 from
/// hi before lo is added, so hi may carry a large exact value. ≈ 2 ulp in the normal range;
/// arguments beyond ±88 are clamped (tiny or saturated results, never inf or NaN).
INLINE vf vexp(vf hi, vf lo) {
    const float log2e = 1.44269504f, ln2_hi = 0.693359375f, ln2_lo = -2.1219444e-4f;
    vf h = vmax(vmin(hi, vsplat(88.0f)), vsplat(-88.0f));
    vf x = vmax(vmin(h + lo, vsplat(88.3f)), vsplat(-87.3f));
    // n = round(x·log2e) by the 1.5·2^23 trick: the sum's low mantissa bits hold n.
    vf shifted = x * log2e + 12582912.0f;
    vf n = shifted - 12582912.0f;
    vf r = (h - n * ln2_hi) - n * ln2_lo + lo;
    // Taylor series of e^r to degree 8 on |r| ≤ 0.35 (truncation < 3e-10).
    vf p = r * (1.0f / 40320) + (1.0f / 5040);
    p = p * r + (1.0f / 720);
    p = p * r + (1.0f / 120);
    p = p * r + (1.0f / 24);
    p = p * r + (1.0f / 6);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vi bits = (((vi)shifted - 0x4B400000) + 127) << 23;
    return p * (vf)bits;
}

/// |x| beyond which Φ(x) is 0 or 1 to float precision (Φ(−5.5) ≈ 1.9e-8): the rational below is
/// fitted on [−5.5, 5.5] and evaluated at x clamped to it.
#define NORMAL_CDF_RANGE 5.5f

INLINE vf vclamp_normal_range(vf x) { return vmax(vmin(x, vsplat(NORMAL_CDF_RANGE)), vsplat(-NORMAL_CDF_RANGE)); }

/// Φ(x), the normal CDF, as ½ + x·P(x²)/Q(x²): a degree-(5, 5) rational fitted to (Φ(x) − ½)/x on
/// [0, 5.5] (weighted least squares driven toward minimax: tools/kernels/fit_normal_cdf.py); 0 below
/// −5.5. One division and ten FMAs, where the erfc·exp form with a ten-term series it replaced took
/// ~50 operations per vector. The error is absolute, not relative: GELU = x·Φ is within
/// 2.5e-7·max(1, |x|) of the exact value everywhere (relative ≤ 3.4e-7 for x ≥ −1; tested as
/// `Ref.geluViolation`), under PyTorch's own erf GELU error (3.2e-7·|x|, up to 21% relative below
/// −3); the far negative tail is no longer relative-exact.
INLINE vf vnormal_cdf(vf x) {
    vf xc = vclamp_normal_range(x);
    vf s = xc * xc;
    vf p = s * 2.274934655e-08f + 6.352087853e-06f;
    p = p * s + 1.688243483e-04f;
    p = p * s + 4.677251930e-03f;
    p = p * s + 3.385253761e-02f;
    p = p * s + 3.989422346e-01f;
    vf q = s * 1.197501260e-06f + 7.364697443e-05f;
    q = q * s + 1.884437225e-03f;
    q = q * s + 2.864580404e-02f;
    q = q * s + 2.515216465e-01f;
    q = q * s + 1.0f;
    // Rounding near −5.5 could take Φ a few 1e-8 below 0, and GELU of a negative x above 0.
    vf phi = vmax(xc * (p / q) + 0.5f, vsplat(0.0f));
    return vselect(x < -NORMAL_CDF_RANGE, vsplat(0.0f), phi);
}

/// The erf GELU x·Φ(x) (not the tanh approximation).
INLINE vf vgelu(vf x) { return x * vnormal_cdf(x); }

/// x·σ(1.702·x), the QuickGELU of OpenAI's CLIP.
INLINE vf vquick_gelu(vf x) { return x / (1.0f + vexp(x * -1.702f, vsplat(0.0f))); }

#define ELEMENTWISE(fname, f)                                                                      \
    static void KFN(fname)(const float *src, const float *bias, float *dst, clip_index count) {   \
        clip_index i = 0;                                                                          \
        if (bias) {                                                                                \
            for (; i + VW <= count; i += VW) vstore(dst + i, f(vload(src + i) + vload(bias + i))); \
        } else {                                                                                   \
            for (; i + VW <= count; i += VW) vstore(dst + i, f(vload(src + i)));                   \
        }                                                                                          \
        if (i < count) {                                                                           \
            vf v = vload_partial(src + i, count - i, 0);                                           \
            if (bias) v += vload_partial(bias + i, count - i, 0);                                  \
            vstore_partial(dst + i, f(v), count - i);                                              \
        }                                                                                          \
    }
ELEMENTWISE(gelu, vgelu)
ELEMENTWISE(quick_gelu, vquick_gelu)

INLINE void activate(float *row, clip_index count, int activation) {
    if (activation == CLIP_ACTIVATION_GELU) KFN(gelu)(row, 0, row, count);
    else if (activation == CLIP_ACTIVATION_QUICK_GELU) KFN(quick_gelu)(row, 0, row, count);
}

static void KFN(add)(float *a, const float *b, clip_index count) {
    clip_index i = 0;
    for (; i + VW <= count; i += VW) vstore(a + i, vload(a + i) + vload(b + i));
    for (; i < count; i++) a[i] += b[i];
}

static void KFN(scale)(const float *src, float *dst, clip_index count, float s) {
    clip_index i = 0;
    for (; i + VW <= count; i += VW) vstore(dst + i, vload(src + i) * s);
    for (; i < count; i++) dst[i] = src[i] * s;
}

// MARK: Packed GEMM

/// The epilogue of a finished tile of fp32 sums: bias and the residual added, stored.
INLINE void store_tile(const int rows, vf acc[GEMM_MR][GEMM_NV], float *c, clip_index ldc, const float *bias, int accumulate) {
    for (int r = 0; r < rows; r++) {
        float *dst = c + r * ldc;
        for (int v = 0; v < GEMM_NV; v++) {
            vf s = acc[r][v];
            if (bias) s += vload(bias + v * VW);
            if (accumulate) s += vload(dst + v * VW);
            vstore(dst + v * VW, s);
        }
    }
}

/// `rows` (≤ GEMM_MR, a constant after inlining) × GEMM_NR of C over the full K: the accumulators
/// stay in registers; per k, GEMM_NV vectors of B (a row of a packed panel, ldb = CLIP_PANEL_WIDTH,
/// or of a plain row-major matrix) and one broadcast of A per row.
INLINE void micro_tile(const int rows, const int a_transposed, const float *a, clip_index lda, const float *b, clip_index ldb,
                       clip_index k, float *c, clip_index ldc, const float *bias, int accumulate) {
    vf acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vsplat(0);
    for (clip_index kk = 0; kk < k; kk++) {
        vf bv[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) bv[v] = vload(b + v * VW);
        b += ldb;
        for (int r = 0; r < rows; r++) {
            // A transposed (Aᵀ stored row-major): a tile's rows are adjacent floats of one line.
            vf av = vsplat(a_transposed ? a[kk * lda + r] : a[r * lda + kk]);
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = acc[r][v] + av * bv[v];
        }
    }
    store_tile(rows, acc, c, ldc, bias, accumulate);
}

/// What a GEMM micro-tile reads besides its position: A (fp32, bf16 or uint8 rows, or fp32 Aᵀ),
/// B's panels and their groups of k (k itself for fp32), and int8's scales and sums.
typedef struct gemm_operands {
    const void *a;
    clip_index lda;
    const void *packed;
    clip_index groups;
    const float *a_scale;
    const int32_t *a_zero;
    const float *col_scale;
    const int32_t *col_sum;
    /// bf16 (widening levels): B's current panel widened to fp32, and which panel it is.
    struct widened_panel *widened;
} gemm_operands;

/// rows × GEMM_NR of C at (row, panel·32 + sub) over the full k, bias (offset to the tile's
/// columns, nullable) and the residual (`accumulate`) added in registers.
typedef void (*gemm_tile_fn)(int rows, const gemm_operands *g, clip_index row, clip_index panel, clip_index sub,
                             float *c, clip_index ldc, const float *bias, int accumulate);

/// `TILE_SWITCH(rows, CALL)` calls CALL(R) with R = rows (≤ GEMM_MR) as a compile-time constant.
#define MR_CAP(r) ((r) <= GEMM_MR ? (r) : GEMM_MR)
#define TILE_SWITCH(rows, CALL)                                                                    \
    switch (rows) {                                                                                \
    case 1: CALL(1); break;                                                                        \
    case 2: CALL(MR_CAP(2)); break;                                                                \
    case 3: CALL(MR_CAP(3)); break;                                                                \
    case 4: CALL(MR_CAP(4)); break;                                                                \
    case 5: CALL(MR_CAP(5)); break;                                                                \
    case 6: CALL(MR_CAP(6)); break;                                                                \
    case 7: CALL(MR_CAP(7)); break;                                                                \
    case 8: CALL(MR_CAP(8)); break;                                                                \
    default: break;                                                                                \
    }

static void KFN(tile_fp32)(int rows, const gemm_operands *g, clip_index row, clip_index panel, clip_index sub,
                           float *c, clip_index ldc, const float *bias, int accumulate) {
    const float *a = (const float *)g->a + row * g->lda;
    const float *b = (const float *)g->packed + panel * g->groups * CLIP_PANEL_WIDTH + sub;
#define CALL(R) micro_tile(R, 0, a, g->lda, b, CLIP_PANEL_WIDTH, g->groups, c, ldc, bias, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

/// `activate` over a stored tile of rows × GEMM_NR floats (in L1), inlined into the tile loop:
/// a call per row cost ~10% of the GELU GEMM at k = 96. The same vector functions, so the same bits.
INLINE void activate_tile(int rows, float *c, clip_index ldc, int activation) {
    if (activation == CLIP_ACTIVATION_GELU) {
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < GEMM_NV; v++) vstore(c + r * ldc + v * VW, vgelu(vload(c + r * ldc + v * VW)));
    } else if (activation == CLIP_ACTIVATION_QUICK_GELU) {
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < GEMM_NV; v++) vstore(c + r * ldc + v * VW, vquick_gelu(vload(c + r * ldc + v * VW)));
    }
}

/// The blocking every packed GEMM shares, over one format's tile: rows row_lo..<row_hi of C and
/// B's panels panel_lo..<panel_hi; the activation over each stored tile while it is in L1.
INLINE void gemm_blocks(gemm_tile_fn tile, const gemm_operands *g, clip_index n, float *c, clip_index ldc,
                        const float *bias, int activation, int accumulate,
                        clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi) {
    // A block of rows of A stays in L1/L2 while B's panels stream past.
    const clip_index block_rows = GEMM_MR * 16;
    for (clip_index block = row_lo; block < row_hi; block += block_rows) {
        clip_index block_end = block + block_rows < row_hi ? block + block_rows : row_hi;
        for (clip_index panel = panel_lo; panel < panel_hi; panel++) {
            for (clip_index sub = 0; sub < CLIP_PANEL_WIDTH; sub += GEMM_NR) {
                clip_index col = panel * CLIP_PANEL_WIDTH + sub;
                if (col >= n) break;
                clip_index cols = n - col < GEMM_NR ? n - col : GEMM_NR;
                for (clip_index row = block; row < block_end; row += GEMM_MR) {
                    int rows = (int)(block_end - row < GEMM_MR ? block_end - row : GEMM_MR);
                    float *cp = c + row * ldc + col;
                    if (cols == GEMM_NR) {
                        tile(rows, g, row, panel, sub, cp, ldc, bias ? bias + col : 0, accumulate);
                        activate_tile(rows, cp, ldc, activation);
                    } else {
                        // Past the last whole tile: the padded panel computes into a scratch tile.
                        float scratch[GEMM_MR * GEMM_NR];
                        tile(rows, g, row, panel, sub, scratch, GEMM_NR, 0, 0);
                        for (int r = 0; r < rows; r++) {
                            float *t = scratch + r * GEMM_NR, *dst = cp + r * ldc;
                            if (bias) for (clip_index j = 0; j < cols; j++) t[j] += bias[col + j];
                            activate(t, cols, activation);
                            for (clip_index j = 0; j < cols; j++) dst[j] = accumulate ? dst[j] + t[j] : t[j];
                        }
                    }
                }
            }
        }
    }
}

static void KFN(gemm_packed)(const float *a, clip_index lda, const float *packed, clip_index k, clip_index n,
                             float *c, clip_index ldc, const float *bias, int activation, int accumulate,
                             clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi) {
    gemm_operands g = {a, lda, packed, k, 0, 0, 0, 0, 0};
    gemm_blocks(KFN(tile_fp32), &g, n, c, ldc, bias, activation, accumulate, row_lo, row_hi, panel_lo, panel_hi);
}

/// One tile of C (+)= Aᵀ·B for gemm_at: `rows` of C from A's columns, B rows `ldb` apart.
static void KFN(tile_at)(int rows, const float *a, clip_index lda, const float *b, clip_index ldb, clip_index k,
                         float *c, clip_index ldc, int accumulate) {
#define CALL(R) micro_tile(R, 1, a, lda, b, ldb, k, c, ldc, 0, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

/// K (activation rows) per block of gemm_at: a GEMM_AT_KC × GEMM_NR strip of B (32 KB at AVX-512's
/// 32 columns) stays in L1 while every tile of a row block reads it, and GEMM_AT_MC columns of A
/// over the same K (256 KB) stay in L2 while the strips of every column group pass.
#define GEMM_AT_KC 256
#define GEMM_AT_MC (GEMM_MR * 32)

static void KFN(gemm_at)(const float *a, clip_index lda, const float *b, clip_index ldb, clip_index k, float *c,
                         clip_index ldc, int accumulate, clip_index row_lo, clip_index row_hi, clip_index col_lo,
                         clip_index col_hi) {
    float strip[GEMM_AT_KC * GEMM_NR];
    for (clip_index kb = 0; kb < k; kb += GEMM_AT_KC) {
        const clip_index kc = k - kb < GEMM_AT_KC ? k - kb : GEMM_AT_KC;
        const int add = accumulate || kb > 0;
        const float *ak = a + kb * lda, *bk = b + kb * ldb;
        for (clip_index block = row_lo; block < row_hi; block += GEMM_AT_MC) {
            const clip_index block_end = block + GEMM_AT_MC < row_hi ? block + GEMM_AT_MC : row_hi;
            for (clip_index col = col_lo; col < col_hi; col += GEMM_NR) {
                const clip_index cols = col_hi - col < GEMM_NR ? col_hi - col : GEMM_NR;
                const float *bs = bk + col;
                clip_index ldbs = ldb;
                if (cols < GEMM_NR) {
                    // The last, partial column group: a zero-padded copy, so no load reads past B's rows.
                    for (clip_index kk = 0; kk < kc; kk++)
                        for (clip_index j = 0; j < GEMM_NR; j++) strip[kk * GEMM_NR + j] = j < cols ? bk[kk * ldb + col + j] : 0;
                    bs = strip;
                    ldbs = GEMM_NR;
                }
                for (clip_index row = block; row < block_end; row += GEMM_MR) {
                    const int rows = (int)(block_end - row < GEMM_MR ? block_end - row : GEMM_MR);
                    float *cp = c + row * ldc + col;
                    if (cols == GEMM_NR) {
                        KFN(tile_at)(rows, ak + row, lda, bs, ldbs, kc, cp, ldc, add);
                    } else {
                        float scratch[GEMM_MR * GEMM_NR];
                        KFN(tile_at)(rows, ak + row, lda, bs, ldbs, kc, scratch, GEMM_NR, 0);
                        for (int r = 0; r < rows; r++)
                            for (clip_index j = 0; j < cols; j++)
                                cp[r * ldc + j] = add ? cp[r * ldc + j] + scratch[r * GEMM_NR + j] : scratch[r * GEMM_NR + j];
                    }
                }
            }
        }
    }
}

/// Panels panel_lo..<panel_hi of B [k, n] packed; B[kk][j] = src[kk·ld + j], or src[j·ld + kk]
/// when `transposed` (an nn.Linear weight [n, k]).
static void KFN(pack_panels)(const float *src, clip_index ld, int transposed, clip_index k, clip_index n, float *dst,
                             clip_index panel_lo, clip_index panel_hi) {
    for (clip_index panel = panel_lo; panel < panel_hi; panel++) {
        clip_index col = panel * CLIP_PANEL_WIDTH;
        clip_index cols = n - col < CLIP_PANEL_WIDTH ? n - col : CLIP_PANEL_WIDTH;
        float *out = dst + panel * k * CLIP_PANEL_WIDTH;
        if (!transposed) {
            for (clip_index kk = 0; kk < k; kk++) {
                const float *row = src + kk * ld + col;
                float *o = out + kk * CLIP_PANEL_WIDTH;
                clip_index j = 0;
                for (; j < cols; j++) o[j] = row[j];
                for (; j < CLIP_PANEL_WIDTH; j++) o[j] = 0;
            }
        } else {
            for (clip_index kk = 0; kk < k; kk++) {
                float *o = out + kk * CLIP_PANEL_WIDTH;
                clip_index j = 0;
                for (; j < cols; j++) o[j] = src[(col + j) * ld + kk];
                for (; j < CLIP_PANEL_WIDTH; j++) o[j] = 0;
            }
        }
    }
}

// MARK: Backward of the elementwise ops

/// Φ(z) and φ(z), the normal CDF and density: GELU(z) = z·Φ(z), GELU'(z) = Φ(z) + z·φ(z). Φ is
/// `vnormal_cdf` (so z·Φ is bit for bit `gelu`); φ is 0 where Φ is clamped, as the forward is flat there.
INLINE vf vnormal_cdf_pdf(vf z, vf *pdf) {
    vf zc = vclamp_normal_range(z);
    vf ax = (vf)((vi)z & 0x7FFFFFFF);
    *pdf = vselect(ax > NORMAL_CDF_RANGE, vsplat(0.0f), 0.39894228f * vexp(zc * zc * -0.5f, vsplat(0.0f)));
    return vnormal_cdf(z);
}

/// dz = dy · GELU'(z) = dy · (Φ(z) + z·φ(z)).
INLINE vf vgelu_grad(vf z, vf dy) {
    vf pdf, cdf = vnormal_cdf_pdf(z, &pdf);
    return dy * (cdf + z * pdf);
}
/// dz = dy · (σ + 1.702·z·σ·(1 − σ)), σ = σ(1.702·z).
INLINE vf vquick_gelu_grad(vf z, vf dy) {
    vf s = 1.0f / (1.0f + vexp(z * -1.702f, vsplat(0.0f)));
    return dy * (s + 1.702f * z * s * (1.0f - s));
}

#define ELEMENTWISE_GRAD(fname, f)                                                                 \
    static void KFN(fname)(const float *z, const float *dy, float *dz, clip_index count) {         \
        clip_index i = 0;                                                                          \
        for (; i + VW <= count; i += VW) vstore(dz + i, f(vload(z + i), vload(dy + i)));           \
        if (i < count)                                                                             \
            vstore_partial(dz + i, f(vload_partial(z + i, count - i, 0), vload_partial(dy + i, count - i, 0)), count - i); \
    }
ELEMENTWISE_GRAD(gelu_backward, vgelu_grad)
ELEMENTWISE_GRAD(quick_gelu_backward, vquick_gelu_grad)

/// torch.optim.AdamW's update of `count` values: w ← w·(1 − lr·wd); m ← m + (g − m)(1 − β1);
/// v ← β2·v + (1 − β2)·g²; w ← w − step_size · m / (√v / bc2_sqrt + eps).
static void KFN(adamw_update)(float *w, const float *g, float *m, float *v, clip_index count, float lr, float beta1,
                              float beta2, float eps, float weight_decay, float step_size, float bc2_sqrt) {
    const float decay = 1 - lr * weight_decay, one_b1 = 1 - beta1, one_b2 = 1 - beta2, inv_bc2 = 1.0f / bc2_sqrt;
    clip_index i = 0;
    for (; i + VW <= count; i += VW) {
        vf gi = vload(g + i), mi = vload(m + i), vi_ = vload(v + i);
        mi = mi + (gi - mi) * one_b1;
        vi_ = vi_ * beta2 + one_b2 * gi * gi;
        vf denom = __builtin_elementwise_sqrt(vi_) * inv_bc2 + eps;
        vstore(m + i, mi);
        vstore(v + i, vi_);
        vstore(w + i, vload(w + i) * decay - step_size * (mi / denom));
    }
    for (; i < count; i++) {
        float gi = g[i];
        m[i] += (gi - m[i]) * one_b1;
        v[i] = v[i] * beta2 + one_b2 * gi * gi;
        w[i] = w[i] * decay - step_size * (m[i] / (__builtin_sqrtf(v[i]) * inv_bc2 + eps));
    }
}

/// Σ x² over `count` floats (in float lanes, summed in double).
static double KFN(sum_squares)(const float *x, clip_index count) {
    vf acc = vsplat(0);
    clip_index i = 0;
    for (; i + VW <= count; i += VW) { vf v = vload(x + i); acc = acc + v * v; }
    double s = 0;
    for (int l = 0; l < VW; l++) s += acc[l];
    for (; i < count; i++) s += (double)x[i] * x[i];
    return s;
}

// MARK: Row normalisations

INLINE float row_sum(const float *p, clip_index width) {
    vf acc = vsplat(0);
    clip_index i = 0;
    for (; i + VW <= width; i += VW) acc += vload(p + i);
    float s = vsum(acc);
    for (; i < width; i++) s += p[i];
    return s;
}

/// A row's mean and 1/√(biased variance + eps), the variance from a second pass over the centred
/// values (as accurate as PyTorch's Welford; the row is in L1).
INLINE void row_mean_rstd(const float *x, clip_index width, float eps, float *mean_out, float *rstd_out) {
    float mean = row_sum(x, width) / (float)width;
    vf acc = vsplat(0);
    clip_index i = 0;
    for (; i + VW <= width; i += VW) { vf d = vload(x + i) - mean; acc = acc + d * d; }
    float variance = vsum(acc);
    for (; i < width; i++) { float d = x[i] - mean; variance += d * d; }
    *mean_out = mean;
    *rstd_out = 1.0f / __builtin_sqrtf(variance / (float)width + eps);
}

static void KFN(layer_norm_rows)(const float *src, float *dst, const float *gamma, const float *beta,
                                 clip_index width, clip_index rows, float eps) {
    for (clip_index r = 0; r < rows; r++) {
        const float *x = src + r * width;
        float *y = dst + r * width;
        float mean, inv;
        row_mean_rstd(x, width, eps, &mean, &inv);
        clip_index i = 0;
        for (; i + VW <= width; i += VW)
            vstore(y + i, (vload(x + i) - mean) * inv * vload(gamma + i) + vload(beta + i));
        for (; i < width; i++) y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
    }
}

/// Backward of layer_norm_rows: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ and x̂ the
/// normalised row (statistics recomputed as the forward computes them); dgamma[c] += dy·x̂ and
/// dbeta[c] += dy over the rows.
static void KFN(layer_norm_backward_rows)(const float *src, const float *dy, const float *gamma, float *dx, float *dgamma,
                                          float *dbeta, clip_index width, clip_index rows, float eps) {
    for (clip_index r = 0; r < rows; r++) {
        const float *x = src + r * width, *g = dy + r * width;
        float *d = dx + r * width;
        float mean, rstd;
        row_mean_rstd(x, width, eps, &mean, &rstd);
        vf sum_g = vsplat(0), sum_gx = vsplat(0);
        float tail_g = 0, tail_gx = 0;
        clip_index i = 0;
        for (; i + VW <= width; i += VW) {
            vf xh = (vload(x + i) - mean) * rstd, gi = vload(g + i), gw = gi * vload(gamma + i);
            sum_g += gw;
            sum_gx += gw * xh;
            vstore(dgamma + i, vload(dgamma + i) + gi * xh);
            vstore(dbeta + i, vload(dbeta + i) + gi);
        }
        for (; i < width; i++) {
            float xh = (x[i] - mean) * rstd, gw = g[i] * gamma[i];
            tail_g += gw;
            tail_gx += gw * xh;
            dgamma[i] += g[i] * xh;
            dbeta[i] += g[i];
        }
        float mean_g = (vsum(sum_g) + tail_g) / (float)width, mean_gx = (vsum(sum_gx) + tail_gx) / (float)width;
        i = 0;
        for (; i + VW <= width; i += VW) {
            vf xh = (vload(x + i) - mean) * rstd;
            vstore(d + i, rstd * (vload(g + i) * vload(gamma + i) - mean_g - xh * mean_gx));
        }
        for (; i < width; i++) d[i] = rstd * (g[i] * gamma[i] - mean_g - (x[i] - mean) * rstd * mean_gx);
    }
}

static void KFN(softmax_rows)(const float *src, float *dst, clip_index width, clip_index rows) {
    for (clip_index r = 0; r < rows; r++) {
        const float *x = src + r * width;
        float *y = dst + r * width;
        vf m = vsplat(-__builtin_inff());
        clip_index i = 0;
        for (; i + VW <= width; i += VW) m = vmax(m, vload(x + i));
        float peak = vmax_lane(m);
        for (; i < width; i++) peak = x[i] > peak ? x[i] : peak;
        vf total = vsplat(0);
        i = 0;
        for (; i + VW <= width; i += VW) {
            vf e = vexp(vload(x + i) - peak, vsplat(0));
            vstore(y + i, e);
            total += e;
        }
        float sum = vsum(total);
        if (i < width) {
            vf e = vexp(vload_partial(x + i, width - i, -__builtin_inff()) - peak, vsplat(0));
            e = vselect(vload_partial(x + i, width - i, -__builtin_inff()) == -__builtin_inff(), vsplat(0), e);
            vstore_partial(y + i, e, width - i);
            sum += vsum(e);
        }
        KFN(scale)(y, y, width, 1.0f / sum);
    }
}

static void KFN(l2_normalize_rows)(const float *src, float *dst, clip_index width, clip_index rows) {
    for (clip_index r = 0; r < rows; r++) {
        const float *x = src + r * width;
        vf acc = vsplat(0);
        clip_index i = 0;
        for (; i + VW <= width; i += VW) { vf v = vload(x + i); acc = acc + v * v; }
        float sq = vsum(acc);
        for (; i < width; i++) sq += x[i] * x[i];
        float norm = __builtin_sqrtf(sq);
        KFN(scale)(x, dst + r * width, width, 1.0f / (norm > 1e-12f ? norm : 1e-12f));
    }
}

/// `VW` int8 values widened to floats (exactly: every int8 is a float).
INLINE vf vload_i8(const int8_t *p) {
    typedef int8_t vc __attribute__((vector_size(VW)));
    vc c;
    __builtin_memcpy(&c, p, sizeof c);
    return __builtin_convertvector(c, vf);
}

/// Exact search's first pass over quantised vectors: y[r] = scale[r] · Σ_j x[j]·a[r·k + j] for
/// `rows` int8 rows of length k (a quarter of the bytes of float rows, the pass being memory-bound).
/// Four rows share each load of x; two accumulators per row hide the FMA latency.
static void KFN(dot_i8_rows)(const int8_t *a, const float *scale, const float *x, float *y, clip_index k, clip_index rows) {
    clip_index r = 0;
    for (; r + 4 <= rows; r += 4) {
        const int8_t *a0 = a + r * k, *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;
        vf s0 = vsplat(0), s1 = vsplat(0), s2 = vsplat(0), s3 = vsplat(0);
        vf t0 = vsplat(0), t1 = vsplat(0), t2 = vsplat(0), t3 = vsplat(0);
        clip_index j = 0;
        for (; j + 2 * VW <= k; j += 2 * VW) {
            vf x0 = vload(x + j), x1 = vload(x + j + VW);
            s0 += vload_i8(a0 + j) * x0; t0 += vload_i8(a0 + j + VW) * x1;
            s1 += vload_i8(a1 + j) * x0; t1 += vload_i8(a1 + j + VW) * x1;
            s2 += vload_i8(a2 + j) * x0; t2 += vload_i8(a2 + j + VW) * x1;
            s3 += vload_i8(a3 + j) * x0; t3 += vload_i8(a3 + j + VW) * x1;
        }
        float d0 = vsum(s0 + t0), d1 = vsum(s1 + t1), d2 = vsum(s2 + t2), d3 = vsum(s3 + t3);
        for (; j < k; j++) { d0 += a0[j] * x[j]; d1 += a1[j] * x[j]; d2 += a2[j] * x[j]; d3 += a3[j] * x[j]; }
        y[r] = d0 * scale[r]; y[r + 1] = d1 * scale[r + 1]; y[r + 2] = d2 * scale[r + 2]; y[r + 3] = d3 * scale[r + 3];
    }
    for (; r < rows; r++) {
        const int8_t *row = a + r * k;
        vf s = vsplat(0);
        clip_index j = 0;
        for (; j + VW <= k; j += VW) s += vload_i8(row + j) * vload(x + j);
        float d = vsum(s);
        for (; j < k; j++) d += row[j] * x[j];
        y[r] = d * scale[r];
    }
}

static void KFN(accumulate_rows)(const float *x, float *sums, clip_index width, clip_index rows, int squared) {
    for (clip_index r = 0; r < rows; r++) {
        const float *xr = x + r * width;
        clip_index c = 0;
        if (squared) {
            for (; c + VW <= width; c += VW) { vf v = vload(xr + c); vstore(sums + c, vload(sums + c) + v * v); }
            for (; c < width; c++) sums[c] += xr[c] * xr[c];
        } else {
            for (; c + VW <= width; c += VW) vstore(sums + c, vload(sums + c) + vload(xr + c));
            for (; c < width; c++) sums[c] += xr[c];
        }
    }
}

/// y[i] = x[i]·s[i] + shift[i] over one row (`x` may equal `y`).
INLINE void affine_row(const float *x, const float *s, const float *shift, float *y, clip_index width) {
    clip_index i = 0;
    for (; i + VW <= width; i += VW) vstore(y + i, vload(x + i) * vload(s + i) + vload(shift + i));
    for (; i < width; i++) y[i] = x[i] * s[i] + shift[i];
}

static void KFN(channel_affine_rows)(const float *src, float *dst, const float *scale, const float *shift,
                                     clip_index width, clip_index rows_per_image, clip_index row_lo, clip_index row_hi) {
    for (clip_index r = row_lo; r < row_hi; r++)
        affine_row(src + r * width, scale + (r / rows_per_image) * width, shift, dst + r * width, width);
}

/// gemm_packed with A's rows normalised first, block by block: each block of gemm_row_block rows
/// is normalised into `scratch` (gemm_row_block · k floats) right before its tiles read it, so the
/// normalised map is never written to memory. `layer_norm`: as layer_norm_rows (scale and shift
/// are γ and β); else as channel_affine_rows with scale's row r / rows_per_scale. A is contiguous
/// (lda = k). Bit for bit those kernels followed by gemm_packed.
static void KFN(gemm_packed_normalized)(const float *a, const float *packed, clip_index k, clip_index n, float *c,
                                        clip_index ldc, const float *bias, int activation, int accumulate,
                                        clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi,
                                        const float *scale, const float *shift, clip_index rows_per_scale, float eps,
                                        int layer_norm, float *scratch) {
    const clip_index block_rows = GEMM_MR * 16;
    for (clip_index block = row_lo; block < row_hi; block += block_rows) {
        clip_index rows = row_hi - block < block_rows ? row_hi - block : block_rows;
        if (layer_norm) {
            KFN(layer_norm_rows)(a + block * k, scratch, scale, shift, k, rows, eps);
        } else {
            for (clip_index r = 0; r < rows; r++)
                affine_row(a + (block + r) * k, scale + ((block + r) / rows_per_scale) * k, shift, scratch + r * k, k);
        }
        gemm_operands g = {scratch, k, packed, k, 0, 0, 0, 0, 0};
        gemm_blocks(KFN(tile_fp32), &g, n, c + block * ldc, ldc, bias, activation, accumulate, 0, rows, panel_lo, panel_hi);
    }
}

// MARK: GlobalResponseNorm with its GELU (training)
//
// ConvNeXt-V2's MLP is fc1 → GELU → GRN → fc2. Training keeps fc1's pre-activation z; these passes
// recompute h = GELU(z) and GRN's statistics together, and run GRN's backward and GELU's backward
// as one pass, so the 4C-wide maps are read and written as few times as possible.

/// Rows of `width` floats: h[r, c] = GELU(z[r, c]) and sums[c] += h[r, c]².
static void KFN(gelu_rows_square_sums)(const float *z, float *h, float *sums, clip_index width, clip_index rows) {
    for (clip_index r = 0; r < rows; r++) {
        const float *zr = z + r * width;
        float *hr = h + r * width;
        clip_index c = 0;
        for (; c + VW <= width; c += VW) {
            vf v = vgelu(vload(zr + c));
            vstore(hr + c, v);
            vstore(sums + c, vload(sums + c) + v * v);
        }
        if (c < width) {
            vf v = vgelu(vload_partial(zr + c, width - c, 0));
            vstore_partial(hr + c, v, width - c);
            vstore_partial(sums + c, vload_partial(sums + c, width - c, 0) + v * v, width - c);
        }
    }
}

/// Rows of `width` floats: sum_dyx[c] += dy[r, c]·x[r, c] and sum_dy[c] += dy[r, c].
static void KFN(accumulate_rows_dot)(const float *dy, const float *x, float *sum_dyx, float *sum_dy, clip_index width,
                                     clip_index rows) {
    for (clip_index r = 0; r < rows; r++) {
        const float *gr = dy + r * width, *xr = x + r * width;
        clip_index c = 0;
        for (; c + VW <= width; c += VW) {
            vf g = vload(gr + c);
            vstore(sum_dyx + c, vload(sum_dyx + c) + g * vload(xr + c));
            vstore(sum_dy + c, vload(sum_dy + c) + g);
        }
        for (; c < width; c++) { sum_dyx[c] += gr[c] * xr[c]; sum_dy[c] += gr[c]; }
    }
}

/// GRN's backward for one vector: d = dy·s + x·k, then, with z (`gelu`), d·GELU'(z) where x =
/// GELU(z) is recomputed from the same Φ(z) (bit for bit what `gelu` gives), so x is not read.
INLINE vf grn_backward_vector(const int gelu, vf dy, vf x, vf z, vf s, vf k) {
    if (!gelu) return dy * s + x * k;
    vf pdf, cdf = vnormal_cdf_pdf(z, &pdf);
    vf d = dy * s + (z * cdf) * k;
    return d * (cdf + z * pdf);
}

/// GRN's backward for rows row_lo..<row_hi of a channels-last map: d = dy·scale[n, c] + x·coef[n, c]
/// (n = r / rows_per_image), then, when z is given (x = GELU(z)), d·GELU'(z): the gradient at
/// GELU's input in the same pass. With z, x is recomputed from it and not read (x may be NULL).
static void KFN(grn_backward_rows)(const float *dy, const float *x, const float *z, const float *scale, const float *coef,
                                   float *dx, clip_index width, clip_index rows_per_image, clip_index row_lo,
                                   clip_index row_hi) {
    const int gelu = z != 0;
    for (clip_index r = row_lo; r < row_hi; r++) {
        const float *s = scale + (r / rows_per_image) * width, *k = coef + (r / rows_per_image) * width;
        const float *gr = dy + r * width, *xr = gelu ? 0 : x + r * width, *zr = gelu ? z + r * width : 0;
        float *dr = dx + r * width;
        clip_index c = 0;
        if (gelu) {
            for (; c + VW <= width; c += VW)
                vstore(dr + c, grn_backward_vector(1, vload(gr + c), vsplat(0), vload(zr + c), vload(s + c), vload(k + c)));
        } else {
            for (; c + VW <= width; c += VW)
                vstore(dr + c, grn_backward_vector(0, vload(gr + c), vload(xr + c), vsplat(0), vload(s + c), vload(k + c)));
        }
        if (c < width) {
            clip_index n = width - c;
            vf xv = gelu ? vsplat(0) : vload_partial(xr + c, n, 0), zv = gelu ? vload_partial(zr + c, n, 0) : vsplat(0);
            vstore_partial(dr + c, grn_backward_vector(gelu, vload_partial(gr + c, n, 0), xv, zv, vload_partial(s + c, n, 0),
                                                       vload_partial(k + c, n, 0)), n);
        }
    }
}

/// GELU, then GRN's affine map once its statistics are known, in one pass over rows
/// row_lo..<row_hi: h = GELU(z) and y = h·scale[n, c] + shift[c] (n = r / rows_per_image), bit for
/// bit what `gelu` then `channel_affine_rows` give. Training's backward recomputes both this way.
static void KFN(gelu_affine_rows)(const float *z, float *h, float *y, const float *scale, const float *shift,
                                  clip_index width, clip_index rows_per_image, clip_index row_lo, clip_index row_hi) {
    for (clip_index r = row_lo; r < row_hi; r++) {
        const float *s = scale + (r / rows_per_image) * width, *zr = z + r * width;
        float *hr = h + r * width, *yr = y + r * width;
        clip_index c = 0;
        for (; c + VW <= width; c += VW) {
            vf v = vgelu(vload(zr + c));
            vstore(hr + c, v);
            vstore(yr + c, v * vload(s + c) + vload(shift + c));
        }
        if (c < width) {
            clip_index n = width - c;
            vf v = vgelu(vload_partial(zr + c, n, 0));
            vstore_partial(hr + c, v, n);
            vstore_partial(yr + c, v * vload_partial(s + c, n, 0) + vload_partial(shift + c, n, 0), n);
        }
    }
}

// MARK: Depthwise convolution
//
// Vectorised over C. ConvNeXt's 7-wide kernels: for one output row and one block of VW channels, a
// tile of DW_TILE output columns loads each kernel row's DW_TILE + 6 input columns once (zero
// outside the row, so border columns take the same path) and reuses them for all 7 taps of every
// column: 7 FMAs per load. Other widths: an interior tile of 8 output columns keeps 8 accumulators
// in registers (9 loads per 8 FMAs per tap); border columns, where the kx range shrinks, take a
// one-column path over 4 channel blocks at once (four independent FMA chains). Kernel rows are
// clamped per output row; channels past the last whole vector take a scalar path. Every path sums
// kernel row by kernel row, tap by tap, in the same order (a tap outside the row adds 0).

typedef struct {
    clip_index h, w, c, kh, kw, padding, oh, ow;
} dw_geometry;

INLINE void dw_tile8(const dw_geometry *g, const float *x, const float *weight, clip_index rows, vf bias, float *out) {
    const clip_index c = g->c, stride = g->w * c;
    vf a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias;
    for (clip_index r = 0; r < rows; r++) {
        const float *xr = x + r * stride, *wr = weight + r * g->kw * c;
        for (clip_index kx = 0; kx < g->kw; kx++) {
            vf wv = vload(wr + kx * c);
            const float *xp = xr + kx * c;
            a0 = a0 + vload(xp) * wv;
            a1 = a1 + vload(xp + c) * wv;
            a2 = a2 + vload(xp + 2 * c) * wv;
            a3 = a3 + vload(xp + 3 * c) * wv;
            a4 = a4 + vload(xp + 4 * c) * wv;
            a5 = a5 + vload(xp + 5 * c) * wv;
            a6 = a6 + vload(xp + 6 * c) * wv;
            a7 = a7 + vload(xp + 7 * c) * wv;
        }
    }
    vstore(out, a0); vstore(out + c, a1); vstore(out + 2 * c, a2); vstore(out + 3 * c, a3);
    vstore(out + 4 * c, a4); vstore(out + 5 * c, a5); vstore(out + 6 * c, a6); vstore(out + 7 * c, a7);
}

INLINE vf bias_vector(const float *bias, clip_index c0) { return bias ? vload(bias + c0) : vsplat(0); }

#define DW_K7 7
/// Output columns per 7-wide tile: DW_TILE accumulators + DW_TILE + 6 inputs + 1 weight in registers
/// (23 of AVX-512's 32; 15 of AVX2's and SSE2's 16).
#define DW_TILE (VW >= 16 ? 8 : 4)

/// `cols` (≤ DW_TILE) output columns from `ox` of the channel block at c0, a 7-wide kernel.
INLINE void dw_tile_k7(const dw_geometry *g, const float *x_row, const float *w_row, clip_index rows, clip_index ox,
                       clip_index cols, vf bias, float *out_row, clip_index c0) {
    const clip_index c = g->c, stride = g->w * c, ix0 = ox - g->padding;
    vf acc[DW_TILE];
    for (int i = 0; i < DW_TILE; i++) acc[i] = bias;
    for (clip_index r = 0; r < rows; r++) {
        const float *xr = x_row + r * stride + c0, *wr = w_row + r * DW_K7 * c + c0;
        vf in[DW_TILE + DW_K7 - 1];
#pragma clang loop unroll(full)
        for (int j = 0; j < DW_TILE + DW_K7 - 1; j++) {
            const clip_index ix = ix0 + j;
            in[j] = ix >= 0 && ix < g->w ? vload(xr + ix * c) : vsplat(0);
        }
#pragma clang loop unroll(full)
        for (int kx = 0; kx < DW_K7; kx++) {
            const vf wv = vload(wr + kx * c);
#pragma clang loop unroll(full)
            for (int i = 0; i < DW_TILE; i++) acc[i] = acc[i] + in[i + kx] * wv;
        }
    }
    for (clip_index i = 0; i < cols; i++) vstore(out_row + (ox + i) * c + c0, acc[i]);
}

/// One output column, channel blocks from `first_block` on (then the scalar channel tail).
static void KFN(dw_column)(const dw_geometry *g, clip_index ox, const float *x_row, const float *w_row, clip_index rows,
                           const float *bias, float *out_row, clip_index first_block) {
    const clip_index c = g->c, stride = g->w * c, blocks = c / VW;
    clip_index kx_lo = g->padding - ox > 0 ? g->padding - ox : 0;
    clip_index kx_hi = g->w + g->padding - ox < g->kw ? g->w + g->padding - ox : g->kw;
    clip_index taps = kx_hi > kx_lo ? kx_hi - kx_lo : 0;
    const float *x_col = x_row + (ox + kx_lo - g->padding) * c, *w_col = w_row + kx_lo * c;
    float *o = out_row + ox * c;
    clip_index cb = first_block;
    for (; cb + 4 <= blocks; cb += 4) {
        clip_index c0 = cb * VW;
        vf a0 = bias_vector(bias, c0), a1 = bias_vector(bias, c0 + VW);
        vf a2 = bias_vector(bias, c0 + 2 * VW), a3 = bias_vector(bias, c0 + 3 * VW);
        for (clip_index r = 0; r < rows; r++) {
            const float *xr = x_col + r * stride + c0, *wr = w_col + r * g->kw * c + c0;
            for (clip_index t = 0; t < taps; t++) {
                const float *xp = xr + t * c, *wq = wr + t * c;
                a0 = a0 + vload(xp) * vload(wq);
                a1 = a1 + vload(xp + VW) * vload(wq + VW);
                a2 = a2 + vload(xp + 2 * VW) * vload(wq + 2 * VW);
                a3 = a3 + vload(xp + 3 * VW) * vload(wq + 3 * VW);
            }
        }
        vstore(o + c0, a0); vstore(o + c0 + VW, a1); vstore(o + c0 + 2 * VW, a2); vstore(o + c0 + 3 * VW, a3);
    }
    for (; cb < blocks; cb++) {
        clip_index c0 = cb * VW;
        vf a0 = bias_vector(bias, c0);
        for (clip_index r = 0; r < rows; r++) {
            const float *xr = x_col + r * stride + c0, *wr = w_col + r * g->kw * c + c0;
            for (clip_index t = 0; t < taps; t++) a0 = a0 + vload(xr + t * c) * vload(wr + t * c);
        }
        vstore(o + c0, a0);
    }
    for (clip_index ch = blocks * VW; ch < c; ch++) {
        float acc = bias ? bias[ch] : 0;
        for (clip_index r = 0; r < rows; r++)
            for (clip_index t = 0; t < taps; t++) acc += x_col[r * stride + t * c + ch] * w_col[r * g->kw * c + t * c + ch];
        o[ch] = acc;
    }
}

static void KFN(depthwise_conv_rows)(const float *x, const float *weight, const float *bias, float *out,
                                     clip_index h, clip_index w, clip_index c, clip_index kh, clip_index kw,
                                     clip_index padding, clip_index oh, clip_index ow, clip_index row_lo, clip_index row_hi) {
    const dw_geometry g = {h, w, c, kh, kw, padding, oh, ow};
    const clip_index blocks = c / VW, stride = w * c;
    for (clip_index row = row_lo; row < row_hi; row++) {
        clip_index image = row / oh, oy = row % oh;
        // Kernel rows whose input row oy + ky − padding lies inside the image.
        clip_index ky_lo = padding - oy > 0 ? padding - oy : 0;
        clip_index ky_hi = h + padding - oy < kh ? h + padding - oy : kh;
        clip_index rows = ky_hi > ky_lo ? ky_hi - ky_lo : 0;
        const float *x_row = x + (image * h + oy + ky_lo - padding) * stride;
        const float *w_row = weight + ky_lo * kw * c;
        float *out_row = out + (image * oh + oy) * ow * c;
        if (kw == DW_K7) {
            for (clip_index cb = 0; cb < blocks; cb++)
                for (clip_index ox = 0; ox < ow; ox += DW_TILE)
                    dw_tile_k7(&g, x_row, w_row, rows, ox, ow - ox < DW_TILE ? ow - ox : DW_TILE, bias_vector(bias, cb * VW), out_row, cb * VW);
            if (blocks * VW < c)
                for (clip_index col = 0; col < ow; col++) KFN(dw_column)(&g, col, x_row, w_row, rows, bias, out_row, blocks);
            continue;
        }
        // Output columns whose taps all lie inside the row: ox − p ≥ 0 and ox − p + kw ≤ w.
        clip_index interior_lo = padding < ow ? padding : ow;
        clip_index interior_hi = w - kw + padding + 1 < ow ? w - kw + padding + 1 : ow;
        if (interior_hi < interior_lo) interior_hi = interior_lo;
        clip_index ox = interior_lo;
        if (blocks > 0) {
            for (; ox + 8 <= interior_hi; ox += 8)
                for (clip_index cb = 0; cb < blocks; cb++) {
                    clip_index c0 = cb * VW;
                    dw_tile8(&g, x_row + (ox - padding) * c + c0, w_row + c0, rows, bias_vector(bias, c0),
                             out_row + ox * c + c0);
                }
            // The tiles covered whole vectors only: the channel tail of those columns.
            if (blocks * VW < c)
                for (clip_index col = interior_lo; col < ox; col++)
                    for (clip_index ch = blocks * VW; ch < c; ch++) {
                        float acc = bias ? bias[ch] : 0;
                        const float *xc = x_row + (col - padding) * c;
                        for (clip_index r = 0; r < rows; r++)
                            for (clip_index t = 0; t < kw; t++) acc += xc[r * stride + t * c + ch] * w_row[r * kw * c + t * c + ch];
                        out_row[col * c + ch] = acc;
                    }
        }
        for (clip_index col = 0; col < interior_lo; col++) KFN(dw_column)(&g, col, x_row, w_row, rows, bias, out_row, 0);
        for (clip_index col = ox; col < ow; col++) KFN(dw_column)(&g, col, x_row, w_row, rows, bias, out_row, 0);
    }
}

/// One input column's VW channels from c0 (`partial`: the first `lanes` only), zero outside the row.
INLINE vf dw_grad_x(const int partial, const float *xr, clip_index ix, clip_index w, clip_index c, clip_index lanes) {
    if (ix < 0 || ix >= w) return vsplat(0);
    return partial ? vload_partial(xr + ix * c, lanes, 0) : vload(xr + ix * c);
}

/// dw[kx, c0..] += Σ_ox dy[ox, c0..] · x[ox + kx − p, c0..] for one kernel row of KW taps (a
/// constant after inlining) over one output row: KW accumulators in registers, so an output column
/// costs one load of dy, KW loads of x (from L1) and KW FMAs (the generic loop below costs two loads
/// per FMA and passes over the row once per tap). Columns whose taps all lie inside the row take
/// unchecked loads; the border columns test each tap. `xr` and `g` point at channel c0 of the input
/// and dy rows; `partial`: only the first `lanes` channels are valid.
INLINE void dw_grad_window(const int KW, const int partial, const float *xr, const float *g, float *d, clip_index c,
                           clip_index w, clip_index padding, clip_index ow, clip_index lanes) {
    vf acc[KW];
#pragma clang loop unroll(full)
    for (int t = 0; t < KW; t++) acc[t] = vsplat(0);
    clip_index lo = padding < ow ? padding : ow;
    clip_index hi = w - KW + padding + 1 < ow ? w - KW + padding + 1 : ow;
    if (hi < lo) hi = lo;
    for (clip_index ox = 0; ox < lo; ox++) {
        vf gv = partial ? vload_partial(g + ox * c, lanes, 0) : vload(g + ox * c);
#pragma clang loop unroll(full)
        for (int t = 0; t < KW; t++) acc[t] = acc[t] + gv * dw_grad_x(partial, xr, ox - padding + t, w, c, lanes);
    }
    for (clip_index ox = lo; ox < hi; ox++) {
        vf gv = partial ? vload_partial(g + ox * c, lanes, 0) : vload(g + ox * c);
        const float *xp = xr + (ox - padding) * c;
#pragma clang loop unroll(full)
        for (int t = 0; t < KW; t++) acc[t] = acc[t] + gv * (partial ? vload_partial(xp + t * c, lanes, 0) : vload(xp + t * c));
    }
    for (clip_index ox = hi; ox < ow; ox++) {
        vf gv = partial ? vload_partial(g + ox * c, lanes, 0) : vload(g + ox * c);
#pragma clang loop unroll(full)
        for (int t = 0; t < KW; t++) acc[t] = acc[t] + gv * dw_grad_x(partial, xr, ox - padding + t, w, c, lanes);
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < KW; t++) {
        if (partial) vstore_partial(d + t * c, vload_partial(d + t * c, lanes, 0) + acc[t], lanes);
        else vstore(d + t * c, vload(d + t * c) + acc[t]);
    }
}

/// One kernel row (ky) of the weight gradient over one output row, every channel, KW taps.
INLINE void dw_grad_row(const int KW, const float *xr, const float *g, float *d, clip_index c, clip_index w,
                        clip_index padding, clip_index ow) {
    clip_index c0 = 0;
    for (; c0 + VW <= c; c0 += VW) dw_grad_window(KW, 0, xr + c0, g + c0, d + c0, c, w, padding, ow, VW);
    if (c0 < c) dw_grad_window(KW, 1, xr + c0, g + c0, d + c0, c, w, padding, ow, c - c0);
}

/// Backward of the depthwise convolution for the weights: over output rows row_lo..<row_hi,
/// dw[ky, kx, c] += Σ dy[row, ox, c] · x[iy, ox + kx − p, c] and db[c] += Σ dy[row, ox, c]
/// (db nullable). Vectorised over channels; kernels 3 and 7 wide (ConvNeXt's) take the sliding
/// window above, other widths sum each (tap, channel block) over a row in registers.
static void KFN(depthwise_weight_grad_rows)(const float *x, const float *dy, float *dw, float *db,
                                            clip_index h, clip_index w, clip_index c, clip_index kh, clip_index kw,
                                            clip_index padding, clip_index oh, clip_index ow, clip_index row_lo, clip_index row_hi) {
    const clip_index blocks = c / VW, stride = w * c;
    for (clip_index row = row_lo; row < row_hi; row++) {
        clip_index image = row / oh, oy = row % oh;
        const float *g = dy + row * ow * c;
        if (db) {
            for (clip_index ox = 0; ox < ow; ox++) KFN(add)(db, g + ox * c, c);
        }
        for (clip_index ky = 0; ky < kh; ky++) {
            clip_index iy = oy + ky - padding;
            if (iy < 0 || iy >= h) continue;
            const float *xr = x + (image * h + iy) * stride;
            if (kw == 7) { dw_grad_row(7, xr, g, dw + ky * kw * c, c, w, padding, ow); continue; }
            if (kw == 3) { dw_grad_row(3, xr, g, dw + ky * kw * c, c, w, padding, ow); continue; }
            for (clip_index kx = 0; kx < kw; kx++) {
                // Output columns whose input column ox + kx − p lies inside the row.
                clip_index lo = padding - kx > 0 ? padding - kx : 0;
                clip_index hi = w + padding - kx < ow ? w + padding - kx : ow;
                if (hi <= lo) continue;
                float *d = dw + (ky * kw + kx) * c;
                const float *xs = xr + (lo + kx - padding) * c, *gs = g + lo * c;
                clip_index cb = 0;
                for (; cb < blocks; cb++) {
                    clip_index c0 = cb * VW;
                    vf a0 = vsplat(0);
                    for (clip_index ox = 0; ox < hi - lo; ox++) a0 = a0 + vload(gs + ox * c + c0) * vload(xs + ox * c + c0);
                    vstore(d + c0, vload(d + c0) + a0);
                }
                for (clip_index ch = blocks * VW; ch < c; ch++) {
                    float acc = 0;
                    for (clip_index ox = 0; ox < hi - lo; ox++) acc += gs[ox * c + ch] * xs[ox * c + ch];
                    d[ch] += acc;
                }
            }
        }
    }
}

// MARK: Image resampling
//
// Pillow's 8-bit horizontal resampling pass for rows of 3 or 4 samples a pixel (RGB; RGBA
// premultiplied, CMYK) — the costliest step of preprocessing a photo in scalar code, ~1/3 of its
// CPU — vectorised over the taps: each vector holds VW / ch whole pixels (ch lanes each; lanes left
// over get weight 0), so lane l always belongs to channel l % ch and one multiply-add covers VW / ch
// taps. Int32 products and sums, as Pillow's, so the bytes are Pillow's. Four rows share each
// weight vector. 4-lane levels run a scalar loop (one pixel a vector gains nothing, and SSE2 has no
// 32-bit multiply).
#define RESAMPLE_ROWS 4

/// The fixed-point weights (`taps` per output, count[i] used) laid out for resample_rows_u8: output
/// i's taps in vectors of VW / channels pixels, each weight repeated for the pixel's channels (3 or
/// 4). Returns the vectors per output; `grouped` receives outputs × that × VW int32.
static clip_index KFN(resample_weights_u8)(const int32_t *weights, clip_index taps, const clip_index *count,
                                           clip_index outputs, int channels, int32_t *grouped) {
    const clip_index per_vector = VW / channels, per_output = (taps + per_vector - 1) / per_vector;
    for (clip_index i = 0; i < outputs; i++) {
        int32_t *g = grouped + i * per_output * VW;
        for (clip_index l = 0; l < per_output * VW; l++) g[l] = 0;
        for (clip_index x = 0; x < count[i]; x++)
            for (int c = 0; c < channels; c++)
                g[(x / per_vector) * VW + (x % per_vector) * channels + c] = weights[i * taps + x];
    }
    return per_output;
}

INLINE vi widen_bytes(const uint8_t *p, const uint8_t *end) {
    typedef uint8_t vb __attribute__((vector_size(VW)));
    vb b;
    if (p + VW <= end) {
        __builtin_memcpy(&b, p, sizeof b);
    } else {
        uint8_t t[VW] = {0};
        for (clip_index i = 0; p + i < end && i < VW; i++) t[i] = p[i];
        __builtin_memcpy(&b, t, sizeof b);
    }
    return __builtin_convertvector(b, vi);
}

/// v's lanes moved down by s (a constant), zeros shifted in.
#define LANE(s, j) ((s) + (j) < VW ? (s) + (j) : VW)
#if VW == 16
#define SHIFT_DOWN(v, s)                                                                           \
    __builtin_shufflevector(v, (vi){0}, LANE(s, 0), LANE(s, 1), LANE(s, 2), LANE(s, 3), LANE(s, 4), \
                            LANE(s, 5), LANE(s, 6), LANE(s, 7), LANE(s, 8), LANE(s, 9), LANE(s, 10),    \
                            LANE(s, 11), LANE(s, 12), LANE(s, 13), LANE(s, 14), LANE(s, 15))
#elif VW == 8
#define SHIFT_DOWN(v, s)                                                                           \
    __builtin_shufflevector(v, (vi){0}, LANE(s, 0), LANE(s, 1), LANE(s, 2), LANE(s, 3), LANE(s, 4), \
                            LANE(s, 5), LANE(s, 6), LANE(s, 7))
#endif

/// Σ of lanes c, c + ch, c + 2ch, … of `v` for each channel c, plus 1 << 21, >> 22, clipped to a
/// byte (Pillow's clip8), stored to out[0..<ch].
INLINE void store_pixel(vi v, const int ch, uint8_t *out) {
#if VW == 16
    if (ch == 3) {   // 5 pixels in lanes 0..<15
        vi pairs = v + SHIFT_DOWN(v, 3);
        v = pairs + SHIFT_DOWN(pairs, 6) + SHIFT_DOWN(v, 12);
    } else {         // 4 pixels
        v += SHIFT_DOWN(v, 8);
        v += SHIFT_DOWN(v, 4);
    }
#elif VW == 8
    if (ch == 3) v += SHIFT_DOWN(v, 3);   // 2 pixels
    else v += SHIFT_DOWN(v, 4);
#endif
    for (int c = 0; c < ch; c++) {
        int32_t s = ((1 << 21) + v[c]) >> 22;
        out[c] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
    }
}

INLINE void resample_rows(const uint8_t *src, clip_index src_stride, const uint8_t *src_end, clip_index rows,
                          const clip_index *start, const clip_index *count, const int32_t *grouped,
                          clip_index per_output, clip_index out_width, uint8_t *dst, clip_index dst_stride, const int ch) {
    const clip_index per_vector = VW / ch;
    clip_index r = 0;
#if VW < 8
    for (; r < rows; r++) {
        const uint8_t *row = src + r * src_stride;
        for (clip_index i = 0; i < out_width; i++) {
            const int32_t *w = grouped + i * per_output * VW;
            const uint8_t *p = row + start[i] * ch;
            int32_t s[4] = {1 << 21, 1 << 21, 1 << 21, 1 << 21};
            for (clip_index x = 0; x < count[i]; x++)
                for (int c = 0; c < ch; c++) s[c] += (int32_t)p[ch * x + c] * w[x * VW];
            for (int c = 0; c < ch; c++) {
                int32_t v = s[c] >> 22;
                dst[r * dst_stride + i * ch + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
#endif
    for (; r + RESAMPLE_ROWS <= rows; r += RESAMPLE_ROWS) {
        for (clip_index i = 0; i < out_width; i++) {
            const int32_t *w = grouped + i * per_output * VW;
            clip_index vectors = (count[i] + per_vector - 1) / per_vector;
            vi acc[RESAMPLE_ROWS];
            for (int k = 0; k < RESAMPLE_ROWS; k++) acc[k] = (vi){0};
            for (clip_index g = 0; g < vectors; g++) {
                vi wv;
                __builtin_memcpy(&wv, w + g * VW, sizeof wv);
                for (int k = 0; k < RESAMPLE_ROWS; k++)
                    acc[k] += widen_bytes(src + (r + k) * src_stride + (start[i] + g * per_vector) * ch, src_end) * wv;
            }
            for (int k = 0; k < RESAMPLE_ROWS; k++) store_pixel(acc[k], ch, dst + (r + k) * dst_stride + i * ch);
        }
    }
    for (; r < rows; r++) {
        for (clip_index i = 0; i < out_width; i++) {
            const int32_t *w = grouped + i * per_output * VW;
            clip_index vectors = (count[i] + per_vector - 1) / per_vector;
            vi acc = (vi){0};
            for (clip_index g = 0; g < vectors; g++) {
                vi wv;
                __builtin_memcpy(&wv, w + g * VW, sizeof wv);
                acc += widen_bytes(src + r * src_stride + (start[i] + g * per_vector) * ch, src_end) * wv;
            }
            store_pixel(acc, ch, dst + r * dst_stride + i * ch);
        }
    }
}

/// `rows` rows of 3- or 4-byte pixels (src_stride bytes apart; nothing at or past `src_end` is
/// read) resampled to out_width pixels: output i = Σ_x weight · pixel start[i] + x per channel, as
/// Pillow sums them (Int32 from 1 << 21, >> 22, clipped), bit for bit; `grouped` and `per_output`
/// from resample_weights_u8 with the same channels.
static void KFN(resample_rows_u8)(const uint8_t *src, clip_index src_stride, const uint8_t *src_end, clip_index rows,
                                  const clip_index *start, const clip_index *count, const int32_t *grouped,
                                  clip_index per_output, clip_index out_width, int channels, uint8_t *dst,
                                  clip_index dst_stride) {
    if (channels == 4)
        resample_rows(src, src_stride, src_end, rows, start, count, grouped, per_output, out_width, dst, dst_stride, 4);
    else
        resample_rows(src, src_stride, src_end, rows, start, count, grouped, per_output, out_width, dst, dst_stride, 3);
}

#include "ReducedPrecisionBodies.h"

// MARK: The table

/// A level's table; `bf16_dot`/`i8` name its native reduced-precision GEMMs where it has them (the
/// AVX512_BF16 level defines a second table with `vdpbf16ps` / `vpdpbusd`).
#define KERNEL_TABLE(var, name_, level_, bf16_dot, at_bf16_dot, i8)                                               \
    const clip_kernel_table var = {                                                                \
        .name = name_,                                                                             \
        .level = level_,                                                                           \
        .gemm_row_block = GEMM_MR * 16,                                                            \
        .gemm_packed = KFN(gemm_packed),                                                           \
        .gelu = KFN(gelu),                                                                         \
        .quick_gelu = KFN(quick_gelu),                                                             \
        .add = KFN(add),                                                                           \
        .scale = KFN(scale),                                                                       \
        .layer_norm_rows = KFN(layer_norm_rows),                                                   \
        .layer_norm_backward_rows = KFN(layer_norm_backward_rows),                                 \
        .softmax_rows = KFN(softmax_rows),                                                         \
        .l2_normalize_rows = KFN(l2_normalize_rows),                                               \
        .dot_i8_rows = KFN(dot_i8_rows),                                                           \
        .accumulate_rows = KFN(accumulate_rows),                                                   \
        .channel_affine_rows = KFN(channel_affine_rows),                                           \
        .gemm_packed_normalized = KFN(gemm_packed_normalized),                                     \
        .gelu_rows_square_sums = KFN(gelu_rows_square_sums),                                       \
        .accumulate_rows_dot = KFN(accumulate_rows_dot),                                           \
        .grn_backward_rows = KFN(grn_backward_rows),                                               \
        .gelu_affine_rows = KFN(gelu_affine_rows),                                                 \
        .depthwise_conv_rows = KFN(depthwise_conv_rows),                                           \
        .gemm_at = KFN(gemm_at),                                                                   \
        .pack_panels = KFN(pack_panels),                                                           \
        .gelu_backward = KFN(gelu_backward),                                                       \
        .quick_gelu_backward = KFN(quick_gelu_backward),                                           \
        .adamw_update = KFN(adamw_update),                                                         \
        .sum_squares = KFN(sum_squares),                                                           \
        .depthwise_weight_grad_rows = KFN(depthwise_weight_grad_rows),                             \
        .resample_weights_u8 = KFN(resample_weights_u8),                                           \
        .resample_rows_u8 = KFN(resample_rows_u8),                                                 \
        .round_rows_bf16 = KFN(round_rows_bf16),                                                   \
        .normalize_rows_bf16 = KFN(normalize_rows_bf16),                                           \
        .pack_panels_bf16 = KFN(pack_panels_bf16),                                                 \
        .gemm_bf16 = KFN(gemm_bf16),                                                               \
        .gemm_bf16_dot = bf16_dot,                                                                 \
        .gemm_at_bf16 = KFN(gemm_at_bf16),                                                         \
        .gemm_at_bf16_dot = at_bf16_dot,                                                           \
        .quantize_rows_u8 = KFN(quantize_rows_u8),                                                 \
        .pack_panels_i8 = KFN(pack_panels_i8),                                                     \
        .gemm_i8 = i8,                                                                             \
    };

KERNEL_TABLE(KFN(table), ISA_NAME, ISA_LEVEL, 0, 0, KFN(gemm_i8))
