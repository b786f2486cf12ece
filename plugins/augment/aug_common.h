/* plugins/augment/aug_common.h: helpers shared by the augmentation plugins, compiled into
 * each plugin file (static functions; plugins link nothing of each other).
 *
 * Pillow 9.4 semantics reproduced bit for bit where Pillow is integer/float-deterministic:
 *   - resampling (Resample.c): separable two-pass filter, horizontal pass first into an
 *     8-bit temporary, 22-bit fixed-point coefficients, antialiasing support scaled by the
 *     downscale factor (filters: bilinear support 1, bicubic a = -0.5 support 2);
 *   - RGB -> L (Convert.c): (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (ITU-R 601 luma);
 *   - Image.blend (Blend.c): out = (UINT8)(in1 + alpha * (in2 - in1)) in float, clipped to
 *     [0, 255] when alpha is outside [0, 1].
 * Images are U8 HWC with 1 or 3 channels, rows `stride` elements apart.
 *
 * Dimension legend: W, H = width, height; C = channels; K = taps per output pixel.
 */
#ifndef EQM_AUG_COMMON_H
#define EQM_AUG_COMMON_H

#include <equimod/equimod.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define AUG_PRECISION_BITS (32 - 8 - 2)

/* Hot helpers are forced inline so that a caller compiled for AVX2 (AUG_TARGET_V3) gets
 * them compiled for AVX2 too. */
#define AUG_INLINE static inline __attribute__((always_inline))

/* CPU dispatch without ifuncs: the hot loops of a plugin are compiled twice (generic
 * x86-64 / other CPUs, and AVX2 with BMI2: x86-64-v3 without FMA, so no floating-point
 * contraction changes a result), and create() picks one with aug_use_v3(). Both give the
 * same bits (integer and float arithmetic in the same order; the fixture tests run the
 * chosen path, EQM_AUG_GENERIC=1 forces the generic one). */
#if defined(__x86_64__) && defined(__GNUC__)
#define AUG_HAVE_V3 1
#define AUG_TARGET_V3 __attribute__((target("avx2,bmi,bmi2,popcnt,sse4.2")))
#include <stdlib.h>
static inline int aug_use_v3(void)
{
    const char *e = getenv("EQM_AUG_GENERIC");
    if (e && *e && *e != '0')
        return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
}
#else
#define AUG_HAVE_V3 0
static inline int aug_use_v3(void) { return 0; }
#endif

enum { AUG_NEAREST = 0, AUG_BILINEAR = 1, AUG_BICUBIC = 2 };

static inline double aug_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static inline double aug_bilinear(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return 1.0 - x;
    return 0.0;
}

/* Pillow's clip8 (>= 255 << 22 gives 255, <= 0 gives 0, else in >> 22), written without
 * branches so that loops using it vectorise (same results: the arithmetic shift of a
 * non-positive value is <= 0, of a value >= 2^30 is >= 256). */
AUG_INLINE uint8_t aug_clip8(int in)
{
    int v = in >> AUG_PRECISION_BITS;
    v = v < 0 ? 0 : v;
    v = v > 255 ? 255 : v;
    return (uint8_t)v;
}

/* Taps per output pixel for resizing in -> out (Pillow's ksize). */
static inline int aug_ksize(int in, int out, int filter)
{
    double support = filter == AUG_BICUBIC ? 2.0 : 1.0;
    double scale = (double)in / out;
    if (scale < 1.0)
        scale = 1.0;
    return (int)ceil(support * scale) * 2 + 1;
}

