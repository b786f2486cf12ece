/* plugins/augment/color_jitter: RandomApply([ColorJitter(b, c, s, h)], p) as in torchvision
 * 0.14 on PIL images, the four operations in a random order.
 *
 * sample(): with probability p: jitter = 1, order = a uniform random permutation of
 * {0 brightness, 1 contrast, 2 saturation, 3 hue}, factors b ~ U[max(0, 1-B), 1+B] (same for
 * contrast C and saturation S), hue ~ U[-H, H]; a strength of 0 leaves its factor neutral.
 * Skipped: jitter = 0, order 0,1,2,3, factors 1, 1, 1, hue 0.
 * Record (METHOD.md §4, 9 values): jitter, order0..order3, brightness, contrast, saturation, hue.
 * apply(): each operation reads and writes 8-bit images (the quantisation of PIL):
 *   brightness: Image.blend(black, img, b)        (ImageEnhance.Brightness)
 *   contrast:   Image.blend(mean-gray, img, c), mean = int(mean(L(img)) + 0.5)
 *   saturation: Image.blend(L(img) as RGB, img, s) (ImageEnhance.Color)
 *   hue:        PIL RGB->HSV (8-bit), H += uint8(h*255) mod 256, HSV->RGB (Convert.c)
 *   An operation whose strength is 0 is not applied (torchvision passes None).
 * Left out: tensor-input semantics of torchvision (they differ from PIL's).
 */
#include <equimod/equimod.h>

#include <math.h>

#include "../aug_common.h"

typedef struct cj_opts {
    double brightness, contrast, saturation, hue, p;
} cj_opts;

typedef struct hue_tables hue_tables;

typedef struct cj {
    aug_head h;
    cj_opts o;
    hue_tables *tables; /* built at create when hue > 0 */
    const uint8_t *(*run)(const struct cj *g, const float *p, const uint8_t *cur,
                          uint8_t *const *buf, size_t npix, int c); /* CPU-dispatched core */
} cj;

static hue_tables *hue_tables_new(const eqm_host_api *api, eqm_host *host);
static const uint8_t *cj_run_v0(const cj *g, const float *p, const uint8_t *cur,
                                uint8_t *const *buf, size_t npix, int c);
#if AUG_HAVE_V3
static const uint8_t *cj_run_v3(const cj *g, const float *p, const uint8_t *cur,
                                uint8_t *const *buf, size_t npix, int c);
#endif

static int cj_init(void *self)
{
    cj *g = self;
    g->run = cj_run_v0;
#if AUG_HAVE_V3
    if (aug_use_v3())
        g->run = cj_run_v3;
#endif
    if (g->o.hue > 0) {
        g->tables = hue_tables_new(g->h.api, g->h.host);
        if (!g->tables)
            return g->h.api->set_error(g->h.host, EQM_ERR_NOMEM,
                                       "color_jitter: out of memory (hue tables)");
    }
    return EQM_OK;
}

static void cj_fini(void *self)
{
    cj *g = self;
    g->h.api->free(g->h.host, g->tables);
}

AUG_LIFECYCLE(cj, cj, "color_jitter", cj_init, cj_fini)
AUG_RECORD(cj, "jitter", "order0", "order1", "order2", "order3", "brightness", "contrast",
           "saturation", "hue")

