/* host/services/resample.c: the host's one image resampler, api->image->resample (and
 * crop_resize, a bilinear call of it): Pillow 9.4's ImagingResample of 8-bit images with
 * 1 or 3 channels, bit for bit.
 *
 * Pillow's algorithm (Resample.c): separable, the horizontal pass first into an 8-bit
 * temporary (only the rows the vertical pass reads), then the vertical one. Each axis has
 * per-output-pixel taps (precompute_coeffs: centre = in0 + (i + 0.5) * scale, support =
 * filter support * max(scale, 1), so it antialiases when downscaling; normalize_coeffs_8bpc:
 * 22-bit fixed point, rounded half away from zero); sums start at 1 << 21 and are clipped
 * to 0..255 (clip8). Filters: bilinear (triangle, support 1) and bicubic (a = -0.5,
 * support 2). An axis whose size and box are unchanged is not filtered (Pillow's
 * need_horizontal / need_vertical).
 * Box modes: without EQM_RESAMPLE_CROP the taps are clipped to the image (Pillow's
 * im.resize(size, filter, box)); with it, to the box's pixel window [floor(x), ceil(x + w))
 * (im.crop(window).resize(size, filter, box - window origin): torchvision's resized_crop
 * when the box is on pixel edges, and its analogue on a DCT-downscaled input otherwise).
 *
 * Speed: on CPUs with AVX2 and BMI2 both passes run as AVX2 code doing the same integer
 * arithmetic (the same bytes; tests/data/check_resample compares them with the portable
 * loops on random cases; EQM_RESAMPLE_PORTABLE forces the portable loops). The horizontal
 * AVX2 pass takes 8 rows at a time, transposed so that one tap of one channel is 8
 * contiguous bytes. Coefficients of recent (axis, box, output, filter) tuples are cached
 * per thread (a crop of a CIFAR image recomputes none). Per-thread memory (the temporary
 * image, the cache) is kept between calls and freed when the thread exits.
 *
 * Dimension legend: W, H = width, height (of the window read); C = channels; K = taps per
 * output pixel (ksize); OW, OH = output size.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "services/resample.h"

#define PRECISION_BITS (32 - 8 - 2)
#define RS_INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) && defined(__GNUC__)
#define RS_HAVE_V3 1
/* x86-64-v3 without FMA (no floating-point contraction could change a result) */
#define RS_TARGET_V3 __attribute__((target("avx2,bmi,bmi2,popcnt,sse4.2")))
#include <immintrin.h>
#else
#define RS_HAVE_V3 0
#endif

/* ------------------------------------------------------------------ coefficients */

static double filter_bicubic(double x)
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

static double filter_bilinear(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return 1.0 - x;
    return 0.0;
}

static double filter_support(int filter) { return filter == EQM_RESAMPLE_BICUBIC ? 2.0 : 1.0; }

/* Pillow's clip8 (>= 255 << 22 gives 255, <= 0 gives 0, else in >> 22), written without
 * branches so that loops using it vectorise (same results: the arithmetic shift of a
 * non-positive value is <= 0, of a value >= 2^30 is >= 256). */
RS_INLINE uint8_t clip8(int in)
{
    int v = in >> PRECISION_BITS;
    v = v < 0 ? 0 : v;
    v = v > 255 ? 255 : v;
    return (uint8_t)v;
}

