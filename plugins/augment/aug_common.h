/* plugins/augment/aug_common.h: what the augmentation plugins share on the plugin side,
 * compiled into each plugin file (static functions; plugins link nothing of each other):
 * the scaffolding every augment plugin needs (instance head, create/destroy, record names,
 * ops table and descriptor), CPU dispatch, and Pillow 9.4's pixel arithmetic bit for bit:
 *   - RGB -> L (Convert.c): (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (ITU-R 601 luma);
 *   - Image.blend (Blend.c): out = (UINT8)(in1 + alpha * (in2 - in1)) in float, clipped to
 *     [0, 255] when alpha is outside [0, 1].
 * Resampling is not here: the plugins call the host's one resampler,
 * api->image->resample (host/services/resample.c, Pillow-exact).
 * Images are U8 HWC with 1 or 3 channels, rows `stride` elements apart.
 *
 * Dimension legend: W, H = width, height; C = channels.
 */
#ifndef EQM_AUG_COMMON_H
#define EQM_AUG_COMMON_H

#include <equimod/equimod.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* ITU-R 601 luma of an RGB pixel, Pillow's rounding. */
AUG_INLINE uint8_t aug_luma(const uint8_t *p)
{
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

#if AUG_HAVE_V3
#include <immintrin.h>
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

/* ------------------------------------------------------------------ scaffolding -- */

/* The first member of every augment plugin's instance: what the shared create/destroy fill
 * and free. */
typedef struct aug_head {
    const eqm_host_api *api;
    eqm_host *host;
} aug_head;

/* The instance type T of a step: the head, its options (type OT, member `o`), then the
 * `extra` members (may be empty). */
#define AUG_INSTANCE(T, OT, extra)                                                            \
    typedef struct T {                                                                        \
        aug_head h;                                                                           \
        OT o;                                                                                 \
        extra                                                                                 \
    } T

/* create(): allocate a zeroed instance of `bytes` (an aug_head first), fill the head, copy
 * the options (opts_bytes, bound by the host) to offset opts_off, then run init (NULL: none;
 * it validates the options and builds tables, returning EQM_OK or an api->set_error
 * status, after which the instance is released with fini). */
static inline int aug_create(const eqm_host_api *api, eqm_host *host, const char *who,
                             size_t bytes, size_t opts_off, size_t opts_bytes,
                             const void *opts, int (*init)(void *self),
                             void (*fini)(void *self), void **self)
{
    *self = NULL;
    aug_head *g = api->alloc(host, bytes, 0);
    if (!g)
        return api->set_error(host, EQM_ERR_NOMEM, "%s: out of memory", who);
    g->api = api;
    g->host = host;
    memcpy((char *)g + opts_off, opts, opts_bytes);
    int rc = init ? init(g) : EQM_OK;
    if (rc) {
        if (fini)
            fini(g);
        api->free(host, g);
        return rc;
    }
    *self = g;
    return EQM_OK;
}

static inline void aug_destroy(void *self, void (*fini)(void *self))
{
    aug_head *g = self;
    if (!g)
        return;
    if (fini)
        fini(g);
    g->api->free(g->host, g);
}

/* pfx_create and pfx_destroy for the instance type T (member `h`, an aug_head, first; the
 * options in member `o`), with init and fini as for aug_create (NULL for none). */
#define AUG_LIFECYCLE(pfx, T, who, init, fini)                                                \
    static int pfx##_create(const eqm_host_api *api, eqm_host *host, const void *opts,        \
                            void **self)                                                      \
    {                                                                                         \
        return aug_create(api, host, who, sizeof(T), offsetof(T, o), sizeof(((T *)0)->o),     \
                          opts, init, fini, self);                                            \
    }                                                                                         \
    static void pfx##_destroy(void *self) { aug_destroy(self, fini); }

/* pfx_n_params and pfx_param_name for the names of the step's record in t (METHOD.md §4). */
#define AUG_RECORD(pfx, ...)                                                                  \
    static const char *const pfx##_record[] = {__VA_ARGS__};                                  \
    static int pfx##_n_params(const void *self)                                               \
    {                                                                                         \
        return (int)(sizeof pfx##_record / sizeof pfx##_record[0]);                           \
    }                                                                                         \
    static const char *pfx##_param_name(const void *self, int i)                              \
    {                                                                                         \
        return i >= 0 && i < pfx##_n_params(self) ? pfx##_record[i] : NULL;                   \
    }

/* A deterministic step: no record in t, nothing to draw. */
#define AUG_NO_RECORD(pfx)                                                                    \
    static int pfx##_n_params(const void *self) { return 0; }                                 \
    static const char *pfx##_param_name(const void *self, int i) { return NULL; }             \
    static int pfx##_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,       \
                            const eqm_image *in, float *p)                                    \
    {                                                                                         \
        return EQM_OK;                                                                        \
    }

