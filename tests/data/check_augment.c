/* tests/data/check_augment.c: every augmentation plugin (loaded from its .so) against
 * torchvision 0.14 / Pillow 9.4 on real CIFAR-10 images (fixtures/augment.bin.gz, made by
 * gen_fixtures.py), and the parameter draws of sample().
 *
 * Tolerances (max |difference| per value, uint8 levels):
 *   random_resized_crop, resize (bicubic and bilinear, antialiased), center_crop, flip,
 *   grayscale, solarize: 0 (bit-exact: same fixed-point arithmetic as Pillow);
 *   normalize: 0 (float32, same operation order as ToTensor + Normalize);
 *   color_jitter (brightness, contrast, saturation, hue, chains): 0 (Pillow's float blend and
 *   HSV code reproduced);
 *   gaussian_blur: 1 level, on at most 2% of values (separable float32 sums vs torch's
 *   direct 2-D convolution can round a value near .5 the other way).
 * The plugins pick an AVX2 build of their hot loops at run time when the CPU has it; the
 * suite runs every fixture case through both (EQM_AUG_GENERIC=1 forces the generic one).
 */
#include "config.h"

#include <math.h>

#include "data_util.h"

static eqm_registry *reg;

typedef struct fx_case {
    char op[25];
    int img, n_params;
    float p[16];
    int opt[4];
    int w, h, c, fmt;
    const unsigned char *data;
} fx_case;

static unsigned char *fx_raw;
static size_t fx_n;
static const unsigned char *fx_imgs;
static int fx_nimg, fx_ncase;
static fx_case *fx_cases;

static int32_t rd32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void fx_load(void)
{
    const char *src = getenv("EQM_SRCDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/fixtures/augment.bin.gz", src ? src : EQM_SRCDIR);
    const eqm_host_api *api = host_api();
    eqm_host *h = host_ctx_create("test");
    void *d;
    if (api->io->read_file(h, path, &d, &fx_n)) {
        fprintf(stderr, "fixtures: %s\n", host_ctx_error(h));
        exit(99);
    }
    host_ctx_destroy(h);
    fx_raw = d;
    if (fx_n < 16 || memcmp(fx_raw, "EQMAUGF1", 8)) {
        fprintf(stderr, "%s: not an EQMAUGF1 fixture file\n", path);
        exit(99);
    }
    const unsigned char *p = fx_raw + 8;
    fx_nimg = rd32(p);
    p += 4;
    fx_imgs = p;
    p += (size_t)fx_nimg * 3072;
    fx_ncase = rd32(p);
    p += 4;
    fx_cases = calloc((size_t)fx_ncase, sizeof *fx_cases);
    for (int i = 0; i < fx_ncase; i++) {
        fx_case *c = &fx_cases[i];
        memcpy(c->op, p, 24);
        p += 24;
        c->img = rd32(p);
        c->n_params = rd32(p + 4);
        memcpy(c->p, p + 8, 64);
        p += 8 + 64;
        for (int k = 0; k < 4; k++)
            c->opt[k] = rd32(p + 4 * k);
        p += 16;
        c->w = rd32(p);
        c->h = rd32(p + 4);
        c->c = rd32(p + 8);
        c->fmt = rd32(p + 12);
        p += 16;
        c->data = p;
        p += (size_t)c->w * c->h * c->c * (c->fmt ? 4 : 1);
        if ((size_t)(p - fx_raw) > fx_n) {
            fprintf(stderr, "%s: truncated at case %d\n", path, i);
            exit(99);
        }
    }
}

typedef struct inst {
    const eqm_plugin *pl;
    void *self, *opts;
    eqm_host *host;
    eqm_config *cfg;
} inst;

/* Create plugin `name` with options "key=value" lines (NULL-terminated). */
static inst mk(const char *name, const char *const *kv)
{
    inst in;
    memset(&in, 0, sizeof in);
    in.cfg = config_new_empty();
    char line[256], err[1024];
    snprintf(line, sizeof line, "augment.x.plugin=%s", name);
    ck_assert(config_set(in.cfg, line, err, sizeof err) == 0);
    for (int i = 0; kv && kv[i]; i++) {
        snprintf(line, sizeof line, "augment.x.%s", kv[i]);
        ck_assert_msg(config_set(in.cfg, line, err, sizeof err) == 0, "%s", err);
    }
    ck_assert_msg(config_bind_plugin(in.cfg, reg, "augment.x", EQM_KIND_AUGMENT, &in.pl, &in.opts,
                                     err, sizeof err) == 0, "%s", err);
    in.host = host_ctx_create(name);
    ck_assert_msg(in.pl->ops.augment.create(host_api(), in.host, in.opts, &in.self) == 0, "%s",
                  host_ctx_error(in.host));
    return in;
}