/* Taps per output pixel for resampling a box `span` input pixels wide to `out`. */
static int ksize_for(double span, int out, int filter)
{
    double scale = span / out;
    if (scale < 1.0)
        scale = 1.0;
    return (int)ceil(filter_support(filter) * scale) * 2 + 1;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc, for the box [in0, in1) of an axis
 * `in` pixels long (support clipped to [0, in)). kk: out * ksize ints, bounds: 2 * out ints
 * (first tap, number of taps). */
static void coeffs_make(int in, double in0, double in1, int out, int filter, int ksize,
                        int32_t *kk, int32_t *bounds)
{
    double (*const fn)(double) = filter == EQM_RESAMPLE_BICUBIC ? filter_bicubic
                                                                : filter_bilinear;
    double support = filter_support(filter);
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
        /* more than 64 taps only for a > 15x downscale: those are evaluated twice */
        for (int x = 0; x < xmax; x++) {
            double w = fn((x + xmin - center + 0.5) * ss);
            if (x < 64)
                pre[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++) {
            double w = x < 64 ? pre[x] : fn((x + xmin - center + 0.5) * ss);
            if (ww != 0.0)
                w /= ww;
            k[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++)
            k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

/* The coefficients of one axis. */
typedef struct axis {
    int ksize;
    const int32_t *kk;     /* (out, ksize) */
    const int32_t *bounds; /* (out, 2) */
} axis;

/* ------------------------------------------------------------------ per thread -- */

enum { CACHE_SLOTS = 256, CACHE_MAX_INTS = 4096 };

typedef struct cache_slot {
    int in, out, filter, ksize;
    double in0, in1;
    int32_t *data; /* kk then bounds; valid when ksize > 0 */
    size_t cap;    /* ints */
} cache_slot;

typedef struct rs_thread {
    uint8_t *buf; /* the temporary image and the transposed rows */
    size_t buf_cap;
    int32_t *coef; /* coefficients too large for the cache */
    size_t coef_cap;
    cache_slot slot[CACHE_SLOTS];
} rs_thread;

static __thread rs_thread *tls_state;
static pthread_key_t tls_key;
static int tls_key_ok;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
    rs_thread *t = p;
    if (!t)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        free(t->slot[i].data);
    free(t->buf);
    free(t->coef);
    free(t);
}

static void tls_key_make(void) { tls_key_ok = pthread_key_create(&tls_key, tls_free) == 0; }

static rs_thread *tls_get(void)
{
    if (tls_state)
        return tls_state;
    pthread_once(&tls_once, tls_key_make);
    rs_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (tls_key_ok)
        pthread_setspecific(tls_key, t); /* tls_free runs when the thread exits */
    tls_state = t;
    return t;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *q = malloc(need * elem);
    if (!q)
        return -1;
    free(*p);
    *p = q;
    *cap = need;
    return 0;
}

/* The coefficients of the box [in0, in1) of an axis `in` long, to `out`: from the thread's
 * cache, or computed (into the cache, or into t->coef at `*coef_off` ints, whose room the
 * caller reserved, for large ones and where the slot holds `keep`, the other axis of the
 * same call). Returns the slot used, or NULL. */
static const cache_slot *axis_get(rs_thread *t, int in, double in0, double in1, int out,
                                  int filter, const cache_slot *keep, size_t *coef_off,
                                  axis *ax)
{
    int k = ksize_for(in1 - in0, out, filter);
    size_t n = (size_t)(k + 2) * out;
    ax->ksize = k;
    if (n <= CACHE_MAX_INTS) {
        uint64_t bx, by;
        memcpy(&bx, &in0, 8);
        memcpy(&by, &in1, 8);
        uint64_t hsh = ((uint64_t)in * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)out << 32) ^
                       (uint64_t)filter ^ bx * 0xBF58476D1CE4E5B9ull ^ by * 0x94D049BB133111EBull;
        hsh ^= hsh >> 29;
        cache_slot *s = &t->slot[hsh % CACHE_SLOTS];
        int hit = s->ksize > 0 && s->in == in && s->out == out && s->filter == filter &&
                  s->in0 == in0 && s->in1 == in1;
        if (!hit && s == keep)
            s = NULL;
        else if (!hit) {
            s->ksize = 0;
            if (grow((void **)&s->data, &s->cap, n, sizeof(int32_t)) == 0) {
                coeffs_make(in, in0, in1, out, filter, k, s->data, s->data + (size_t)k * out);
                s->in = in;
                s->out = out;
                s->filter = filter;
                s->in0 = in0;
                s->in1 = in1;
                s->ksize = k;
            }
        }
        if (s && s->ksize > 0) {
            ax->kk = s->data;
            ax->bounds = s->data + (size_t)k * out;
            return s;
        }
    }
    int32_t *d = t->coef + *coef_off;
    *coef_off += n;
    coeffs_make(in, in0, in1, out, filter, k, d, d + (size_t)k * out);
    ax->kk = d;
    ax->bounds = d + (size_t)k * out;
    return NULL;
}

/* ------------------------------------------------------------------ portable passes */

/* Horizontal pass of 3-channel rows, ksize known at compile time (K), for outputs whose
 * taps stay inside the row (xmin + K <= w: the zero-padded taps then read valid memory). */
#define HPASS3(K)                                                                          \
    RS_INLINE void hpass3_##K(const uint8_t *row, int w, uint8_t *o, int ow,               \
                              const int32_t *kkh, const int32_t *bh)                       \
    {                                                                                      \
        for (int xx = 0; xx < ow; xx++) {                                                  \
            const int32_t *k = kkh + (size_t)xx * K;                                       \
            int xmin = bh[2 * xx], xmax = bh[2 * xx + 1];                                  \
            const uint8_t *p = row + (size_t)xmin * 3;                                     \
            int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;                          \
            if (xmin + K <= w) {                                                           \
                for (int x = 0; x < K; x++) {                                              \
                    s0 += p[3 * x] * k[x];                                                 \
                    s1 += p[3 * x + 1] * k[x];                                             \
                    s2 += p[3 * x + 2] * k[x];                                             \
                }                                                                          \
            } else {                                                                       \
                for (int x = 0; x < xmax; x++) {                                           \
                    s0 += p[3 * x] * k[x];                                                 \
                    s1 += p[3 * x + 1] * k[x];                                             \
                    s2 += p[3 * x + 2] * k[x];                                             \
                }                                                                          \
            }                                                                              \
            o[3 * xx] = clip8(s0);                                                         \
            o[3 * xx + 1] = clip8(s1);                                                     \
            o[3 * xx + 2] = clip8(s2);                                                     \
        }                                                                                  \
    }
HPASS3(5)
HPASS3(7)

/* One row of the horizontal pass: row (w pixels of c channels) -> o (ow pixels). */
__attribute__((optimize("O3")))
static void hpass_row(const uint8_t *row, int w, int c, uint8_t *o, int ow, const axis *ax)
{
    const int kh = ax->ksize;
    const int32_t *kkh = ax->kk, *bh = ax->bounds;
    if (c == 3 && kh == 5) {
        hpass3_5(row, w, o, ow, kkh, bh);
        return;
    }
    if (c == 3 && kh == 7) {
        hpass3_7(row, w, o, ow, kkh, bh);
        return;
    }
    for (int xx = 0; xx < ow; xx++) {
        const int32_t *k = kkh + (size_t)xx * kh;
        int xmin = bh[2 * xx], xmax = bh[2 * xx + 1];
        const uint8_t *p = row + (size_t)xmin * c;
        if (c == 3) {
            int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            o[3 * xx] = clip8(s0);
            o[3 * xx + 1] = clip8(s1);
            o[3 * xx + 2] = clip8(s2);
        } else {
            int s0 = 1 << (PRECISION_BITS - 1);
            for (int x = 0; x < xmax; x++)
                s0 += p[x] * k[x];
            o[xx] = clip8(s0);
        }
    }
}

/* Vertical pass: output row yy = the taps of ay over the rows of vsrc (vstride apart), for
 * rowlen bytes per row. */
__attribute__((optimize("O3")))
static void vpass(const uint8_t *vsrc, size_t vstride, uint8_t *dst, size_t dstride, int oh,
                  int rowlen, const axis *ay)
{
    const int kv = ay->ksize;
    for (int yy = 0; yy < oh; yy++) {
        const int32_t *k = ay->kk + (size_t)yy * kv;
        int ymin = ay->bounds[2 * yy], ymax = ay->bounds[2 * yy + 1];
        uint8_t *o = dst + (size_t)yy * dstride;
        int acc[3 * 512];
        for (int x0b = 0; x0b < rowlen; x0b += 3 * 512) {
            int n = rowlen - x0b < 3 * 512 ? rowlen - x0b : 3 * 512;
            for (int x = 0; x < n; x++)
                acc[x] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *r = vsrc + (size_t)(y + ymin) * vstride + x0b;
                int32_t kw = k[y];
                for (int x = 0; x < n; x++)
                    acc[x] += r[x] * kw;
            }
            for (int x = 0; x < n; x++)
                o[x0b + x] = clip8(acc[x]);
        }
    }
}