/* Taps per output pixel for resampling a box `span` input pixels wide to `out`. */
static inline int aug_ksize_box(double span, int out, int filter)
{
    double support = filter == AUG_BICUBIC ? 2.0 : 1.0;
    double scale = span / out;
    if (scale < 1.0)
        scale = 1.0;
    return (int)ceil(support * scale) * 2 + 1;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc, for the box [in0, in1) of an input
 * `in` pixels long (support clipped to [0, in)). kk: out*ksize ints, bounds: 2*out ints. */
static inline void aug_coeffs_box(int in, double in0, double in1, int out, int filter,
                                  int ksize, int32_t *kk, int32_t *bounds)
{
    double support = filter == AUG_BICUBIC ? 2.0 : 1.0;
    double scale = (in1 - in0) / out, filterscale = scale;
    if (filterscale < 1.0)
        filterscale = 1.0;
    support *= filterscale;
    double pre[64];
    for (int xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        int32_t *k = kk + (size_t)xx * ksize;
        /* ksize can exceed 64 only for a > 15x downscale; fall back to a second pass */
        for (int x = 0; x < xmax; x++) {
            double w = filter == AUG_BICUBIC ? aug_bicubic((x + xmin - center + 0.5) * ss)
                                             : aug_bilinear((x + xmin - center + 0.5) * ss);
            if (x < 64)
                pre[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++) {
            double w = x < 64 ? pre[x]
                              : (filter == AUG_BICUBIC ? aug_bicubic((x + xmin - center + 0.5) * ss)
                                                        : aug_bilinear((x + xmin - center + 0.5) * ss));
            if (ww != 0.0)
                w /= ww;
            k[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << AUG_PRECISION_BITS))
                         : (int32_t)(0.5 + w * (1 << AUG_PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++)
            k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

/* The box [0, in). */
static inline void aug_coeffs(int in, int out, int filter, int ksize, int32_t *kk, int32_t *bounds)
{
    aug_coeffs_box(in, 0.0, (double)in, out, filter, ksize, kk, bounds);
}

/* Scratch bytes aug_resize needs. */
static inline size_t aug_resize_scratch(int in_w, int in_h, int c, int out_w, int out_h, int filter)
{
    size_t kh = (size_t)aug_ksize(in_w, out_w, filter), kv = (size_t)aug_ksize(in_h, out_h, filter);
    return (kh * out_w + kv * out_h + 2 * (size_t)out_w + 2 * (size_t)out_h) * sizeof(int32_t) +
           (size_t)out_w * in_h * c + (size_t)in_w * c * 8 + 128;
}

/* Precomputed coefficients of one axis (in -> out). */
typedef struct aug_coef {
    int ksize;
    const int32_t *kk;     /* out * ksize */
    const int32_t *bounds; /* 2 * out */
} aug_coef;

/* Horizontal pass of 3-channel rows, ksize known at compile time (K), for outputs whose
 * taps stay inside the row (xmin + K <= w: the zero-padded taps then read valid memory). */
#define AUG_HPASS3(K)                                                                          \
    AUG_INLINE void aug_hpass3_##K(const uint8_t *row, int w, uint8_t *o, int ow,         \
                                      const int32_t *kkh, const int32_t *bh)                  \
    {                                                                                          \
        for (int xx = 0; xx < ow; xx++) {                                                      \
            const int32_t *k = kkh + (size_t)xx * K;                                           \
            int xmin = bh[2 * xx], xmax = bh[2 * xx + 1];                                      \
            const uint8_t *p = row + (size_t)xmin * 3;                                         \
            int s0 = 1 << (AUG_PRECISION_BITS - 1), s1 = s0, s2 = s0;                          \
            if (xmin + K <= w) {                                                               \
                for (int x = 0; x < K; x++) {                                                  \
                    s0 += p[3 * x] * k[x];                                                     \
                    s1 += p[3 * x + 1] * k[x];                                                 \
                    s2 += p[3 * x + 2] * k[x];                                                 \
                }                                                                              \
            } else {                                                                           \
                for (int x = 0; x < xmax; x++) {                                               \
                    s0 += p[3 * x] * k[x];                                                     \
                    s1 += p[3 * x + 1] * k[x];                                                 \
                    s2 += p[3 * x + 2] * k[x];                                                 \
                }                                                                              \
            }                                                                                  \
            o[3 * xx] = aug_clip8(s0);                                                         \
            o[3 * xx + 1] = aug_clip8(s1);                                                     \
            o[3 * xx + 2] = aug_clip8(s2);                                                     \
        }                                                                                      \
    }
AUG_HPASS3(5)
AUG_HPASS3(7)


#if AUG_HAVE_V3
#include <immintrin.h>
/* AVX2 resampling passes (same integer arithmetic as the scalar loops, so the same bits).
 * Horizontal: 8 rows at a time. The 8 rows' bytes are transposed into q (byte j of row r at
 * q[8j + r]), so that one tap of one channel is 8 contiguous bytes (one per row) and the 8
 * rows' sums for an output pixel run in one register per channel. */
AUG_TARGET_V3 __attribute__((unused)) static void aug_t8(const uint8_t *const r[8], int n, uint8_t *q)
{
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m128i a[8], b[8], c[8];
        for (int i = 0; i < 8; i++)
            a[i] = _mm_loadu_si128((const __m128i *)(r[i] + j));
        for (int i = 0; i < 4; i++) {
            b[2 * i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
            b[2 * i + 1] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
        }
        /* b[0]: rows 0,1 bytes 0..7; b[1]: rows 0,1 bytes 8..15; b[2], b[3]: rows 2,3 ... */
        c[0] = _mm_unpacklo_epi16(b[0], b[2]); /* rows 0..3, bytes 0..3 */
        c[1] = _mm_unpackhi_epi16(b[0], b[2]); /* bytes 4..7 */
        c[2] = _mm_unpacklo_epi16(b[1], b[3]); /* bytes 8..11 */
        c[3] = _mm_unpackhi_epi16(b[1], b[3]); /* bytes 12..15 */
        c[4] = _mm_unpacklo_epi16(b[4], b[6]); /* rows 4..7 */
        c[5] = _mm_unpackhi_epi16(b[4], b[6]);
        c[6] = _mm_unpacklo_epi16(b[5], b[7]);
        c[7] = _mm_unpackhi_epi16(b[5], b[7]);
        for (int i = 0; i < 4; i++) {
            _mm_storeu_si128((__m128i *)(q + 8 * (j + 4 * i)), _mm_unpacklo_epi32(c[i], c[i + 4]));
            _mm_storeu_si128((__m128i *)(q + 8 * (j + 4 * i + 2)), _mm_unpackhi_epi32(c[i], c[i + 4]));
        }
    }
    for (; j < n; j++)
        for (int i = 0; i < 8; i++)
            q[8 * j + i] = r[i][j];
}

AUG_TARGET_V3 static inline __m128i aug_pack8(__m256i s)
{
    s = _mm256_srai_epi32(s, AUG_PRECISION_BITS);
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return _mm_packus_epi16(w, w); /* saturation = Pillow's clip8 */
}

/* Rows [0, nr) of the window (row pointers src + y*stride) -> tmp rows (ow*c bytes each,
 * tstride apart), c = 1 or 3. */
AUG_TARGET_V3 __attribute__((unused)) static void aug_hpass_v3(const uint8_t *src, size_t stride, int nr, int w, int c,
                                       uint8_t *tmp, size_t tstride, int ow, const int32_t *kk,
                                       int K, const int32_t *bd, uint8_t *q)
{
    const __m256i half = _mm256_set1_epi32(1 << (AUG_PRECISION_BITS - 1));
    for (int y0 = 0; y0 < nr; y0 += 8) {
        int nv = nr - y0 < 8 ? nr - y0 : 8;
        const uint8_t *r[8];
        for (int i = 0; i < 8; i++)
            r[i] = src + (size_t)(y0 + (i < nv ? i : nv - 1)) * stride;
        aug_t8(r, w * c, q);
        uint8_t *o[8];
        for (int i = 0; i < 8; i++)
            o[i] = tmp + (size_t)(y0 + (i < nv ? i : 0)) * tstride;
        for (int xx = 0; xx < ow; xx++) {
            const int32_t *k = kk + (size_t)xx * K;
            int xmin = bd[2 * xx], xmax = bd[2 * xx + 1];
            const uint8_t *p = q + (size_t)xmin * c * 8;
            if (c == 3) {
                __m256i s0 = half, s1 = half, s2 = half;
                for (int x = 0; x < xmax; x++, p += 24) {
                    __m256i kv = _mm256_set1_epi32(k[x]);
                    s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), kv));
                    s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))), kv));
                    s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 16))), kv));
                }
                uint8_t t[48];
                _mm_storel_epi64((__m128i *)t, aug_pack8(s0));
                _mm_storel_epi64((__m128i *)(t + 8), aug_pack8(s1));
                _mm_storel_epi64((__m128i *)(t + 16), aug_pack8(s2));
                for (int i = 0; i < nv; i++) {
                    o[i][3 * xx] = t[i];
                    o[i][3 * xx + 1] = t[8 + i];
                    o[i][3 * xx + 2] = t[16 + i];
                }
            } else {
                __m256i s0 = half;
                for (int x = 0; x < xmax; x++, p += 8)
                    s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)),
                        _mm256_set1_epi32(k[x])));
                uint8_t t[16];
                _mm_storel_epi64((__m128i *)t, aug_pack8(s0));
                for (int i = 0; i < nv; i++)
                    o[i][xx] = t[i];
            }
        }
    }
}

