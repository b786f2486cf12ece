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

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc, for a box [0, in). kk: out*ksize
 * ints, bounds: 2*out ints. */
static inline void aug_coeffs(int in, int out, int filter, int ksize, int32_t *kk, int32_t *bounds)
{
    double support = filter == AUG_BICUBIC ? 2.0 : 1.0;
    double scale = (double)in / out, filterscale = scale;
    if (filterscale < 1.0)
        filterscale = 1.0;
    support *= filterscale;
    double pre[64];
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale;
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

/* Scratch bytes aug_resize needs. */
static inline size_t aug_resize_scratch(int in_w, int in_h, int c, int out_w, int out_h, int filter)
{
    size_t kh = (size_t)aug_ksize(in_w, out_w, filter), kv = (size_t)aug_ksize(in_h, out_h, filter);
    return (kh * out_w + kv * out_h + 2 * (size_t)out_w + 2 * (size_t)out_h) * sizeof(int32_t) +
           (size_t)out_w * in_h * c + 64;
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
    if (need_h) {
        uint8_t *t = need_v ? tmp : dst;
        size_t tstride = need_v ? (size_t)ow * c : (size_t)out->stride;
        for (int y = yfirst; y < ylast; y++) {
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

/* ITU-R 601 luma of an RGB pixel, Pillow's rounding. */
AUG_INLINE uint8_t aug_luma(const uint8_t *p)
{
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

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