/* ------------------------------------------------------------------ AVX2 passes -- */
#if RS_HAVE_V3
/* Transpose 8 rows of n bytes: byte j of row r goes to q[8j + r]. */
RS_TARGET_V3 static void t8(const uint8_t *const r[8], int n, uint8_t *q)
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

/* The inverse of t8 for nv <= 8 rows: q[8j + r] -> byte j of row r (rows r < nv only).
 * Per 16 columns: a byte shuffle pairs columns (2i, 2i + 1) per row into 16-bit words,
 * then an 8 x 8 transpose of words. */
RS_TARGET_V3 static void ut8(const uint8_t *q, int n, uint8_t *const o[8], int nv)
{
    const __m128i pairs = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m128i b[8], t[8], u[8], r[8];
        for (int i = 0; i < 8; i++)
            b[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q + 8 * (j + 2 * i))),
                                    pairs);
        for (int i = 0; i < 4; i++) {
            t[2 * i] = _mm_unpacklo_epi16(b[2 * i], b[2 * i + 1]);
            t[2 * i + 1] = _mm_unpackhi_epi16(b[2 * i], b[2 * i + 1]);
        }
        u[0] = _mm_unpacklo_epi32(t[0], t[2]), u[1] = _mm_unpackhi_epi32(t[0], t[2]);
        u[2] = _mm_unpacklo_epi32(t[1], t[3]), u[3] = _mm_unpackhi_epi32(t[1], t[3]);
        u[4] = _mm_unpacklo_epi32(t[4], t[6]), u[5] = _mm_unpackhi_epi32(t[4], t[6]);
        u[6] = _mm_unpacklo_epi32(t[5], t[7]), u[7] = _mm_unpackhi_epi32(t[5], t[7]);
        for (int i = 0; i < 4; i++) {
            r[2 * i] = _mm_unpacklo_epi64(u[i], u[i + 4]);
            r[2 * i + 1] = _mm_unpackhi_epi64(u[i], u[i + 4]);
        }
        for (int i = 0; i < nv; i++)
            _mm_storeu_si128((__m128i *)(o[i] + j), r[i]);
    }
    for (; j < n; j++)
        for (int i = 0; i < nv; i++)
            o[i][j] = q[8 * j + i];
}