/* Vertical pass: out row yy = sum over taps of source rows, 32 bytes at a time in
 * registers. */
AUG_TARGET_V3 __attribute__((unused)) static void aug_vpass_v3(const uint8_t *vsrc, size_t vstride, uint8_t *dst,
                                       size_t dstride, int oh, int rowlen, const int32_t *kkv,
                                       int kv, const int32_t *bv)
{
    const __m256i half = _mm256_set1_epi32(1 << (AUG_PRECISION_BITS - 1));
    for (int yy = 0; yy < oh; yy++) {
        const int32_t *k = kkv + (size_t)yy * kv;
        int ymin = bv[2 * yy], ymax = bv[2 * yy + 1];
        const uint8_t *base = vsrc + (size_t)ymin * vstride;
        uint8_t *o = dst + (size_t)yy * dstride;
        int x = 0;
        for (; x + 32 <= rowlen; x += 32) {
            __m256i s0 = half, s1 = half, s2 = half, s3 = half;
            const uint8_t *rp = base + x;
            for (int y = 0; y < ymax; y++, rp += vstride) {
                __m256i kw = _mm256_set1_epi32(k[y]);
                __m256i v = _mm256_loadu_si256((const __m256i *)rp);
                __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(lo), kw));
                s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(
                    _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)), kw));
                s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(hi), kw));
                s3 = _mm256_add_epi32(s3, _mm256_mullo_epi32(
                    _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)), kw));
            }
            __m128i a = _mm_unpacklo_epi64(aug_pack8(s0), aug_pack8(s1));
            __m128i b = _mm_unpacklo_epi64(aug_pack8(s2), aug_pack8(s3));
            _mm_storeu_si128((__m128i *)(o + x), a);
            _mm_storeu_si128((__m128i *)(o + x + 16), b);
        }
        for (; x < rowlen; x++) {
            int s = 1 << (AUG_PRECISION_BITS - 1);
            const uint8_t *rp = base + x;
            for (int y = 0; y < ymax; y++, rp += vstride)
                s += *rp * k[y];
            o[x] = aug_clip8(s);
        }
    }
}