static void rm(inst *in)
{
    in->pl->ops.augment.destroy(in->self);
    host_ctx_destroy(in->host);
    free(in->opts);
    config_destroy(in->cfg);
}

/* Run one fixture case; returns max abs diff, counts differing values in *ndiff. */
static double run_case(const fx_case *c, int *ndiff, int *nval)
{
    char o1[64], o2[64], o3[64], o4[64], o5[64];
    const char *kv[8] = {NULL};
    const char *name = NULL;
    if (!strcmp(c->op, "rrc")) {
        name = "random_resized_crop";
        snprintf(o1, sizeof o1, "size=%d", c->opt[0]);
        snprintf(o2, sizeof o2, "interpolation=%s", c->opt[1] ? "bicubic" : "bilinear");
        kv[0] = o1;
        kv[1] = o2;
    } else if (!strcmp(c->op, "flip")) {
        name = "horizontal_flip";
    } else if (!strcmp(c->op, "gray")) {
        name = "grayscale";
    } else if (!strcmp(c->op, "solarize")) {
        name = "solarize";
        snprintf(o1, sizeof o1, "threshold=%d", c->opt[0]);
        kv[0] = o1;
    } else if (!strcmp(c->op, "normalize")) {
        name = "normalize";
    } else if (!strcmp(c->op, "jitter")) {
        name = "color_jitter";
        int m = c->opt[0];
        snprintf(o1, sizeof o1, "brightness=%s", m & 1 ? "0.5" : "0");
        snprintf(o2, sizeof o2, "contrast=%s", m & 2 ? "0.5" : "0");
        snprintf(o3, sizeof o3, "saturation=%s", m & 4 ? "1" : "0");
        snprintf(o4, sizeof o4, "hue=%s", m & 8 ? "0.5" : "0");
        kv[0] = o1;
        kv[1] = o2;
        kv[2] = o3;
        kv[3] = o4;
    } else if (!strcmp(c->op, "blur")) {
        name = "gaussian_blur";
        snprintf(o5, sizeof o5, "kernel_size=%d", c->opt[0]);
        kv[0] = o5;
    } else if (!strcmp(c->op, "resize")) {
        name = "resize";
        snprintf(o1, sizeof o1, "size=%d", c->opt[0]);
        snprintf(o2, sizeof o2, "interpolation=%s", c->opt[1] ? "bicubic" : "bilinear");
        kv[0] = o1;
        kv[1] = o2;
    } else if (!strcmp(c->op, "center_crop")) {
        name = "center_crop";
        snprintf(o1, sizeof o1, "size=%d", c->opt[0]);
        kv[0] = o1;
    }
    ck_assert_msg(name, "unknown fixture op %s", c->op);
    inst in = mk(name, kv);
    const eqm_augment_ops *ops = &in.pl->ops.augment;
    ck_assert_int_eq(ops->n_params(in.self), c->n_params);
    eqm_image im = {32, 32, 3, 96, EQM_PIX_U8, (void *)(fx_imgs + (size_t)c->img * 3072)};
    int w, h, ch;
    uint32_t f;
    ck_assert_int_eq(ops->out_shape(in.self, &im, &w, &h, &ch, &f), 0);
    ck_assert_msg(w == c->w && h == c->h && ch == c->c && (int)f == c->fmt,
                  "%s: shape %dx%dx%d/%u, fixture %dx%dx%d/%d", c->op, w, h, ch, f, c->w, c->h, c->c, c->fmt);
    size_t nv = (size_t)w * h * ch;
    /* strided output, to check stride handling: 3 extra values per row */
    int stride = w * ch + 3;
    void *out = calloc((size_t)stride * h, f ? 4 : 1);
    size_t sb = ops->scratch_bytes ? ops->scratch_bytes(in.self, &im) : 0;
    void *scr = malloc(sb + 1);
    eqm_image o = {w, h, ch, stride, f, out};
    ck_assert_msg(ops->apply(in.self, c->p, &im, &o, scr) == 0, "%s", host_ctx_error(in.host));
    double md = 0;
    *ndiff = 0;
    *nval = (int)nv;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w * ch; x++) {
            double a, b;
            if (f) {
                a = ((float *)out)[(size_t)y * stride + x];
                float fv;
                memcpy(&fv, c->data + 4 * ((size_t)y * w * ch + x), 4);
                b = fv;
            } else {
                a = ((unsigned char *)out)[(size_t)y * stride + x];
                b = c->data[(size_t)y * w * ch + x];
            }
            double d = fabs(a - b);
            if (d > 0)
                (*ndiff)++;
            if (d > md)
                md = d;
        }
    free(out);
    free(scr);
    rm(&in);
    return md;
}