/* Two 16-bit taps (a low, b high) broadcast to every 32-bit lane, for vpmaddwd. */
RS_TARGET_V3 static inline __m256i tap_pair(int32_t a, int32_t b)
{
    return _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)a | (uint32_t)b << 16));
}

RS_TARGET_V3 static inline __m128i pack8(__m256i s)
{
    s = _mm256_srai_epi32(s, PRECISION_BITS);
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return _mm_packus_epi16(w, w); /* saturation = Pillow's clip8 */
}

/* Rows [0, nr) of src (stride apart) -> tmp rows (ow * c bytes each, tstride apart),
 * c = 1 or 3, 8 rows at a time. Only the columns the taps read, [xlo, xhi), are
 * transposed into q. */
RS_TARGET_V3 static void hpass_v3(const uint8_t *src, size_t stride, int nr, int c,
                                  uint8_t *tmp, size_t tstride, int ow, const axis *ax,
                                  uint8_t *q, uint8_t *qo)
{
    const int K = ax->ksize;
    const int32_t *kk = ax->kk, *bd = ax->bounds;
    const int xlo = bd[0], xhi = bd[2 * ow - 2] + bd[2 * ow - 1];
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int y0 = 0; y0 < nr; y0 += 8) {
        int nv = nr - y0 < 8 ? nr - y0 : 8;
        const uint8_t *r[8];
        for (int i = 0; i < 8; i++)
            r[i] = src + (size_t)(y0 + (i < nv ? i : nv - 1)) * stride + (size_t)xlo * c;
        t8(r, (xhi - xlo) * c, q);
        uint8_t *o[8];
        for (int i = 0; i < 8; i++)
            o[i] = tmp + (size_t)(y0 + (i < nv ? i : 0)) * tstride;
        for (int xx = 0; xx < ow; xx++) {
            const int32_t *k = kk + (size_t)xx * K;
            int xmin = bd[2 * xx], xmax = bd[2 * xx + 1];
            const uint8_t *p = q + (size_t)(xmin - xlo) * c * 8;
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
                _mm_storel_epi64((__m128i *)(qo + 24 * (size_t)xx), pack8(s0));
                _mm_storel_epi64((__m128i *)(qo + 24 * (size_t)xx + 8), pack8(s1));
                _mm_storel_epi64((__m128i *)(qo + 24 * (size_t)xx + 16), pack8(s2));
            } else {
                __m256i s0 = half;
                for (int x = 0; x < xmax; x++, p += 8)
                    s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)),
                        _mm256_set1_epi32(k[x])));
                _mm_storel_epi64((__m128i *)(qo + 8 * (size_t)xx), pack8(s0));
            }
        }
        /* the outputs of the 8 rows, transposed back (scattering them byte by byte was
         * most of this pass's time) */
        ut8(qo, ow * c, o, nv);
    }
}