__attribute__((unused)) static int aug_v3_cached = -1;
static inline int aug_simd(void)
{
    if (aug_v3_cached < 0)
        aug_v3_cached = aug_use_v3(); /* a benign race: every thread computes the same */
    return aug_v3_cached;
}
#else
static inline int aug_simd(void) { return 0; }
#endif

/* Resize the (x0, y0, w, h) window of `in` to out->w x out->h, Pillow semantics
 * (img.crop(box).resize(size, filter)). Channels 1 or 3. ch/cv: precomputed coefficients
 * for (w -> out->w) and (h -> out->h), or NULL to compute them into `scratch`. */
AUG_INLINE void aug_resize_c(const eqm_image *in, int x0, int y0, int w, int h, eqm_image *out,
                                int filter, void *scratch, const aug_coef *ch, const aug_coef *cv)
{
    const int c = in->c, ow = out->w, oh = out->h;
    const uint8_t *src = (const uint8_t *)in->data + (size_t)y0 * in->stride + (size_t)x0 * c;
    uint8_t *dst = out->data;
    const int need_h = ow != w, need_v = oh != h;
    if (!need_h && !need_v) {
        for (int y = 0; y < h; y++)
            memcpy(dst + (size_t)y * out->stride, src + (size_t)y * in->stride, (size_t)w * c);
        return;
    }
    int kh = ch ? ch->ksize : aug_ksize(w, ow, filter), kv = cv ? cv->ksize : aug_ksize(h, oh, filter);
    int32_t *skkh = scratch, *skkv = skkh + (size_t)kh * ow;
    int32_t *sbh = skkv + (size_t)kv * oh, *sbv = sbh + 2 * ow;
    uint8_t *tmp = (uint8_t *)(sbv + 2 * oh);
    const int32_t *kkh = skkh, *kkv = skkv, *bh = sbh, *bv = sbv;
    if (need_h) {
        if (ch) {
            kkh = ch->kk;
            bh = ch->bounds;
        } else {
            aug_coeffs(w, ow, filter, kh, skkh, sbh);
        }
    }
    if (need_v) {
        if (cv) {
            kkv = cv->kk;
            bv = cv->bounds;
        } else {
            aug_coeffs(h, oh, filter, kv, skkv, sbv);
        }
    }
    /* rows of the source used by the vertical pass */
    int yfirst = 0, ylast = h;
    if (need_v) {
        yfirst = bv[0];
        ylast = bv[2 * oh - 2] + bv[2 * oh - 1];
    }
    const uint8_t *vsrc;
    size_t vstride;
    const int simd = aug_simd();
    if (need_h) {
        uint8_t *t = need_v ? tmp : dst;
        size_t tstride = need_v ? (size_t)ow * c : (size_t)out->stride;
#if AUG_HAVE_V3
        if (simd) {
            uint8_t *q = tmp + (size_t)ow * c * (size_t)h;
            q += (64 - ((uintptr_t)q & 63)) & 63;
            aug_hpass_v3(src + (size_t)yfirst * in->stride, (size_t)in->stride, ylast - yfirst,
                         w, c, t, tstride, ow, kkh, kh, bh, q);
        }
#endif
        for (int y = simd ? ylast : yfirst; y < ylast; y++) {
            const uint8_t *row = src + (size_t)y * in->stride;
            uint8_t *o = t + (size_t)(y - yfirst) * tstride;
            if (c == 3 && kh == 5) {
                aug_hpass3_5(row, w, o, ow, kkh, bh);
                continue;
            }
            if (c == 3 && kh == 7) {
                aug_hpass3_7(row, w, o, ow, kkh, bh);
                continue;
            }
            for (int xx = 0; xx < ow; xx++) {
                const int32_t *k = kkh + (size_t)xx * kh;
                int xmin = bh[2 * xx], xmax = bh[2 * xx + 1];
                const uint8_t *p = row + (size_t)xmin * c;
                if (c == 3) {
                    int s0 = 1 << (AUG_PRECISION_BITS - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < xmax; x++) {
                        s0 += p[3 * x] * k[x];
                        s1 += p[3 * x + 1] * k[x];
                        s2 += p[3 * x + 2] * k[x];
                    }
                    o[3 * xx] = aug_clip8(s0);
                    o[3 * xx + 1] = aug_clip8(s1);
                    o[3 * xx + 2] = aug_clip8(s2);
                } else {
                    int s0 = 1 << (AUG_PRECISION_BITS - 1);
                    for (int x = 0; x < xmax; x++)
                        s0 += p[x] * k[x];
                    o[xx] = aug_clip8(s0);
                }
            }
        }
        if (!need_v)
            return;
        vsrc = tmp - (size_t)yfirst * ow * c; /* so that row y of the source is vsrc + y*vstride */
        vstride = (size_t)ow * c;
    } else {
        vsrc = src;
        vstride = in->stride;
    }
    const int rowlen = ow * c;
#if AUG_HAVE_V3
    if (simd) {
        aug_vpass_v3(vsrc, vstride, dst, (size_t)out->stride, oh, rowlen, kkv, kv, bv);
        return;
    }
#endif
    for (int yy = 0; yy < oh; yy++) {
        const int32_t *k = kkv + (size_t)yy * kv;
        int ymin = bv[2 * yy], ymax = bv[2 * yy + 1];
        uint8_t *o = dst + (size_t)yy * out->stride;
        int acc[3 * 512];
        for (int x0b = 0; x0b < rowlen; x0b += 3 * 512) {
            int n = rowlen - x0b < 3 * 512 ? rowlen - x0b : 3 * 512;
            for (int x = 0; x < n; x++)
                acc[x] = 1 << (AUG_PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *r = vsrc + (size_t)(y + ymin) * vstride + x0b;
                int32_t kw = k[y];
                for (int x = 0; x < n; x++)
                    acc[x] += r[x] * kw;
            }
            for (int x = 0; x < n; x++)
                o[x0b + x] = aug_clip8(acc[x]);
        }
    }
}