static int cj_sample(const void *self, eqm_rng *rng, const eqm_augment_ctx *ctx,
                     const eqm_image *in, float *p)
{
    const cj *g = self;
    const eqm_host_api *api = g->h.api;
    p[0] = 0.0f;
    for (int k = 0; k < 4; k++)
        p[1 + k] = (float)k;
    p[5] = p[6] = p[7] = 1.0f;
    p[8] = 0.0f;
    if (!(api->rng_uniform(rng) < g->o.p))
        return EQM_OK;
    p[0] = 1.0f;
    int perm[4] = {0, 1, 2, 3};
    for (int k = 3; k > 0; k--) {
        int j = (int)api->rng_below(rng, (uint64_t)k + 1);
        int t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
    for (int k = 0; k < 4; k++)
        p[1 + k] = (float)perm[k];
    const double s3[3] = {g->o.brightness, g->o.contrast, g->o.saturation};
    for (int k = 0; k < 3; k++)
        if (s3[k] > 0) {
            double lo = 1 - s3[k] < 0 ? 0 : 1 - s3[k], hi = 1 + s3[k];
            p[5 + k] = (float)(lo + (hi - lo) * api->rng_uniform(rng));
        }
    if (g->o.hue > 0)
        p[8] = (float)(-g->o.hue + 2 * g->o.hue * api->rng_uniform(rng));
    return EQM_OK;
}

static size_t cj_scratch(const void *self, const eqm_image *in)
{
    return (size_t)in->w * in->h * in->c * 2 + 64;
}

/* Packed images (stride = w*c) of n pixels below. */
/* Image.blend(constant image `base`, img, a) on n values, computed directly (float32, as
 * Blend.c) in a loop the compiler vectorises; equal to a 256-entry table of aug_blend. */
AUG_INLINE void op_blend_const(const uint8_t *s, uint8_t *o, size_t n, int base, float a, int v3)
{
#if AUG_HAVE_V3
    if (v3) {
        aug_blend_row_v3(s, NULL, base, o, n, a);
        return;
    }
#else
    (void)v3;
#endif
    const float fb = (float)base;
    if (a >= 0 && a <= 1.0f) {
        for (size_t x = 0; x < n; x++)
            o[x] = (uint8_t)(int)(fb + a * (float)((int)s[x] - base));
    } else {
        for (size_t x = 0; x < n; x++) {
            float t = fb + a * (float)((int)s[x] - base);
            t = t < 0.0f ? 0.0f : t > 255.0f ? 255.0f : t;
            o[x] = (uint8_t)(int)t;
        }
    }
}

/* ImageEnhance.Brightness: blend with black. */
AUG_INLINE void op_brightness(const uint8_t *s, uint8_t *o, size_t nval, float a, int v3)
{
    op_blend_const(s, o, nval, 0, a, v3);
}

/* ImageEnhance.Contrast: blend with the grey of the rounded mean luma. */
AUG_INLINE void op_contrast(const uint8_t *s, uint8_t *o, size_t npix, int c, float a, int v3)
{
    uint64_t sum = 0;
#if AUG_HAVE_V3
    if (v3 && c == 3) {
        uint8_t lum[1024];
        for (size_t base = 0; base < npix; base += 1024) {
            size_t n = npix - base < 1024 ? npix - base : 1024;
            aug_luma_row_v3(s + 3 * base, lum, n);
            for (size_t i = 0; i < n; i++)
                sum += lum[i];
        }
    } else
#endif
    if (c == 3)
        for (size_t i = 0; i < npix; i++)
            sum += aug_luma(s + 3 * i);
    else
        for (size_t i = 0; i < npix; i++)
            sum += s[i];
    int mean = (int)((double)sum / (double)npix + 0.5);
    op_blend_const(s, o, npix * c, mean, a, v3);
}

/* Written as contiguous loops over values (luma replicated per channel first) so that the
 * compiler vectorises them; the arithmetic is Image.blend's, value by value. */
AUG_INLINE void op_saturation(const uint8_t *s, uint8_t *o, size_t npix, int c, float a, int v3)
{
    if (c != 3) {
        memcpy(o, s, npix * c);
        return;
    }
    uint8_t lum[3 * 1024];
#if AUG_HAVE_V3
    if (v3) {
        uint8_t l1[1024];
        for (size_t base = 0; base < npix; base += 1024) {
            size_t n = npix - base < 1024 ? npix - base : 1024;
            aug_luma_row_v3(s + 3 * base, l1, n);
            for (size_t i = 0; i < n; i++)
                lum[3 * i] = lum[3 * i + 1] = lum[3 * i + 2] = l1[i];
            aug_blend_row_v3(s + 3 * base, lum, 0, o + 3 * base, 3 * n, a);
        }
        return;
    }
#else
    (void)v3;
#endif
    for (size_t base = 0; base < npix; base += 1024) {
        size_t n = npix - base < 1024 ? npix - base : 1024, nv = 3 * n;
        const uint8_t *sp = s + 3 * base;
        uint8_t *op = o + 3 * base;
        for (size_t i = 0; i < n; i++) {
            uint8_t l = aug_luma(sp + 3 * i);
            lum[3 * i] = lum[3 * i + 1] = lum[3 * i + 2] = l;
        }
        if (a >= 0 && a <= 1.0f) {
            for (size_t x = 0; x < nv; x++)
                op[x] = (uint8_t)(int)((float)lum[x] + a * (float)((int)sp[x] - (int)lum[x]));
        } else {
            for (size_t x = 0; x < nv; x++) {
                float t = (float)lum[x] + a * (float)((int)sp[x] - (int)lum[x]);
                t = t < 0.0f ? 0.0f : t > 255.0f ? 255.0f : t;
                op[x] = (uint8_t)(int)t;
            }
        }
    }
}

AUG_INLINE uint8_t clip8i(int v) { return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v; }

/* Pillow Convert.c rgb2hsv_row for one pixel with maxc != minc: the 8-bit hue and
 * saturation, with Pillow's float/double operations in Pillow's order. fmod(x, 1) for x in
 * [5/6, 2) is x - 1 when x >= 1 (exact). Used to build the tables below. */
static void ref_hs(int r, int g, int b, uint8_t *uh, uint8_t *us)
{
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    float cr = (float)(maxc - minc);
    float sat = cr / (float)maxc;
    float rc = ((float)(maxc - r)) / cr, gc = ((float)(maxc - g)) / cr, bc = ((float)(maxc - b)) / cr;
    float h;
    if (r == maxc)
        h = bc - gc;
    else if (g == maxc)
        h = (float)(2.0 + rc - bc);
    else
        h = (float)(4.0 + gc - rc);
    double x = h / 6.0 + 1.0;
    if (x >= 1.0)
        x -= 1.0;
    h = (float)x;
    *uh = clip8i((int)(h * 255.0));
    *us = clip8i((int)(sat * 255.0));
}

/* Tables making op_hue division-free and bit-identical to Pillow (built at create):
 *  hue8[M][m][cr][d]: 8-bit hue, M = max channel (first of r, g, b equal to the max),
 *      m = which of the other two (in r, g, b order) is a minimum (0 the first, 1 the second;
 *      both minimal counts as 0), cr = max - min, d = max - (the other one). The hue only
 *      depends on these differences.
 *  sat8[cr][maxc]: 8-bit saturation.
 *  hsv2rgb: frac[hh] (f of Pillow), fs[ss], shift[hh] (from i, Pillow's segment). */
typedef struct hue_tables {
    uint8_t hue8[3][2][256][256];
    uint8_t sat8[256][256];
    uint8_t shift[256][4]; /* [hh]: bit shifts of v, p, q, t (8 x index) giving r, g, b; 4th unused */
    float frac[256], fs[256];
} hue_tables;

static void hue_tables_build(hue_tables *t)
{
    /* Pillow's (r, g, b) per segment i as indices into {v, p, q, t}, times 8 (bit shifts) */
    static const uint8_t sel[6][3] = {{0, 24, 8}, {16, 0, 8}, {8, 0, 24}, {8, 16, 0}, {24, 8, 0}, {0, 8, 16}};
    for (int M = 0; M < 3; M++)
        for (int m = 0; m < 2; m++)
            for (int cr = 1; cr < 256; cr++)
                for (int d = 0; d <= cr; d++) {
                    int ch[3];
                    int o1 = M == 0 ? 1 : 0, o2 = M == 2 ? 1 : 2; /* the other two, in order */
                    ch[M] = cr;
                    ch[m == 0 ? o1 : o2] = 0;
                    ch[m == 0 ? o2 : o1] = cr - d;
                    /* keep M the first maximum: an earlier channel may not equal cr */
                    uint8_t uh, us;
                    ref_hs(ch[0], ch[1], ch[2], &uh, &us);
                    t->hue8[M][m][cr][d] = uh;
                }
    for (int cr = 1; cr < 256; cr++)
        for (int mx = cr; mx < 256; mx++) {
            uint8_t uh, us;
            ref_hs(mx, mx - cr, mx - cr, &uh, &us);
            t->sat8[cr][mx] = us;
        }
    for (int hh = 0; hh < 256; hh++) {
        int i = (int)((float)hh * 6.0 / 255.0);
        for (int k = 0; k < 3; k++)
            t->shift[hh][k] = sel[i % 6][k];
        t->shift[hh][3] = 0;
        t->frac[hh] = (float)((float)hh * 6.0 / 255.0 - (float)i);
    }
    for (int ss = 0; ss < 256; ss++)
        t->fs[ss] = (float)(((float)ss) / 255.0);
}

static hue_tables *hue_tables_new(const eqm_host_api *api, eqm_host *host)
{
    hue_tables *t = api->alloc(host, sizeof *t, 64);
    if (t)
        hue_tables_build(t);
    return t;
}

/* Pillow RGB -> HSV, H += dh (mod 256), HSV -> RGB (Convert.c), through the tables. */
AUG_INLINE void op_hue(const hue_tables *T, const uint8_t *s, uint8_t *o, size_t npix, int c, float hue)
{
    if (c != 3) {
        memcpy(o, s, npix * c);
        return;
    }
    /* Branch-free per pixel (natural images make these branches unpredictable): a grey
     * pixel (cr = 0) reads hue8[0][0][0][0] = 0 and sat8[0][v] = 0, and with s = 0 the
     * HSV -> RGB formulas give v, v, v exactly like Pillow's special case. */
    uint8_t dh = (uint8_t)(int)((double)hue * 255.0);
    /* Passes over blocks of 256 pixels: (1) table indices and v, then hh, ss from the tables,
     * (2) the rounded products p, q, t in float, (3) the selection by hue segment. Pillow computes
     * p = round(v (1 - fs)), q = round(v (1 - fs f)) and t = round(v (1 - fs (1 - f))) in
     * double ((float) operands); the float evaluation below equals it for every v, ss, hh in
     * 0..255 (all 2^24 combinations: tests/data/hue_float_check.c, run by
     * tests/data/exhaustive_color.sh, which also compares with Pillow on all colours). */
    uint8_t hb[256], sb[256], vb[256];
    uint32_t wb[256];
    int32_t ib[256], jb[256];
    const uint8_t *h8 = (const uint8_t *)T->hue8, *s8 = (const uint8_t *)T->sat8; /* flat */
    for (size_t base = 0; base < npix; base += 256) {
        size_t n = npix - base < 256 ? npix - base : 256;
        const uint8_t *sp = s + 3 * base;
        for (size_t i = 0; i < n; i++) { /* branch-free integer work (vectorisable) */
            int r = sp[3 * i], g = sp[3 * i + 1], b = sp[3 * i + 2];
            int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
            int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
            int cr = maxc - minc;
            int M = r == maxc ? 0 : g == maxc ? 1 : 2;
            int o1 = M == 0 ? g : r, o2 = M == 2 ? g : b; /* the other two, in r, g, b order */
            int m = o1 == minc ? 0 : 1;
            int d = maxc - (m == 0 ? o2 : o1);
            ib[i] = (((M * 2 + m) * 256 + cr) * 256) + d; /* into hue8 */
            jb[i] = cr * 256 + maxc;                      /* into sat8 */
            vb[i] = (uint8_t)maxc;
        }
        for (size_t i = 0; i < n; i++) { /* the table lookups */
            hb[i] = (uint8_t)(h8[ib[i]] + dh);
            sb[i] = s8[jb[i]];
        }
        for (size_t i = 0; i < n; i++) {
            float f = T->frac[hb[i]], fs = T->fs[sb[i]], v = (float)vb[i];
            float pp = v * (1.0f - fs), q = v * (1.0f - fs * f), t = v * (1.0f - fs * (1.0f - f));
            int ip = (int)pp, iq = (int)q, it = (int)t;
            ip += pp - (float)ip >= 0.5f;
            iq += q - (float)iq >= 0.5f;
            it += t - (float)it >= 0.5f;
            /* v, p, q, t (all in 0..v: no clipping needed) as the bytes of one word */
            wb[i] = (uint32_t)vb[i] | (uint32_t)ip << 8 | (uint32_t)iq << 16 | (uint32_t)it << 24;
        }
        uint8_t *op = o + 3 * base;
        for (size_t i = 0; i < n; i++) {
            uint32_t w = wb[i];
            const uint8_t *sl = T->shift[hb[i]];
            op[3 * i] = (uint8_t)(w >> sl[0]);
            op[3 * i + 1] = (uint8_t)(w >> sl[1]);
            op[3 * i + 2] = (uint8_t)(w >> sl[2]);
        }
    }
}

/* The four operations in the order of p[1..4] (validated by the caller), ping-ponging
 * between buf[0] and buf[1]; returns the buffer holding the result (or `cur` if none ran). */
AUG_INLINE const uint8_t *cj_run_impl(const cj *g, const float *p, const uint8_t *cur,
                                      uint8_t *const *buf, size_t npix, int c, int v3)
{
    const size_t nval = npix * c;
    const double strength[4] = {g->o.brightness, g->o.contrast, g->o.saturation, g->o.hue};
    int used = 0, active = 0;
    for (int k = 0; k < 4; k++)
        active += strength[(int)p[1 + k]] > 0;
    for (int k = 0; k < 4; k++) {
        int op = (int)p[1 + k];
        if (!(strength[op] > 0))
            continue;
        uint8_t *dst = buf[used & 1];
        if (dst == cur)
            dst = buf[(used + 1) & 1];
        if (used == active - 1 && buf[2]) /* the last operation writes the output */
            dst = buf[2];
        switch (op) {
        case 0: op_brightness(cur, dst, nval, p[5], v3); break;
        case 1: op_contrast(cur, dst, npix, c, p[6], v3); break;
        case 2: op_saturation(cur, dst, npix, c, p[7], v3); break;
        default: op_hue(g->tables, cur, dst, npix, c, p[8]); break;
        }
        cur = dst;
        used++;
    }
    return cur;
}

static const uint8_t *cj_run_v0(const cj *g, const float *p, const uint8_t *cur,
                                uint8_t *const *buf, size_t npix, int c)
{
    return cj_run_impl(g, p, cur, buf, npix, c, 0);
}
#if AUG_HAVE_V3
AUG_TARGET_V3 static const uint8_t *cj_run_v3(const cj *g, const float *p, const uint8_t *cur,
                                              uint8_t *const *buf, size_t npix, int c)
{
    return cj_run_impl(g, p, cur, buf, npix, c, 1);
}
#endif

AUG_APPLY(cj, cj, "color_jitter", 1)
{
    if (p[8] < -0.5f || p[8] > 0.5f)
        return g->h.api->set_error(g->h.host, EQM_ERR_INVAL, "color_jitter: hue factor %g outside [-0.5, 0.5]",
                                 (double)p[8]);
    const int c = in->c;
    const size_t npix = (size_t)in->w * in->h, nval = npix * c;
    const int packed_out = out->stride == in->w * c;
    /* buf[2]: the output itself when packed and apart from the input (the last operation
     * writes there: no copy) */
    uint8_t *buf[3] = {scratch, (uint8_t *)scratch + nval,
                       packed_out && out->data != in->data ? out->data : NULL};
    /* the first operation reads `in` (packed copy if strided) */
    const uint8_t *cur;
    if (in->stride == in->w * c) {
        cur = in->data;
    } else {
        eqm_image t = {in->w, in->h, c, in->w * c, EQM_PIX_U8, buf[1]};
        aug_copy(in, &t);
        cur = buf[1];
    }
    for (int k = 0; k < 4; k++) {
        int op = (int)p[1 + k];
        if (op < 0 || op > 3)
            return g->h.api->set_error(g->h.host, EQM_ERR_INVAL, "color_jitter: order%d = %g is not 0..3", k,
                                     (double)p[1 + k]);
    }
    cur = g->run(g, p, cur, buf, npix, c);
    if (cur == out->data)
        return EQM_OK;
    if (packed_out) {
        memcpy(out->data, cur, nval);
    } else {
        eqm_image t = {in->w, in->h, c, in->w * c, EQM_PIX_U8, (void *)cur};
        aug_copy(&t, out);
    }
    return EQM_OK;
}

static const eqm_param_spec cj_params[] = {
    {"brightness", EQM_PARAM_FLOAT, offsetof(cj_opts, brightness), "0.4", 0, 1e3, NULL,
     "brightness factor ~ U[max(0, 1-B), 1+B]; 0 = off"},
    {"contrast", EQM_PARAM_FLOAT, offsetof(cj_opts, contrast), "0.4", 0, 1e3, NULL,
     "contrast factor ~ U[max(0, 1-C), 1+C]; 0 = off"},
    {"saturation", EQM_PARAM_FLOAT, offsetof(cj_opts, saturation), "0.4", 0, 1e3, NULL,
     "saturation factor ~ U[max(0, 1-S), 1+S]; 0 = off"},
    {"hue", EQM_PARAM_FLOAT, offsetof(cj_opts, hue), "0.1", 0, 0.5, NULL,
     "hue shift ~ U[-H, H] (fraction of the hue circle); 0 = off"},
    {"p", EQM_PARAM_FLOAT, offsetof(cj_opts, p), "0.8", 0, 1, NULL, "probability of jittering"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

AUG_PLUGIN(cj, "color_jitter",
           "RandomApply(ColorJitter, p), random op order, PIL semantics: t = applied, order[4], "
           "b, c, s, h", cj_opts, aug_same_shape, cj_scratch, NULL, NULL) /* 1.1: no resampling */