/* Vertical pass (as vpass), 32 bytes at a time in registers, two taps per vpmaddwd.
 * Each 22-bit tap k is split as k = 2048 kh + kl (kl in [0, 2048), kh = k >> 11, both fit
 * 16 bits), so sum p k = 2048 sum p kh + sum p kl: two exact 16 x 16 -> 32-bit multiply-add
 * chains over byte pixels, the same integer as the 32-bit products of the portable loop
 * (vpass), hence the same output. Rows are paired (y, y + 1); an odd last tap pairs with a
 * zero tap. In-lane unpacks put pixels {0-3,16-19}, {4-7,20-23}, {8-11,24-27},
 * {12-15,28-31} in the four accumulators; packus_epi32 then packus_epi16 restore the order. */
RS_TARGET_V3 static void vpass_v3(const uint8_t *vsrc, size_t vstride, uint8_t *dst,
                                  size_t dstride, int oh, int rowlen, const axis *ay)
{
    const int kv = ay->ksize;
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    const __m256i zero = _mm256_setzero_si256();
    for (int yy = 0; yy < oh; yy++) {
        const int32_t *k = ay->kk + (size_t)yy * kv;
        int ymin = ay->bounds[2 * yy], ymax = ay->bounds[2 * yy + 1];
        const uint8_t *base = vsrc + (size_t)ymin * vstride;
        uint8_t *o = dst + (size_t)yy * dstride;
        int x = 0;
        for (; x + 32 <= rowlen; x += 32) {
            __m256i h0 = zero, h1 = zero, h2 = zero, h3 = zero;
            __m256i l0 = half, l1 = half, l2 = half, l3 = half;
            const uint8_t *rp = base + x;
            for (int y = 0; y < ymax; y += 2, rp += 2 * vstride) {
                int two = y + 1 < ymax;
                int32_t k0 = k[y], k1 = two ? k[y + 1] : 0;
                __m256i kh = tap_pair(k0 >> 11, k1 >> 11);
                __m256i kl = tap_pair(k0 & 2047, k1 & 2047);
                __m256i va = _mm256_loadu_si256((const __m256i *)rp);
                __m256i vb = two ? _mm256_loadu_si256((const __m256i *)(rp + vstride)) : zero;
                __m256i alo = _mm256_unpacklo_epi8(va, zero), ahi = _mm256_unpackhi_epi8(va, zero);
                __m256i blo = _mm256_unpacklo_epi8(vb, zero), bhi = _mm256_unpackhi_epi8(vb, zero);
                __m256i p0 = _mm256_unpacklo_epi16(alo, blo), p1 = _mm256_unpackhi_epi16(alo, blo);
                __m256i p2 = _mm256_unpacklo_epi16(ahi, bhi), p3 = _mm256_unpackhi_epi16(ahi, bhi);
                h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(p0, kh));
                h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(p1, kh));
                h2 = _mm256_add_epi32(h2, _mm256_madd_epi16(p2, kh));
                h3 = _mm256_add_epi32(h3, _mm256_madd_epi16(p3, kh));
                l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(p0, kl));
                l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(p1, kl));
                l2 = _mm256_add_epi32(l2, _mm256_madd_epi16(p2, kl));
                l3 = _mm256_add_epi32(l3, _mm256_madd_epi16(p3, kl));
            }
#define RS_SUM(h, l) _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h, 11), l), PRECISION_BITS)
            __m256i w01 = _mm256_packus_epi32(RS_SUM(h0, l0), RS_SUM(h1, l1));
            __m256i w23 = _mm256_packus_epi32(RS_SUM(h2, l2), RS_SUM(h3, l3));