static inline void aug_resize(const eqm_image *in, int x0, int y0, int w, int h, eqm_image *out,
                              int filter, void *scratch)
{
    aug_resize_c(in, x0, y0, w, h, out, filter, scratch, NULL, NULL);
}

/* Scratch bytes aug_resize_fbox needs (its coefficients, then aug_resize's scratch). */
static inline size_t aug_resize_fbox_scratch(int in_w, int in_h, int c, int out_w, int out_h,
                                             int filter)
{
    return 2 * aug_resize_scratch(in_w, in_h, c, out_w, out_h, filter);
}

/* Resample the fractional box (bx, by, bw, bh) of `in` to out->w x out->h: Pillow's
 * resampling with the filter support clipped to the box's pixel window [floor(bx),
 * ceil(bx + bw)) (the analogue of img.crop(box).resize for a box that is not on pixel
 * edges; equal to it when the box is). Used on DCT-downscaled inputs (apply_scaled). */
static inline void aug_resize_fbox(const eqm_image *in, double bx, double by, double bw,
                                   double bh, eqm_image *out, int filter, void *scratch)
{
    int x0 = (int)floor(bx), y0 = (int)floor(by);
    int x1 = (int)ceil(bx + bw), y1 = (int)ceil(by + bh);
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > in->w ? in->w : x1 < x0 + 1 ? x0 + 1 : x1;
    y1 = y1 > in->h ? in->h : y1 < y0 + 1 ? y0 + 1 : y1;
    const int ow = out->w, oh = out->h, ww = x1 - x0, wh = y1 - y0;
    int kh = aug_ksize_box(bw, ow, filter), kv = aug_ksize_box(bh, oh, filter);
    int32_t *kkh = scratch, *bdh = kkh + (size_t)kh * ow;
    int32_t *kkv = bdh + 2 * (size_t)ow, *bdv = kkv + (size_t)kv * oh;
    void *rest = bdv + 2 * (size_t)oh;
    aug_coeffs_box(ww, bx - x0, bx - x0 + bw, ow, filter, kh, kkh, bdh);
    aug_coeffs_box(wh, by - y0, by - y0 + bh, oh, filter, kv, kkv, bdv);
    aug_coef ch = {kh, kkh, bdh}, cv = {kv, kkv, bdv};
    aug_resize_c(in, x0, y0, ww, wh, out, filter, rest, &ch, &cv);
}