static void check_op_once(const char *op, double tol, double frac);
static void check_op(const char *op, double tol, double frac)
{
    unsetenv("EQM_AUG_GENERIC");
    check_op_once(op, tol, frac);
    setenv("EQM_AUG_GENERIC", "1", 1);
    check_op_once(op, tol, frac);
    unsetenv("EQM_AUG_GENERIC");
}

static void check_op_once(const char *op, double tol, double frac)
{
    int n = 0, tot_diff = 0, tot = 0;
    for (int i = 0; i < fx_ncase; i++) {
        const fx_case *c = &fx_cases[i];
        if (strcmp(c->op, op))
            continue;
        int nd, nv;
        double md = run_case(c, &nd, &nv);
        ck_assert_msg(md <= tol, "%s case %d (image %d, params %g %g %g %g %g %g %g %g %g): max diff %g > %g",
                      op, i, c->img, c->p[0], c->p[1], c->p[2], c->p[3], c->p[4], c->p[5], c->p[6],
                      c->p[7], c->p[8], md, tol);
        tot_diff += nd;
        tot += nv;
        n++;
    }
    ck_assert_msg(n > 0, "no fixture cases for %s", op);
    ck_assert_msg(tot_diff <= frac * tot, "%s: %d of %d values differ", op, tot_diff, tot);
}

START_TEST(test_rrc) { check_op("rrc", 0, 0); }
END_TEST
START_TEST(test_flip) { check_op("flip", 0, 0); }
END_TEST
START_TEST(test_gray) { check_op("gray", 0, 0); }
END_TEST
START_TEST(test_solarize) { check_op("solarize", 0, 0); }
END_TEST
START_TEST(test_normalize) { check_op("normalize", 0, 0); }
END_TEST
START_TEST(test_jitter) { check_op("jitter", 0, 0); }
END_TEST
START_TEST(test_blur) { check_op("blur", 1, 0.02); }
END_TEST
START_TEST(test_resize) { check_op("resize", 0, 0); }
END_TEST
START_TEST(test_center_crop) { check_op("center_crop", 0, 0); }
END_TEST

/* ---- sample() ---- */

static void draw(inst *in, int w, int h, int n, float *p, uint64_t key)
{
    const eqm_host_api *api = host_api();
    eqm_image im = {w, h, 3, w * 3, EQM_PIX_U8, NULL};
    eqm_augment_ctx ctx = {sizeof ctx, w, h};
    int np = in->pl->ops.augment.n_params(in->self);
    for (int i = 0; i < n; i++) {
        eqm_rng r;
        api->rng_seed(&r, 1234, key, (uint64_t)i, 1);
        ck_assert_int_eq(in->pl->ops.augment.sample(in->self, &r, &ctx, &im, p + (size_t)i * np), 0);
    }
}

