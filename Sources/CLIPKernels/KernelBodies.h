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

/// Exact (erf) GELU x·Φ(x), Φ(x) = ½·erfc(−x/√2) so that the negative tail keeps its relative
/// accuracy. erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2) (Numerical Recipes' Chebyshev fit,
/// fractional error < 1.1e-7); −x²/2 enters exp as an exact hi/lo pair (Dekker split of x into
/// 12-bit halves), since rounding x² alone would cost |x²/2|·6e-8 of accuracy in the tail.
INLINE vf vgelu(vf x) {
    vi bits = (vi)x;
    vf ax = (vf)(bits & 0x7FFFFFFF);
    vf t = 1.0f / (ax * 0.35355339f + 1.0f);
    vf p = t * 0.17087277f - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    vf xh = (vf)(bits & (int)0xFFFFF000);
    vf xl = x - xh;
    vf hi = xh * xh * -0.5f;
    vf lo = -(xh * xl + xl * xl * 0.5f);
    vf tail = 0.5f * t * vexp(hi, lo + p);   // Φ(−|x|)
    vf phi = vselect(x > 0.0f, 1.0f - tail, tail);
    phi = vselect(x < -14.0f, vsplat(0.0f), phi);   // x·Φ(x) < 1e-43 there
    return x * phi;
}

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