/* ITU-R 601 luma of an RGB pixel, Pillow's rounding. */
AUG_INLINE uint8_t aug_luma(const uint8_t *p)
{
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

#if AUG_HAVE_V3
/* Luma (aug_luma) of n packed RGB pixels into l[0..n), 16 pixels at a time: the pixels are
 * split into R, G, B planes by byte shuffles and the same integer sum runs in 32-bit lanes. */
AUG_TARGET_V3 __attribute__((unused)) static void aug_luma_row_v3(const uint8_t *s, uint8_t *l,
                                                                  size_t n)
{
    static const int8_t m[3][3][16] = {
        {{0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13}},
        {{1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14}},
        {{2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15}}};
    const __m256i kr = _mm256_set1_epi32(19595), kg = _mm256_set1_epi32(38470);
    const __m256i kb = _mm256_set1_epi32(7471), rnd = _mm256_set1_epi32(0x8000);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8_t *p = s + 3 * i;
        __m128i a0 = _mm_loadu_si128((const __m128i *)p);
        __m128i a1 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i a2 = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i ch[3];
        for (int c = 0; c < 3; c++)
            ch[c] = _mm_or_si128(
                _mm_or_si128(_mm_shuffle_epi8(a0, _mm_loadu_si128((const __m128i *)m[c][0])),
                             _mm_shuffle_epi8(a1, _mm_loadu_si128((const __m128i *)m[c][1]))),
                _mm_shuffle_epi8(a2, _mm_loadu_si128((const __m128i *)m[c][2])));
        __m256i y[2];
        for (int h = 0; h < 2; h++) {
            __m256i r = _mm256_cvtepu8_epi32(h ? _mm_srli_si128(ch[0], 8) : ch[0]);
            __m256i g = _mm256_cvtepu8_epi32(h ? _mm_srli_si128(ch[1], 8) : ch[1]);
            __m256i b = _mm256_cvtepu8_epi32(h ? _mm_srli_si128(ch[2], 8) : ch[2]);
            __m256i t = _mm256_add_epi32(_mm256_mullo_epi32(r, kr), _mm256_mullo_epi32(g, kg));
            t = _mm256_add_epi32(t, _mm256_add_epi32(_mm256_mullo_epi32(b, kb), rnd));
            y[h] = _mm256_srli_epi32(t, 16);
        }
        __m256i w = _mm256_packus_epi32(y[0], y[1]); /* lanes: y0 lo, y1 lo, y0 hi, y1 hi */
        w = _mm256_permute4x64_epi64(w, 0xd8);
        __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        _mm_storeu_si128((__m128i *)(l + i), b8);
    }
    for (; i < n; i++)
        l[i] = (uint8_t)((s[3 * i] * 19595 + s[3 * i + 1] * 38470 + s[3 * i + 2] * 7471 + 0x8000) >> 16);
}