#undef RS_SUM
            _mm256_storeu_si256((__m256i *)(o + x), _mm256_packus_epi16(w01, w23));
        }
        for (; x < rowlen; x++) {
            int s = 1 << (PRECISION_BITS - 1);
            const uint8_t *rp = base + x;
            for (int y = 0; y < ymax; y++, rp += vstride)
                s += *rp * k[y];
            o[x] = clip8(s);
        }
    }
}

static int cpu_v3(void)
{
    static int cached = -1; /* a benign race: every thread computes the same */
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
    }
    return cached;
}
#else
static int cpu_v3(void) { return 0; }
#endif

/* ------------------------------------------------------------------ the resampler */

/* Resample the window (w x h pixels of c channels at src, rows stride apart) to dst (ow x oh,
 * rows dstride apart) with the taps of ax (horizontal; NULL: the axis is not filtered, ow
 * == w) and ay (vertical; NULL: oh == h), bounds relative to the window. tmp: room for the
 * rows the vertical pass reads, horizontally filtered (ow * c bytes each), then 64 bytes
 * of alignment and 8 rows of the columns the horizontal taps read, then 64 + 8 rows of
 * ow * c output bytes, transposed (AVX2 path). */
static void resample_window(const uint8_t *src, size_t stride, int w, int h, int c,
                            uint8_t *dst, size_t dstride, int ow, int oh, const axis *ax,
                            const axis *ay, uint8_t *tmp, int simd)
{
    if (!ax && !ay) {
        for (int y = 0; y < h; y++)
            memcpy(dst + (size_t)y * dstride, src + (size_t)y * stride, (size_t)w * c);
        return;
    }
    const uint8_t *vsrc = src;
    size_t vstride = stride;
    if (ax) {
        /* rows of the source the vertical pass reads */
        int yfirst = 0, ylast = h;
        if (ay) {
            yfirst = ay->bounds[0];
            ylast = ay->bounds[2 * oh - 2] + ay->bounds[2 * oh - 1];
        }
        uint8_t *t = ay ? tmp : dst;
        size_t tstride = ay ? (size_t)ow * c : dstride;
        int y = yfirst;
#if RS_HAVE_V3
        if (simd) {
            uint8_t *q = tmp + (size_t)ow * c * (size_t)(ylast - yfirst);
            q += (64 - ((uintptr_t)q & 63)) & 63;
            int ncols = ax->bounds[2 * ow - 2] + ax->bounds[2 * ow - 1] - ax->bounds[0];
            uint8_t *qo = q + (size_t)ncols * c * 8;
            qo += (64 - ((uintptr_t)qo & 63)) & 63;
            hpass_v3(src + (size_t)yfirst * stride, stride, ylast - yfirst, c, t, tstride, ow,
                     ax, q, qo);
            y = ylast;
        }
#endif
        for (; y < ylast; y++)
            hpass_row(src + (size_t)y * stride, w, c, t + (size_t)(y - yfirst) * tstride, ow,
                      ax);
        if (!ay)
            return;
        vsrc = tmp - (size_t)yfirst * ow * c; /* row y of the source at vsrc + y * vstride */
        vstride = (size_t)ow * c;
    }
#if RS_HAVE_V3
    if (simd) {
        vpass_v3(vsrc, vstride, dst, dstride, oh, ow * c, ay);
        return;
    }
#endif
    vpass(vsrc, vstride, dst, dstride, oh, ow * c, ay);
}