/// `rows` (≤ GEMM_MR, a constant after inlining) × GEMM_NR of C over the full K: the accumulators
/// stay in registers; per k, GEMM_NV vectors of B and one broadcast of A per row.
INLINE void micro_tile(const int rows, const float *a, clip_index lda, const float *b, clip_index k,
                       float *c, clip_index ldc, const float *bias, int accumulate) {
    vf acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vsplat(0);
    for (clip_index kk = 0; kk < k; kk++) {
        vf bv[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) bv[v] = vload(b + v * VW);
        b += CLIP_PANEL_WIDTH;
        for (int r = 0; r < rows; r++) {
            vf av = vsplat(a[r * lda + kk]);
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = acc[r][v] + av * bv[v];
        }
    }
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

/// micro_tile with the row count as a compile-time constant for each case.
static void KFN(tile_rows)(int rows, const float *a, clip_index lda, const float *b, clip_index k,
                           float *c, clip_index ldc, const float *bias, int accumulate) {
    switch (rows) {
#define TILE_CASE(R) case R: micro_tile(R, a, lda, b, k, c, ldc, bias, accumulate); break;
        TILE_CASE(1)
#if GEMM_MR >= 2
        TILE_CASE(2)
#endif
#if GEMM_MR >= 3
        TILE_CASE(3)
#endif
#if GEMM_MR >= 4
        TILE_CASE(4)
#endif
#if GEMM_MR >= 5
        TILE_CASE(5)
#endif
#if GEMM_MR >= 6
        TILE_CASE(6)
#endif
#if GEMM_MR >= 7
        TILE_CASE(7)
#endif
#if GEMM_MR >= 8
        TILE_CASE(8)
#endif
#undef TILE_CASE
    default: break;
    }
}

static void KFN(gemm_packed)(const float *a, clip_index lda, const float *packed, clip_index k, clip_index n,
                             float *c, clip_index ldc, const float *bias, int activation, int accumulate,
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
                const float *bp = packed + panel * k * CLIP_PANEL_WIDTH + sub;
                for (clip_index row = block; row < block_end; row += GEMM_MR) {
                    int rows = (int)(block_end - row < GEMM_MR ? block_end - row : GEMM_MR);
                    const float *ap = a + row * lda;
                    float *cp = c + row * ldc + col;
                    if (cols == GEMM_NR) {
                        KFN(tile_rows)(rows, ap, lda, bp, k, cp, ldc, bias ? bias + col : 0, accumulate);
                        if (activation != CLIP_ACTIVATION_NONE)
                            for (int r = 0; r < rows; r++) activate(cp + r * ldc, GEMM_NR, activation);
                    } else {
                        // Past the last whole tile: the padded panel computes into a scratch tile.
                        float tile[GEMM_MR * GEMM_NR];
                        KFN(tile_rows)(rows, ap, lda, bp, k, tile, GEMM_NR, 0, 0);
                        for (int r = 0; r < rows; r++) {
                            float *t = tile + r * GEMM_NR, *dst = cp + r * ldc;
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

// MARK: Row normalisations

INLINE float row_sum(const float *p, clip_index width) {
    vf acc = vsplat(0);
    clip_index i = 0;
    for (; i + VW <= width; i += VW) acc += vload(p + i);
    float s = vsum(acc);
    for (; i < width; i++) s += p[i];
    return s;
}

static void KFN(layer_norm_rows)(const float *src, float *dst, const float *gamma, const float *beta,
                                 clip_index width, clip_index rows, float eps) {
    for (clip_index r = 0; r < rows; r++) {
        const float *x = src + r * width;
        float *y = dst + r * width;
        float mean = row_sum(x, width) / (float)width;
        // Second pass on the centred values (as accurate as PyTorch's Welford; the row is in L1).
        vf acc = vsplat(0);
        clip_index i = 0;
        for (; i + VW <= width; i += VW) { vf d = vload(x + i) - mean; acc = acc + d * d; }
        float variance = vsum(acc);
        for (; i < width; i++) { float d = x[i] - mean; variance += d * d; }
        variance /= (float)width;
        float inv = 1.0f / __builtin_sqrtf(variance + eps);
        i = 0;
        for (; i + VW <= width; i += VW)
            vstore(y + i, (vload(x + i) - mean) * inv * vload(gamma + i) + vload(beta + i));
        for (; i < width; i++) y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
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

static void KFN(channel_affine_rows)(const float *src, float *dst, const float *scale, const float *shift,
                                     clip_index width, clip_index rows_per_image, clip_index row_lo, clip_index row_hi) {
    for (clip_index r = row_lo; r < row_hi; r++) {
        const float *s = scale + (r / rows_per_image) * width, *x = src + r * width;
        float *y = dst + r * width;
        clip_index i = 0;
        for (; i + VW <= width; i += VW) vstore(y + i, vload(x + i) * vload(s + i) + vload(shift + i));
        for (; i < width; i++) y[i] = x[i] * s[i] + shift[i];
    }
}

// MARK: Depthwise convolution
//
// Vectorised over C: for one output row and one block of VW channels, an interior tile of 8
// output columns keeps 8 accumulators in registers (9 loads per 8 FMAs per tap). Kernel rows are
// clamped per output row, so no tap tests bounds; border columns, where the kx range shrinks,
// take a one-column path over 4 channel blocks at once (four independent FMA chains); channels
// past the last whole vector take a scalar path.

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

static void KFN(dw_column)(const dw_geometry *g, clip_index ox, const float *x_row, const float *w_row, clip_index rows,
                           const float *bias, float *out_row) {
    const clip_index c = g->c, stride = g->w * c, blocks = c / VW;
    clip_index kx_lo = g->padding - ox > 0 ? g->padding - ox : 0;
    clip_index kx_hi = g->w + g->padding - ox < g->kw ? g->w + g->padding - ox : g->kw;
    clip_index taps = kx_hi > kx_lo ? kx_hi - kx_lo : 0;
    const float *x_col = x_row + (ox + kx_lo - g->padding) * c, *w_col = w_row + kx_lo * c;
    float *o = out_row + ox * c;
    clip_index cb = 0;
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
        for (clip_index col = 0; col < interior_lo; col++) KFN(dw_column)(&g, col, x_row, w_row, rows, bias, out_row);
        for (clip_index col = ox; col < ow; col++) KFN(dw_column)(&g, col, x_row, w_row, rows, bias, out_row);
    }
}

// MARK: The table

const clip_kernel_table KFN(table) = {
    .name = ISA_NAME,
    .level = ISA_LEVEL,
    .gemm_row_block = GEMM_MR * 16,
    .gemm_packed = KFN(gemm_packed),
    .gelu = KFN(gelu),
    .quick_gelu = KFN(quick_gelu),
    .add = KFN(add),
    .scale = KFN(scale),
    .layer_norm_rows = KFN(layer_norm_rows),
    .softmax_rows = KFN(softmax_rows),
    .l2_normalize_rows = KFN(l2_normalize_rows),
    .accumulate_rows = KFN(accumulate_rows),
    .channel_affine_rows = KFN(channel_affine_rows),
    .depthwise_conv_rows = KFN(depthwise_conv_rows),
};
