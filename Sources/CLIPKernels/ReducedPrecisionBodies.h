// Reduced-precision inference GEMMs (bf16 with fp32 sums, int8 with int32 sums), written once over
// clang's generic vectors as KernelBodies.h is, and included by it (so compiled once per level).
// These are the portable forms: bf16 values are widened to fp32 (a shift: bf16 is the top half of
// a float) and multiplied with the level's FMA; int8 values are widened to int32. The AVX512_BF16
// level replaces only the micro-tiles, with `vdpbf16ps` / `vpdpbusd` (KernelsAVX512.c); the packing, the activation conversions and the epilogues are these. The loop
// over blocks and panels (gemm_blocks) and the fp32 epilogue (store_tile) are the fp32 GEMM's.

typedef unsigned int vu __attribute__((vector_size(VW * 4)));
typedef unsigned short vu16 __attribute__((vector_size(VW * 2)));
typedef unsigned char vu8 __attribute__((vector_size(VW)));

INLINE vi vloadi(const void *p) { vi v; __builtin_memcpy(&v, p, sizeof v); return v; }
INLINE vi vsplati(int x) {
    vi v;
    for (int i = 0; i < VW; i++) v[i] = x;
    return v;
}
INLINE unsigned load_u32(const void *p) { unsigned x; __builtin_memcpy(&x, p, 4); return x; }
INLINE float float_bits(unsigned x) { float f; __builtin_memcpy(&f, &x, 4); return f; }