/* o[x] = Image.blend of base and s[x] with alpha a (aug_blend: float32, base + a * (s -
 * base), truncated; clipped to [0, 255] when a is outside [0, 1]), for n values; base is
 * bases[x] when bases is not NULL, else the constant base0. 32 values at a time. */
AUG_TARGET_V3 __attribute__((unused)) static void aug_blend_row_v3(const uint8_t *s,
                                                                   const uint8_t *bases,
                                                                   int base0, uint8_t *o,
                                                                   size_t n, float a)
{
    const __m256 va = _mm256_set1_ps(a), zero = _mm256_setzero_ps();
    const __m256 top = _mm256_set1_ps(255.0f);
    const __m256i b0 = _mm256_set1_epi32(base0);
    const int clip = !(a >= 0 && a <= 1.0f);
    size_t x = 0;
    for (; x + 32 <= n; x += 32) {
        __m128i sv[2] = {_mm_loadu_si128((const __m128i *)(s + x)),
                         _mm_loadu_si128((const __m128i *)(s + x + 16))};
        __m128i bv[2] = {_mm_setzero_si128(), _mm_setzero_si128()};
        if (bases) {
            bv[0] = _mm_loadu_si128((const __m128i *)(bases + x));
            bv[1] = _mm_loadu_si128((const __m128i *)(bases + x + 16));
        }
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m128i sk = k & 1 ? _mm_srli_si128(sv[k >> 1], 8) : sv[k >> 1];
            __m256i si = _mm256_cvtepu8_epi32(sk), bi = b0;
            if (bases)
                bi = _mm256_cvtepu8_epi32(k & 1 ? _mm_srli_si128(bv[k >> 1], 8) : bv[k >> 1]);
            __m256 t = _mm256_cvtepi32_ps(_mm256_sub_epi32(si, bi));
            __m256 r = _mm256_add_ps(_mm256_cvtepi32_ps(bi), _mm256_mul_ps(va, t));
            if (clip)
                r = _mm256_min_ps(_mm256_max_ps(r, zero), top);
            q[k] = _mm256_cvttps_epi32(r);
        }
        __m256i w0 = _mm256_permute4x64_epi64(_mm256_packus_epi32(q[0], q[1]), 0xd8);
        __m256i w1 = _mm256_permute4x64_epi64(_mm256_packus_epi32(q[2], q[3]), 0xd8);
        __m256i b8 = _mm256_permute4x64_epi64(_mm256_packus_epi16(w0, w1), 0xd8);
        _mm256_storeu_si256((__m256i *)(o + x), b8);
    }
    for (; x < n; x++) {
        int base = bases ? bases[x] : base0;
        float t = (float)base + a * (float)((int)s[x] - base);
        if (clip)
            t = t < 0.0f ? 0.0f : t > 255.0f ? 255.0f : t;
        o[x] = (uint8_t)(int)t;
    }
}
#endif

/* Image.blend(im1, im2, alpha) of two 8-bit values. */
AUG_INLINE uint8_t aug_blend(int in1, int in2, float alpha)
{
    if (alpha >= 0 && alpha <= 1.0f)
        return (uint8_t)((float)in1 + alpha * (float)(in2 - in1));
    float t = (float)in1 + alpha * (float)(in2 - in1);
    if (t <= 0.0f)
        return 0;
    if (t >= 255.0f)
        return 255;
    return (uint8_t)t;
}

/* Copy an image (same size) row by row. */
static inline void aug_copy(const eqm_image *in, eqm_image *out)
{
    size_t row = (size_t)in->w * in->c;
    for (int y = 0; y < in->h; y++)
        memcpy((uint8_t *)out->data + (size_t)y * out->stride,
               (const uint8_t *)in->data + (size_t)y * in->stride, row);
}

static inline int aug_check_u8(const eqm_host_api *api, eqm_host *h, const char *who,
                               const eqm_image *in)
{
    if (in->format != EQM_PIX_U8 || (in->c != 1 && in->c != 3) || in->w <= 0 || in->h <= 0)
        return api->set_error(h, EQM_ERR_INVAL,
                              "%s: expects an 8-bit image with 1 or 3 channels, got %dx%dx%d "
                              "format %u (is it placed after normalize? normalize must be last)",
                              who, in->w, in->h, in->c, in->format);
    return EQM_OK;
}

#endif