int image_resample(eqm_host *h, const char *who, const eqm_image *in, const double box[4],
                   int flags, eqm_image *out)
{
    if (!in || !out || !box || !in->data || !out->data)
        return host_ctx_set_error(h, EQM_ERR_INVAL, "%s: NULL image or box", who);
    const int filter = flags & EQM_RESAMPLE_FILTER_MASK;
    if ((filter != EQM_RESAMPLE_BILINEAR && filter != EQM_RESAMPLE_BICUBIC) ||
        (flags & ~(EQM_RESAMPLE_FILTER_MASK | EQM_RESAMPLE_CROP | EQM_RESAMPLE_PORTABLE)))
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "%s: flags 0x%x: use EQM_RESAMPLE_BILINEAR or "
                                  "EQM_RESAMPLE_BICUBIC, optionally with EQM_RESAMPLE_CROP "
                                  "and EQM_RESAMPLE_PORTABLE", who, (unsigned)flags);
    const int c = in->c;
    if (in->format != EQM_PIX_U8 || out->format != EQM_PIX_U8 || (c != 1 && c != 3) ||
        out->c != c || in->w <= 0 || in->h <= 0 || out->w <= 0 || out->h <= 0 ||
        in->stride < in->w * c || out->stride < out->w * c)
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "%s: expects 8-bit images with 1 or 3 channels, the same in "
                                  "both, and strides >= w * c (in %dx%dx%d stride %d format "
                                  "%u, out %dx%dx%d stride %d format %u)", who, in->w, in->h,
                                  c, in->stride, in->format, out->w, out->h, out->c,
                                  out->stride, out->format);
    const double bx = box[0], by = box[1], bw = box[2], bh = box[3];
    /* a box may pass the far edge by 1e-3 (boxes scaled in float) */
    if (!(bx >= 0 && by >= 0 && bw > 0 && bh > 0 && bx < in->w && by < in->h &&
          bx + bw <= in->w + 1e-3 && by + bh <= in->h + 1e-3))
        return host_ctx_set_error(h, EQM_ERR_INVAL,
                                  "%s: box (x %g, y %g, w %g, h %g) is not inside the %dx%d "
                                  "image", who, bx, by, bw, bh, in->w, in->h);
    /* the window the taps may read, and the box in its coordinates */
    int x0 = 0, y0 = 0, ww = in->w, wh = in->h;
    if (flags & EQM_RESAMPLE_CROP) {
        x0 = (int)floor(bx);
        y0 = (int)floor(by);
        int x1 = (int)ceil(bx + bw), y1 = (int)ceil(by + bh);
        x1 = x1 > in->w ? in->w : x1 < x0 + 1 ? x0 + 1 : x1;
        y1 = y1 > in->h ? in->h : y1 < y0 + 1 ? y0 + 1 : y1;
        ww = x1 - x0;
        wh = y1 - y0;
    }
    const double ix0 = bx - x0, ix1 = bx - x0 + bw, iy0 = by - y0, iy1 = by - y0 + bh;
    const int ow = out->w, oh = out->h;
    const int need_h = ow != ww || ix0 != 0.0 || ix1 != (double)ww;
    const int need_v = oh != wh || iy0 != 0.0 || iy1 != (double)wh;
    rs_thread *t = tls_get();
    if (!t)
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "%s: out of memory", who);
    /* room for coefficients the cache does not take */
    size_t coef_need = 0;
    if (need_h)
        coef_need += (size_t)(ksize_for(ix1 - ix0, ow, filter) + 2) * ow;
    if (need_v)
        coef_need += (size_t)(ksize_for(iy1 - iy0, oh, filter) + 2) * oh;
    if (grow((void **)&t->coef, &t->coef_cap, coef_need ? coef_need : 1, sizeof(int32_t)))
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "%s: out of memory", who);
    axis ax, ay;
    size_t off = 0;
    const cache_slot *sh = need_h ? axis_get(t, ww, ix0, ix1, ow, filter, NULL, &off, &ax) : NULL;
    if (need_v)
        axis_get(t, wh, iy0, iy1, oh, filter, sh, &off, &ay);
    size_t nrows = need_v ? (size_t)(ay.bounds[2 * oh - 2] + ay.bounds[2 * oh - 1] -
                                     ay.bounds[0])
                          : (size_t)wh;
    size_t ncols = need_h ? (size_t)(ax.bounds[2 * ow - 2] + ax.bounds[2 * ow - 1] -
                                     ax.bounds[0])
                          : 0;
    size_t tmp_need = (size_t)ow * c * nrows + 64 + ncols * c * 8 + 64 + (size_t)ow * c * 8 + 64;
    if (grow((void **)&t->buf, &t->buf_cap, tmp_need, 1))
        return host_ctx_set_error(h, EQM_ERR_NOMEM, "%s: out of memory", who);
    const uint8_t *src = (const uint8_t *)in->data + (size_t)y0 * in->stride + (size_t)x0 * c;
    const int simd = cpu_v3() && !(flags & EQM_RESAMPLE_PORTABLE);
    resample_window(src, (size_t)in->stride, ww, wh, c, out->data, (size_t)out->stride, ow, oh,
                    need_h ? &ax : NULL, need_v ? &ay : NULL, t->buf, simd);
    return EQM_OK;
}