/// Round to nearest even, keeping NaN a (quiet) NaN.
INLINE uint16_t bf16_round(float x) {
    unsigned bits;
    __builtin_memcpy(&bits, &x, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x40);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
}
INLINE vu16 vbf16_round(vf x) {
    vu bits = (vu)x;
    vu rounded = (bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16;
    vu nan = (bits >> 16) | 0x40;
    vu is_nan = (vu)((bits & 0x7FFFFFFFu) > 0x7F800000u);
    return __builtin_convertvector((rounded & ~is_nan) | (nan & is_nan), vu16);
}

/// Round half to even for |x| < 2^22 (the 1.5·2^23 trick), as ONNX's quantisers round.
INLINE float round_even(float x) { return (x + 12582912.0f) - 12582912.0f; }
INLINE vf vround_even(vf x) { return (x + 12582912.0f) - 12582912.0f; }

static void KFN(round_rows_bf16)(const float *src, clip_index lds, clip_index k, uint16_t *dst, clip_index ldd,
                                 clip_index rows) {
    for (clip_index r = 0; r < rows; r++) {
        const float *s = src + r * lds;
        uint16_t *d = dst + r * ldd;
        clip_index i = 0;
        for (; i + VW <= k; i += VW) {
            vu16 h = vbf16_round(vload(s + i));
            __builtin_memcpy(d + i, &h, sizeof h);
        }
        for (; i < k; i++) d[i] = bf16_round(s[i]);
        for (; i < ldd; i++) d[i] = 0;
    }
}

/// round_rows_bf16 of a normalisation's output, computed in the same pass (no fp32 copy written):
/// with `layer_norm`, LayerNorm's (x − mean)·rstd·scale[c] + shift[c], the statistics as
/// layer_norm_rows computes them; else the channel affine x·scale[(r / rows_per_scale)·k + c] +
/// shift[c] of channel_affine_rows (GRN's output). Each value is computed as those kernels compute
/// it, so the result is round_rows_bf16 of their output, bit for bit. Rows row_lo..<row_hi of src
/// (k floats each, contiguous) into dst (leading dimension ldd, zero past k).
static void KFN(normalize_rows_bf16)(const float *src, clip_index k, uint16_t *dst, clip_index ldd, const float *scale,
                                     const float *shift, clip_index rows_per_scale, float eps, int layer_norm,
                                     clip_index row_lo, clip_index row_hi) {
    for (clip_index r = row_lo; r < row_hi; r++) {
        const float *x = src + r * k;
        uint16_t *d = dst + r * ldd;
        float mean = 0, inv = 1;
        const float *s = scale;
        if (layer_norm) row_mean_rstd(x, k, eps, &mean, &inv);
        else s = scale + (r / rows_per_scale) * k;
        clip_index i = 0;
        for (; i + VW <= k; i += VW) {
            vf y = layer_norm ? (vload(x + i) - mean) * inv * vload(s + i) + vload(shift + i)
                              : vload(x + i) * vload(s + i) + vload(shift + i);
            vu16 h = vbf16_round(y);
            __builtin_memcpy(d + i, &h, sizeof h);
        }
        for (; i < k; i++) d[i] = bf16_round(layer_norm ? (x[i] - mean) * inv * s[i] + shift[i] : x[i] * s[i] + shift[i]);
        for (; i < ldd; i++) d[i] = 0;
    }
}

static void KFN(quantize_rows_u8)(const float *src, clip_index lds, clip_index k, uint8_t *dst, clip_index ldd,
                                  float *scale, int32_t *zero_point, clip_index rows) {
    for (clip_index r = 0; r < rows; r++) {
        const float *s = src + r * lds;
        uint8_t *d = dst + r * ldd;
        // The range always holds 0, so that zero (padding, ReLU-like outputs) is exact.
        // x·0 is NaN exactly when x is not finite (min/max would skip a NaN).
        vf lo = vsplat(0), hi = vsplat(0), probe = vsplat(0);
        clip_index i = 0;
        for (; i + VW <= k; i += VW) {
            vf x = vload(s + i);
            lo = vmin(lo, x);
            hi = vmax(hi, x);
            probe += x * 0.0f;
        }
        float mn = -vmax_lane(-lo), mx = vmax_lane(hi), nonfinite = vsum(probe);
        for (; i < k; i++) { mn = s[i] < mn ? s[i] : mn; mx = s[i] > mx ? s[i] : mx; nonfinite += s[i] * 0.0f; }
        float sc = (mx - mn) / 255.0f, inv;
        int zp;
        if (nonfinite != 0 || !__builtin_isfinite(sc)) { sc = __builtin_nanf(""); inv = 0; zp = 0; }
        else if (sc == 0) { sc = 1; inv = 1; zp = 0; }
        else {
            inv = 1.0f / sc;
            float z = round_even(-mn / sc);
            zp = z < 0 ? 0 : z > 255 ? 255 : (int)z;
        }
        scale[r] = sc;
        zero_point[r] = zp;
        const vf zpv = vsplat((float)zp), top = vsplat(255), bottom = vsplat(0);
        for (i = 0; i + VW <= k; i += VW) {
            vf q = vmin(vmax(vround_even(vload(s + i) * inv) + zpv, bottom), top);
            vu8 b = __builtin_convertvector(__builtin_convertvector(q, vi), vu8);
            __builtin_memcpy(d + i, &b, sizeof b);
        }
        for (; i < k; i++) {
            float q = round_even(s[i] * inv) + (float)zp;
            d[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
        }
        for (; i < ldd; i++) d[i] = 0;
    }
}

/// B[kk][j] of a pack_panels source.
INLINE float source_at(const float *src, clip_index ld, int transposed, clip_index kk, clip_index j) {
    return transposed ? src[j * ld + kk] : src[kk * ld + j];
}

/// Pairs of k as `vdpbf16ps` reads them: dst[q·ldd + j] = bf16(src[2q·ld + j]) | bf16(src[(2q+1)·ld + j]) << 16
/// for q < ⌈k/2⌉ and j < width (a missing last odd row reads as 0); zero for width ≤ j < ldd.
INLINE void pack_bf16_pairs(const float *src, clip_index ld, clip_index k, clip_index width, void *dst,
                            clip_index ldd) {
    for (clip_index q = 0; q < (k + 1) / 2; q++) {
        const float *even = src + 2 * q * ld, *odd = even + ld;
        const int has_odd = 2 * q + 1 < k;
        unsigned char *d = (unsigned char *)dst + q * ldd * 4;   // bytes: the words are stored with memcpy
        clip_index j = 0;
        for (; j + VW <= width; j += VW) {
            vu words = __builtin_convertvector(vbf16_round(vload(even + j)), vu);
            if (has_odd) words |= __builtin_convertvector(vbf16_round(vload(odd + j)), vu) << 16;
            __builtin_memcpy(d + 4 * j, &words, sizeof words);
        }
        for (; j < width; j++) {
            unsigned word = bf16_round(even[j]) | (has_odd ? (unsigned)bf16_round(odd[j]) << 16 : 0u);
            __builtin_memcpy(d + 4 * j, &word, 4);
        }
        if (j < ldd) __builtin_memset(d + 4 * j, 0, (size_t)(ldd - j) * 4);
    }
}

static void KFN(pack_panels_bf16)(const float *src, clip_index ld, int transposed, clip_index k, clip_index n,
                                  uint16_t *dst, clip_index panel_lo, clip_index panel_hi) {
    const clip_index groups = (k + CLIP_BF16_GROUP - 1) / CLIP_BF16_GROUP;
    for (clip_index panel = panel_lo; panel < panel_hi; panel++) {
        uint16_t *out = dst + panel * groups * CLIP_PANEL_WIDTH * CLIP_BF16_GROUP;
        const clip_index col0 = panel * CLIP_PANEL_WIDTH;
        const clip_index width = n - col0 < CLIP_PANEL_WIDTH ? n - col0 : CLIP_PANEL_WIDTH;
        if (!transposed) {
            pack_bf16_pairs(src + col0, ld, k, width, out, CLIP_PANEL_WIDTH);
            continue;
        }
        // Column j of B is row j of src, so its pairs of k are adjacent: rounded a vector at a time,
        // each pair is one word of the panel.
        for (clip_index j = 0; j < CLIP_PANEL_WIDTH; j++) {
            const float *row = src + (col0 + j) * ld;
            clip_index kk = 0;
            if (j < width) {
                for (; kk + VW <= k; kk += VW) {
                    vu16 h = vbf16_round(vload(row + kk));
                    for (int t = 0; t < VW / 2; t++)
                        __builtin_memcpy(out + ((kk / 2 + t) * CLIP_PANEL_WIDTH + j) * 2, (const uint16_t *)&h + 2 * t, 4);
                }
                for (; kk < k; kk++) out[((kk / 2) * CLIP_PANEL_WIDTH + j) * 2 + kk % 2] = bf16_round(row[kk]);
            }
            for (; kk < groups * CLIP_BF16_GROUP; kk++) out[((kk / 2) * CLIP_PANEL_WIDTH + j) * 2 + kk % 2] = 0;
        }
    }
}

static void KFN(pack_panels_i8)(const float *src, clip_index ld, int transposed, clip_index k, clip_index n,
                                int8_t *dst, float *col_scale, int32_t *col_sum, clip_index panel_lo, clip_index panel_hi) {
    const clip_index groups = (k + CLIP_I8_GROUP - 1) / CLIP_I8_GROUP;
    for (clip_index panel = panel_lo; panel < panel_hi; panel++) {
        float inv[CLIP_PANEL_WIDTH];
        for (clip_index j = 0; j < CLIP_PANEL_WIDTH; j++) {
            clip_index col = panel * CLIP_PANEL_WIDTH + j;
            float peak = 0;
            if (col < n)
                for (clip_index kk = 0; kk < k; kk++) {
                    float a = __builtin_fabsf(source_at(src, ld, transposed, kk, col));
                    peak = a > peak ? a : peak;
                }
            float s = peak > 0 ? peak / 127.0f : 1.0f;
            col_scale[col] = col < n ? s : 0;
            col_sum[col] = 0;
            inv[j] = 1.0f / s;
        }
        int8_t *out = dst + panel * groups * CLIP_PANEL_WIDTH * CLIP_I8_GROUP;
        for (clip_index g = 0; g < groups; g++)
            for (clip_index j = 0; j < CLIP_PANEL_WIDTH; j++)
                for (clip_index t = 0; t < CLIP_I8_GROUP; t++) {
                    clip_index kk = g * CLIP_I8_GROUP + t, col = panel * CLIP_PANEL_WIDTH + j;
                    int q = 0;
                    if (kk < k && col < n) {
                        float v = round_even(source_at(src, ld, transposed, kk, col) * inv[j]);
                        q = v > 127 ? 127 : v < -127 ? -127 : (int)v;
                    }
                    col_sum[panel * CLIP_PANEL_WIDTH + j] += q;
                    *out++ = (int8_t)q;
                }
    }
}

/// int32 sums to fp32: a_scale[r] · col_scale[j] · (sum − a_zero[r] · col_sum[j]), then store_tile.
INLINE void store_tile_i8(const int rows, vi sums[GEMM_MR][GEMM_NV], const gemm_operands *g, clip_index row,
                          clip_index col, float *c, clip_index ldc, const float *bias, int accumulate) {
    vf acc[GEMM_MR][GEMM_NV];
    vi colsum[GEMM_NV];
    vf colscale[GEMM_NV];
    for (int v = 0; v < GEMM_NV; v++) {
        colsum[v] = vloadi(g->col_sum + col + v * VW);
        colscale[v] = vload(g->col_scale + col + v * VW);
    }
    for (int r = 0; r < rows; r++) {
        vi zero = vsplati(g->a_zero[row + r]);
        float s = g->a_scale[row + r];
        for (int v = 0; v < GEMM_NV; v++)
            acc[r][v] = __builtin_convertvector(sums[r][v] - zero * colsum[v], vf) * (colscale[v] * s);
    }
    store_tile(rows, acc, c, ldc, bias, accumulate);
}

/// Where a tile's A rows and B groups start (the native tiles use the same).
INLINE const uint16_t *bf16_rows(const gemm_operands *g, clip_index row) { return (const uint16_t *)g->a + row * g->lda; }
INLINE const uint16_t *bf16_groups(const gemm_operands *g, clip_index panel, clip_index sub) {
    return (const uint16_t *)g->packed + (panel * g->groups * CLIP_PANEL_WIDTH + sub) * CLIP_BF16_GROUP;
}
INLINE const uint8_t *u8_rows(const gemm_operands *g, clip_index row) { return (const uint8_t *)g->a + row * g->lda; }
INLINE const int8_t *i8_groups(const gemm_operands *g, clip_index panel, clip_index sub) {
    return (const int8_t *)g->packed + (panel * g->groups * CLIP_PANEL_WIDTH + sub) * CLIP_I8_GROUP;
}

/// The widening levels' bf16 operands in fp32, each converted once and reused: B's current panel
/// in the fp32 layout ([2·groups][32]) for every tile of a row block, and the row block of A for
/// every panel. The tile is then the fp32 micro-tile (exact: a bf16 value is a float).
typedef struct widened_panel {
    float *panel_data;
    clip_index panel;
    float *rows_data;
    clip_index rows_lo, rows_hi, row_limit;
} widened_panel;

INLINE const float *widen_panel(const gemm_operands *g, clip_index panel) {
    widened_panel *w = g->widened;
    if (w->panel != panel) {
        const uint16_t *src = bf16_groups(g, panel, 0);
        for (clip_index q = 0; q < g->groups; q++)
            for (int v = 0; v < CLIP_PANEL_WIDTH / VW; v++) {
                // Word j of a group holds column j's k (low half) and k + 1 (high half).
                vi words = vloadi(src + (q * CLIP_PANEL_WIDTH + v * VW) * CLIP_BF16_GROUP);
                vstore(w->panel_data + (2 * q) * CLIP_PANEL_WIDTH + v * VW, (vf)(words << 16));
                vstore(w->panel_data + (2 * q + 1) * CLIP_PANEL_WIDTH + v * VW, (vf)(words & (int)0xFFFF0000));
            }
        w->panel = panel;
    }
    return w->panel_data;
}

/// Row `row` of A in fp32; a miss converts the row block that starts there (gemm_blocks visits a
/// block's first row first).
INLINE const float *widen_rows(const gemm_operands *g, clip_index row) {
    widened_panel *w = g->widened;
    const clip_index ld = g->groups * CLIP_BF16_GROUP;
    if (row < w->rows_lo || row >= w->rows_hi) {
        clip_index hi = row + GEMM_MR * 16 < w->row_limit ? row + GEMM_MR * 16 : w->row_limit;
        for (clip_index r = row; r < hi; r++) {
            const uint16_t *src = bf16_rows(g, r);
            float *dst = w->rows_data + (r - row) * ld;
            clip_index i = 0;
            for (; i + VW <= ld; i += VW) {
                vu16 h;
                __builtin_memcpy(&h, src + i, sizeof h);
                vstore(dst + i, (vf)(__builtin_convertvector(h, vu) << 16));
            }
            for (; i < ld; i++) dst[i] = float_bits((unsigned)src[i] << 16);
        }
        w->rows_lo = row;
        w->rows_hi = hi;
    }
    return w->rows_data + (row - w->rows_lo) * ld;
}

static void KFN(tile_bf16)(int rows, const gemm_operands *g, clip_index row, clip_index panel, clip_index sub,
                           float *c, clip_index ldc, const float *bias, int accumulate) {
    const float *a = widen_rows(g, row), *b = widen_panel(g, panel) + sub;
    const clip_index k = g->groups * CLIP_BF16_GROUP;
#define CALL(R) micro_tile(R, 0, a, k, b, CLIP_PANEL_WIDTH, k, c, ldc, bias, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

/// uint8 × int8 widened to int32: a group's word holds four consecutive k.
INLINE void micro_tile_i8(const int rows, const gemm_operands *g, clip_index row, clip_index panel, clip_index sub,
                          float *c, clip_index ldc, const float *bias, int accumulate) {
    const uint8_t *a = u8_rows(g, row);
    const int8_t *b = i8_groups(g, panel, sub);
    vi acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vsplati(0);
    for (clip_index q = 0; q < g->groups; q++) {
        vi b0[GEMM_NV], b1[GEMM_NV], b2[GEMM_NV], b3[GEMM_NV];
        for (int v = 0; v < GEMM_NV; v++) {
            vi w = vloadi(b + v * VW * CLIP_I8_GROUP);   // arithmetic shifts sign-extend each byte
            b0[v] = (w << 24) >> 24;
            b1[v] = (w << 16) >> 24;
            b2[v] = (w << 8) >> 24;
            b3[v] = w >> 24;
        }
        b += CLIP_PANEL_WIDTH * CLIP_I8_GROUP;
        for (int r = 0; r < rows; r++) {
            unsigned w = load_u32(a + r * g->lda + q * CLIP_I8_GROUP);
            vi a0 = vsplati((int)(w & 0xFF)), a1 = vsplati((int)((w >> 8) & 0xFF));
            vi a2 = vsplati((int)((w >> 16) & 0xFF)), a3 = vsplati((int)(w >> 24));
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] += a0 * b0[v] + a1 * b1[v] + a2 * b2[v] + a3 * b3[v];
        }
    }
    store_tile_i8(rows, acc, g, row, panel * CLIP_PANEL_WIDTH + sub, c, ldc, bias, accumulate);
}

static void KFN(tile_i8)(int rows, const gemm_operands *g, clip_index row, clip_index panel, clip_index sub,
                         float *c, clip_index ldc, const float *bias, int accumulate) {
#define CALL(R) micro_tile_i8(R, g, row, panel, sub, c, ldc, bias, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

/// The table entries, over a level's tiles (the AVX512_BF16 level passes its native ones, which read
/// the bf16 panel directly: `bf16_widens` 0).
#define REDUCED_GEMM_ENTRIES(bf16_name, i8_name, bf16_tile, i8_tile, bf16_widens)                 \
    static void bf16_name(const uint16_t *a, clip_index lda, const uint16_t *packed, clip_index k, clip_index n, \
                          float *c, clip_index ldc, const float *bias, int activation, int accumulate,     \
                          clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi,   \
                          float *scratch) {                                                                \
        const clip_index groups = (k + CLIP_BF16_GROUP - 1) / CLIP_BF16_GROUP;                      \
        /* The widening tiles' fp32 copies: a panel, then a block of rows (CLIP_BF16_SCRATCH). */  \
        widened_panel widened = {scratch, -1, scratch + groups * CLIP_BF16_GROUP * CLIP_PANEL_WIDTH, 0, 0, row_hi}; \
        gemm_operands g = {a, lda, packed, groups, 0, 0, 0, 0, bf16_widens ? &widened : 0};       \
        gemm_blocks(bf16_tile, &g, n, c, ldc, bias, activation, accumulate, row_lo, row_hi, panel_lo, panel_hi); \
    }                                                                                              \
    static void i8_name(const uint8_t *a, clip_index lda, const float *a_scale, const int32_t *a_zero, \
                               const int8_t *packed, const float *col_scale, const int32_t *col_sum, clip_index k, \
                               clip_index n, float *c, clip_index ldc, const float *bias, int activation, int accumulate, \
                               clip_index row_lo, clip_index row_hi, clip_index panel_lo, clip_index panel_hi) { \
        gemm_operands g = {a, lda, packed, (k + CLIP_I8_GROUP - 1) / CLIP_I8_GROUP, a_scale, a_zero, col_scale, col_sum, 0}; \
        gemm_blocks(i8_tile, &g, n, c, ldc, bias, activation, accumulate, row_lo, row_hi, panel_lo, panel_hi); \
    }
REDUCED_GEMM_ENTRIES(KFN(gemm_bf16), KFN(gemm_i8), KFN(tile_bf16), KFN(tile_i8), 1)

// MARK: bf16 weight gradients (training in amp_bf16)

/// The widening levels' form: dst[kk·ldd + j] = src[kk·ld + j] rounded to bf16 and kept as a float,
/// for kk < k (rows k..<k_padded zero) and j < width (zero up to ldd).
INLINE void pack_bf16_rounded(const float *src, clip_index ld, clip_index k, clip_index k_padded, clip_index width,
                              float *dst, clip_index ldd) {
    for (clip_index kk = 0; kk < k_padded; kk++) {
        float *d = dst + kk * ldd;
        clip_index j = 0;
        if (kk < k) {
            const float *s = src + kk * ld;
            for (; j + VW <= width; j += VW)
                vstore(d + j, (vf)(__builtin_convertvector(vbf16_round(vload(s + j)), vu) << 16));
            for (; j < width; j++) d[j] = float_bits((unsigned)bf16_round(s[j]) << 16);
        }
        for (; j < ldd; j++) d[j] = 0;
    }
}

/// A tile of gemm_at_bf16 over one packed K block: `rows` of C from the packed A block (its rows
/// lda apart in the transposed layout), GEMM_NR columns of a packed B panel, k_padded values of k.
typedef void (*at_bf16_tile_fn)(int rows, const void *a, clip_index lda, const void *b, clip_index k_padded,
                                float *c, clip_index ldc, int accumulate);

static void KFN(tile_at_bf16_widened)(int rows, const void *a, clip_index lda, const void *b, clip_index k_padded,
                                      float *c, clip_index ldc, int accumulate) {
#define CALL(R) micro_tile(R, 1, (const float *)a, lda, (const float *)b, CLIP_PANEL_WIDTH, k_padded, c, ldc, 0, accumulate)
    TILE_SWITCH(rows, CALL)
#undef CALL
}

/// C[r, j] (+)= Σ_kk bf16(a[kk·lda + r]) · bf16(b[kk·ldb + j]) for rows row_lo..<row_hi and columns
/// col_lo..<col_hi. Per block of CLIP_AT_BF16_KC k: B's columns are packed into panels once, then
/// each block of CLIP_AT_BF16_MC rows of C packs its slice of A and runs over every panel.
/// `paired` packs pairs of k (the `vdpbf16ps` tiles, unsigned words), else rounded floats.
INLINE void gemm_at_bf16_blocks(int paired, at_bf16_tile_fn tile, const float *a, clip_index lda, const float *b,
                                clip_index ldb, clip_index k, float *c, clip_index ldc, int accumulate,
                                clip_index row_lo, clip_index row_hi, clip_index col_lo, clip_index col_hi,
                                float *scratch) {
    const clip_index cols = col_hi - col_lo, panels = (cols + CLIP_PANEL_WIDTH - 1) / CLIP_PANEL_WIDTH;
    for (clip_index kb = 0; kb < k; kb += CLIP_AT_BF16_KC) {
        const clip_index kc = k - kb < CLIP_AT_BF16_KC ? k - kb : CLIP_AT_BF16_KC, k_padded = (kc + 1) & ~(clip_index)1;
        const int add = accumulate || kb > 0;
        // 4-byte elements per packed panel / A block (a word holds two k when paired).
        const clip_index panel_size = (paired ? k_padded / 2 : k_padded) * CLIP_PANEL_WIDTH;
        float *a_block = scratch + panels * panel_size;
        for (clip_index p = 0; p < panels; p++) {
            const clip_index width = cols - p * CLIP_PANEL_WIDTH < CLIP_PANEL_WIDTH ? cols - p * CLIP_PANEL_WIDTH : CLIP_PANEL_WIDTH;
            const float *src = b + kb * ldb + col_lo + p * CLIP_PANEL_WIDTH;
            if (paired) pack_bf16_pairs(src, ldb, kc, width, scratch + p * panel_size, CLIP_PANEL_WIDTH);
            else pack_bf16_rounded(src, ldb, kc, k_padded, width, scratch + p * panel_size, CLIP_PANEL_WIDTH);
        }
        for (clip_index block = row_lo; block < row_hi; block += CLIP_AT_BF16_MC) {
            const clip_index block_rows = row_hi - block < CLIP_AT_BF16_MC ? row_hi - block : CLIP_AT_BF16_MC;
            const float *src = a + kb * lda + block;
            if (paired) pack_bf16_pairs(src, lda, kc, block_rows, a_block, CLIP_AT_BF16_MC);
            else pack_bf16_rounded(src, lda, kc, k_padded, block_rows, a_block, CLIP_AT_BF16_MC);
            for (clip_index p = 0; p < panels; p++) {
                for (clip_index sub = 0; sub < CLIP_PANEL_WIDTH; sub += GEMM_NR) {
                    const clip_index col = p * CLIP_PANEL_WIDTH + sub;
                    if (col >= cols) break;
                    const clip_index width = cols - col < GEMM_NR ? cols - col : GEMM_NR;
                    // Word or float offsets of the tile's first column in the panel.
                    const float *panel = scratch + p * panel_size + sub;
                    for (clip_index row = 0; row < block_rows; row += GEMM_MR) {
                        const int rows = (int)(block_rows - row < GEMM_MR ? block_rows - row : GEMM_MR);
                        float *cp = c + (block + row) * ldc + col_lo + col;
                        if (width == GEMM_NR) {
                            tile(rows, a_block + row, CLIP_AT_BF16_MC, panel, k_padded, cp, ldc, add);
                        } else {
                            // The last, partial column group: the zero-padded panel computes into a scratch tile.
                            float part[GEMM_MR * GEMM_NR];
                            tile(rows, a_block + row, CLIP_AT_BF16_MC, panel, k_padded, part, GEMM_NR, 0);
                            for (int r = 0; r < rows; r++)
                                for (clip_index j = 0; j < width; j++)
                                    cp[r * ldc + j] = add ? cp[r * ldc + j] + part[r * GEMM_NR + j] : part[r * GEMM_NR + j];
                        }
                    }
                }
            }
        }
    }
}

static void KFN(gemm_at_bf16)(const float *a, clip_index lda, const float *b, clip_index ldb, clip_index k, float *c,
                              clip_index ldc, int accumulate, clip_index row_lo, clip_index row_hi, clip_index col_lo,
                              clip_index col_hi, float *scratch) {
    gemm_at_bf16_blocks(0, KFN(tile_at_bf16_widened), a, lda, b, ldb, k, c, ldc, accumulate, row_lo, row_hi, col_lo,
                        col_hi, scratch);
}