START_TEST(test_sample_rrc)
{
    const char *kv[] = {"size=32", "scale_min=0.2", NULL};
    inst in = mk("random_resized_crop", kv);
    enum { N = 20000 };
    float *p = malloc(sizeof(float) * 4 * N);
    draw(&in, 32, 32, N, p, 1);
    double area = 0;
    for (int i = 0; i < N; i++) {
        float *t = p + 4 * i;
        ck_assert(t[0] >= 0 && t[1] >= 0 && t[2] >= 1 && t[3] >= 1);
        ck_assert(t[0] + t[2] <= 32 && t[1] + t[3] <= 32);
        ck_assert(t[0] == floorf(t[0]) && t[3] == floorf(t[3]));
        area += t[2] * t[3] / 1024.0;
    }
    /* mean crop area fraction: torchvision's get_params gives 0.5497 (20,000 draws,
     * /usr/bin/python3, RandomResizedCrop.get_params on a 32x32 image, scale (0.2, 1)) */
    ck_assert_msg(fabs(area / N - 0.5497) < 0.01, "mean area %g", area / N);
    rm(&in);
    /* impossible ratios: every try fails, centre crop with the ratio clamped to 2 */
    const char *kv2[] = {"size=32", "scale_min=1", "scale_max=1", "ratio_min=2", "ratio_max=3", NULL};
    in = mk("random_resized_crop", kv2);
    draw(&in, 32, 32, 50, p, 2);
    for (int i = 0; i < 50; i++) {
        ck_assert_float_eq(p[4 * i + 0], 8);
        ck_assert_float_eq(p[4 * i + 1], 0);
        ck_assert_float_eq(p[4 * i + 2], 16);
        ck_assert_float_eq(p[4 * i + 3], 32);
    }
    /* a tall image with ratio > allowed: h = H, w = round(H * ratio_max) */
    draw(&in, 100, 20, 5, p, 3);
    ck_assert_float_eq(p[2], 20);
    ck_assert_float_eq(p[3], 60);
    ck_assert_float_eq(p[1], 20);
    rm(&in);
    free(p);
}
END_TEST

START_TEST(test_sample_jitter)
{
    const char *kv[] = {"brightness=0.4", "contrast=0.4", "saturation=0.4", "hue=0.1", "p=0.8", NULL};
    inst in = mk("color_jitter", kv);
    enum { N = 20000 };
    float *p = malloc(sizeof(float) * 9 * N);
    draw(&in, 32, 32, N, p, 4);
    int applied = 0, first[4] = {0};
    for (int i = 0; i < N; i++) {
        float *t = p + 9 * i;
        if (t[0] == 0) {
            ck_assert(t[1] == 0 && t[2] == 1 && t[3] == 2 && t[4] == 3);
            ck_assert(t[5] == 1 && t[6] == 1 && t[7] == 1 && t[8] == 0);
            continue;
        }
        applied++;
        int seen = 0;
        for (int k = 0; k < 4; k++)
            seen |= 1 << (int)t[1 + k];
        ck_assert_int_eq(seen, 15);
        first[(int)t[1]]++;
        for (int k = 5; k < 8; k++)
            ck_assert(t[k] >= 0.6f && t[k] <= 1.4f);
        ck_assert(t[8] >= -0.1f && t[8] <= 0.1f);
    }
    ck_assert_msg(abs(applied - (int)(0.8 * N)) < 300, "applied %d of %d", applied, N);
    for (int k = 0; k < 4; k++)
        ck_assert_msg(abs(first[k] - applied / 4) < 300, "op %d first %d times", k, first[k]);
    rm(&in);
    const char *kv0[] = {"p=0", NULL};
    in = mk("color_jitter", kv0);
    draw(&in, 32, 32, 100, p, 5);
    for (int i = 0; i < 100; i++)
        ck_assert(p[9 * i] == 0 && p[9 * i + 5] == 1 && p[9 * i + 8] == 0);
    /* skipped jitter is the identity */
    unsigned char src[3072], dst[3072];
    for (int k = 0; k < 3072; k++)
        src[k] = (unsigned char)(k * 7);
    eqm_image a = {32, 32, 3, 96, EQM_PIX_U8, src}, b = {32, 32, 3, 96, EQM_PIX_U8, dst};
    void *scr = malloc(in.pl->ops.augment.scratch_bytes(in.self, &a));
    ck_assert_int_eq(in.pl->ops.augment.apply(in.self, p, &a, &b, scr), 0);
    ck_assert(!memcmp(src, dst, 3072));
    free(scr);
    rm(&in);
    free(p);
}
END_TEST