/* The options of a step whose only option is the probability of applying it. */
typedef struct aug_coin_opts {
    double p;
} aug_coin_opts;

/* A step applied with probability o.p (a member of T's options): its record is one value,
 * `name` (1 applied, 0 not), drawn by sample(). */
#define AUG_COIN_RECORD(pfx, T, name)                                                         \
    AUG_RECORD(pfx, name)                                                                     \
    static int pfx##_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,       \
                            const eqm_image *in, float *p)                                    \
    {                                                                                         \
        const T *g = self;                                                                    \
        p[0] = g->h.api->rng_uniform(rng) < g->o.p ? 1.0f : 0.0f;                             \
        return EQM_OK;                                                                        \
    }

/* The head of pfx_apply for instance type T: it refuses an input that is not 8-bit with 1
 * or 3 channels (aug_check_u8) and, with skip_if_p0, copies the input when the record's
 * first value is 0 (a step drawn as not applied); otherwise it runs the body that follows
 * the macro, as a function of (const T *g, p, in, out, scratch). */
#define AUG_APPLY(pfx, T, who, skip_if_p0)                                                    \
    static int pfx##_apply_u8(const T *g, const float *p, const eqm_image *in,               \
                              eqm_image *out, void *scratch);                                 \
    static int pfx##_apply(const void *self, const float *p, const eqm_image *in,            \
                           eqm_image *out, void *scratch)                                     \
    {                                                                                         \
        const T *g = self;                                                                    \
        int rc = aug_check_u8(g->h.api, g->h.host, who, in);                                  \
        if (rc)                                                                               \
            return rc;                                                                        \
        if ((skip_if_p0) && p[0] == 0.0f) {                                                   \
            aug_copy(in, out);                                                                \
            return EQM_OK;                                                                    \
        }                                                                                     \
        return pfx##_apply_u8(g, p, in, out, scratch);                                        \
    }                                                                                         \
    static int pfx##_apply_u8(const T *g, const float *p, const eqm_image *in,               \
                              eqm_image *out, void *scratch)

/* The ops table, descriptor and entry point of a file holding one augment plugin `name`:
 * pfx_create, pfx_destroy, pfx_n_params, pfx_param_name, pfx_sample, pfx_apply and the
 * option table pfx_params (options of type OT) by name; out_shape, scratch_bytes and the
 * 1.1 source_box / apply_scaled (both or neither) given, NULL where unused. */
#define AUG_PLUGIN(pfx, name, summary, OT, out_shape, scratch, source_box, apply_scaled)      \
    static const eqm_augment_ops pfx##_ops = {                                                \
        sizeof(eqm_augment_ops), pfx##_create, pfx##_destroy, pfx##_n_params,                 \
        pfx##_param_name, pfx##_sample, out_shape, pfx##_apply, scratch, source_box,          \
        apply_scaled, NULL /* 1.3 out_shape_p: sizes depend on the input only */};            \
    static const eqm_plugin_desc pfx##_desc = {                                               \
        EQM_DESC_HEADER(EQM_KIND_AUGMENT), name, "1.0.0", summary, pfx##_params, sizeof(OT),  \
        &pfx##_ops};                                                                          \
    static const eqm_plugin_desc *const descs[] = {&pfx##_desc};                              \
    EQM_PLUGIN_ENTRY(descs)

/* out_shape of a step that keeps the input's size, channels and format. */
static inline int aug_same_shape(const void *self, const eqm_image *in, int *w, int *h, int *c,
                                 uint32_t *format)
{
    *w = in->w;
    *h = in->h;
    *c = in->c;
    *format = in->format;
    return EQM_OK;
}

/* out_shape of a step whose output is 8-bit, size x size, with the input's channels. */
static inline int aug_square_shape(int64_t size, const eqm_image *in, int *w, int *h, int *c,
                                   uint32_t *format)
{
    *w = *h = (int)size;
    *c = in->c;
    *format = EQM_PIX_U8;
    return EQM_OK;
}

/* The flags of api->image->resample for an `interpolation` option (0 bilinear, 1 bicubic)
 * and torchvision's crop-then-resize; the portable loops when EQM_AUG_GENERIC asks for the
 * generic path. Fails (at create) on a host whose image service lacks resample. */
static inline int aug_resample_flags(const eqm_host_api *api, eqm_host *host, const char *who,
                                     int interpolation, int *flags)
{
    if (!api->image || !EQM_API_HAS(api->image, resample) || !api->image->resample)
        return api->set_error(host, EQM_ERR_ABI,
                              "%s: this host's image service has no resample (ABI 1.2); use "
                              "the equimod host these plugins were built with", who);
    *flags = (interpolation == 1 ? EQM_RESAMPLE_BICUBIC : EQM_RESAMPLE_BILINEAR) |
             EQM_RESAMPLE_CROP | (aug_use_v3() ? 0 : EQM_RESAMPLE_PORTABLE);
    return EQM_OK;
}

#endif