START_TEST(test_sample_flags)
{
    float p[2 * 20000];
    const char *names[3] = {"horizontal_flip", "grayscale", "solarize"};
    const char *probs[3] = {"p=0.5", "p=0.2", "p=0.2"};
    const double want[3] = {0.5, 0.2, 0.2};
    for (int k = 0; k < 3; k++) {
        const char *kv[] = {probs[k], NULL};
        inst in = mk(names[k], kv);
        draw(&in, 32, 32, 20000, p, 10 + (uint64_t)k);
        int on = 0;
        for (int i = 0; i < 20000; i++) {
            ck_assert(p[i] == 0 || p[i] == 1);
            on += p[i] == 1;
        }
        ck_assert_msg(fabs(on / 20000.0 - want[k]) < 0.015, "%s: %d", names[k], on);
        rm(&in);
    }
    const char *kv[] = {"p=0.5", "sigma_min=0.1", "sigma_max=2.0", NULL};
    inst in = mk("gaussian_blur", kv);
    draw(&in, 32, 32, 20000, p, 20);
    int on = 0;
    for (int i = 0; i < 20000; i++) {
        if (p[2 * i] == 0) {
            ck_assert_float_eq(p[2 * i + 1], 0);
        } else {
            on++;
            ck_assert(p[2 * i + 1] >= 0.1f && p[2 * i + 1] <= 2.0f);
        }
    }
    ck_assert(fabs(on / 20000.0 - 0.5) < 0.015);
    rm(&in);
}
END_TEST

/* Bad parameters are refused with a message, never a crash. */
START_TEST(test_bad_params)
{
    inst in = mk("random_resized_crop", (const char *[]){"size=32", NULL});
    unsigned char src[3072] = {0}, dst[3072];
    eqm_image a = {32, 32, 3, 96, EQM_PIX_U8, src}, b = {32, 32, 3, 96, EQM_PIX_U8, dst};
    void *scr = malloc(in.pl->ops.augment.scratch_bytes(in.self, &a));
    float bad[4] = {20, 0, 20, 10};
    ck_assert_int_eq(in.pl->ops.augment.apply(in.self, bad, &a, &b, scr), EQM_ERR_INVAL);
    ck_assert(strstr(host_ctx_error(in.host), "outside"));
    free(scr);
    rm(&in);
    /* an augmentation fed float images (after normalize) says so */
    in = mk("horizontal_flip", NULL);
    float fsrc[3072];
    eqm_image fa = {32, 32, 3, 96, EQM_PIX_F32, fsrc};
    float one = 1;
    ck_assert_int_eq(in.pl->ops.augment.apply(in.self, &one, &fa, &b, NULL), EQM_ERR_INVAL);
    ck_assert(strstr(host_ctx_error(in.host), "normalize must be last"));
    rm(&in);
    /* normalize refuses malformed mean/std at create */
    eqm_config *cfg = config_new_empty();
    char err[1024];
    config_set(cfg, "augment.x.plugin=normalize", err, sizeof err);
    config_set(cfg, "augment.x.std=0.2,0,0.3", err, sizeof err);
    const eqm_plugin *pl;
    void *opts, *self;
    ck_assert_int_eq(config_bind_plugin(cfg, reg, "augment.x", EQM_KIND_AUGMENT, &pl, &opts, err, sizeof err), 0);
    eqm_host *h = host_ctx_create("n");
    ck_assert_int_eq(pl->ops.augment.create(host_api(), h, opts, &self), EQM_ERR_INVAL);
    ck_assert(strstr(host_ctx_error(h), "std"));
    host_ctx_destroy(h);
    free(opts);
    config_destroy(cfg);
}
END_TEST

int main(void)
{
    reg = du_registry();
    if (!reg)
        return 99;
    fx_load();
    Suite *s = suite_create("augment");
    TCase *tc = tcase_create("augment");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rrc);
    tcase_add_test(tc, test_flip);
    tcase_add_test(tc, test_gray);
    tcase_add_test(tc, test_solarize);
    tcase_add_test(tc, test_normalize);
    tcase_add_test(tc, test_jitter);
    tcase_add_test(tc, test_blur);
    tcase_add_test(tc, test_resize);
    tcase_add_test(tc, test_center_crop);
    tcase_add_test(tc, test_sample_rrc);
    tcase_add_test(tc, test_sample_jitter);
    tcase_add_test(tc, test_sample_flags);
    tcase_add_test(tc, test_bad_params);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    free(fx_cases);
    host_api()->free(NULL, fx_raw);
    registry_destroy(reg);
    return nf ? 1 : 0;
}
